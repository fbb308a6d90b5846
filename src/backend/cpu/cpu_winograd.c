/*
 * cpu_winograd.c - Winograd F(2x2, 3x3) for 3x3 stride-1 convs on nChw8c
 * activations (cpu_winograd.h).
 *
 * With d a 4x4 input tile, g a 3x3 filter and
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],
 *   G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1],
 *   A^T = [1 1 1 0; 0 1 -1 -1],
 * the 2x2 output tile is A^T [(G g G^T) .* (B^T d B)] A. Summed over the
 * input channels, the 16 elementwise products are 16 GEMMs:
 *   M[xi][tile][oc] = sum_ic V[xi][tile][ic] U[xi][ic][oc]
 * with V = B^T d B per tile and channel, U = G g G^T per channel pair
 * (made once at create, [16][ic][oc]). A run takes the tiles in chunks of
 * `mc`: transform a chunk's inputs into V, 16 sgemm calls, then the
 * output transform (with bias, residual and ReLU) straight into y, so that
 * V and M stay in cache.
 *
 * F(2x2, 3x3) rather than F(4x4, 3x3): 2.25x fewer multiplies instead of
 * 4x, but the transforms are exact in binary (halves only), so the result
 * stays within the float error of a direct conv (the parity tests ask
 * 1e-4 relative against float64 PyTorch on whole networks; resnet18's
 * error stayed at 1-4e-6).
 *
 * Measured on the 2-core Zen 3 VM (AVX2, FMA peak ~98 GFLOP/s a core),
 * resnet18's 3x3 layers at batch 16 on one core, best of a few dozen,
 * OpenBLAS 0.3.21 on one thread, against oneDNN 2.6's jit:avx2 on the same
 * nChw8c tensors: 64ch 56x56 42.9 -> 37.3 ms, 128ch 28x28 45.1 -> 27.8,
 * 256ch 14x14 43.5 -> 23.9, 512ch 7x7 48.2 -> 30.5 (1.15-1.8x; 64
 * channels gain least: the GEMMs are 64 deep and 64 wide). Whole resnet18
 * (`ferry bench`, interleaved with FERRY_CPU_WINOGRAD=0): batch 32
 * 40.7-45.6 -> 58.9-60.4 samples/s.
 */
#include "backend/cpu/cpu_winograd.h"

#include <cblas.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_parallel.h"
#include "util/error.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define WINO_HAVE_AVX2 1
#define WINO_AVX2 __attribute__((target("avx2,fma")))
#define WINO_INLINE static inline __attribute__((always_inline, target("avx2,fma")))
#endif

struct cpu_wino {
    int64_t ic, oc, h, w, oh, ow, pt, pl; /* pt, pl: top and left pads */
    int64_t th, tw;                       /* 2x2 output tiles an image */
    int relu, residual;
    float *u;    /* [16][ic][oc] */
    float *bias; /* [oc], zeros without B */
};

int cpu_wino_fits(const cpu_conv_params *p)
{
#ifdef WINO_HAVE_AVX2
    const char *env = getenv("FERRY_CPU_WINOGRAD");
    if (env && !strcmp(env, "0"))
        return 0;
    if (p->rank != 2 || p->transposed || p->group != 1 || p->c_in % 8 || p->c_out % 8)
        return 0;
    for (int i = 0; i < 2; i++)
        if (p->kernel[i] != 3 || p->stride[i] > 1 || p->dilation[i] > 1 || p->pad_begin[i] > 1 ||
            p->pad_end[i] > 1)
            return 0;
    if (p->act != CPU_ACT_NONE && p->act != CPU_ACT_RELU)
        return 0;
    if (p->residual == CPU_RESIDUAL_AFTER_ACT)
        return 0;
    return cpu_dnnl_block() == 8 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    (void)p;
    return 0;
#endif
}

ferry_status cpu_wino_create(const cpu_conv_params *p, const float *W, const float *B,
                             cpu_wino **out)
{
    *out = NULL;
    cpu_wino *w = calloc(1, sizeof *w);
    if (!w)
        return ferry_fail(FERRY_ENOMEM, "conv: out of memory");
    w->ic = p->c_in;
    w->oc = p->c_out;
    w->h = p->in[0];
    w->w = p->in[1];
    w->pt = p->pad_begin[0];
    w->pl = p->pad_begin[1];
    w->oh = w->h + p->pad_begin[0] + p->pad_end[0] - 2;
    w->ow = w->w + p->pad_begin[1] + p->pad_end[1] - 2;
    w->th = (w->oh + 1) / 2;
    w->tw = (w->ow + 1) / 2;
    w->relu = p->act == CPU_ACT_RELU;
    w->residual = p->residual == CPU_RESIDUAL_BEFORE_ACT;
    size_t un = (size_t)(16 * w->ic * w->oc);
    w->u = aligned_alloc(64, (un * sizeof(float) + 63) / 64 * 64);
    w->bias = aligned_alloc(64, ((size_t)w->oc * sizeof(float) + 63) / 64 * 64);
    if (!w->u || !w->bias) {
        cpu_wino_destroy(w);
        return ferry_fail(FERRY_ENOMEM, "conv: out of memory for %zu Winograd weights", un);
    }
    for (int64_t o = 0; o < w->oc; o++)
        w->bias[o] = B ? B[o] : 0.0f;
    /* U = G g G^T in double, then rounded once. */
    for (int64_t o = 0; o < w->oc; o++)
        for (int64_t i = 0; i < w->ic; i++) {
            const float *g = W + (o * w->ic + i) * 9;
            double gg[4][3], u[4][4];
            for (int c = 0; c < 3; c++) {
                gg[0][c] = g[c];
                gg[1][c] = 0.5 * ((double)g[c] + g[3 + c] + g[6 + c]);
                gg[2][c] = 0.5 * ((double)g[c] - g[3 + c] + g[6 + c]);
                gg[3][c] = g[6 + c];
            }
            for (int r = 0; r < 4; r++) {
                u[r][0] = gg[r][0];
                u[r][1] = 0.5 * (gg[r][0] + gg[r][1] + gg[r][2]);
                u[r][2] = 0.5 * (gg[r][0] - gg[r][1] + gg[r][2]);
                u[r][3] = gg[r][2];
            }
            for (int x = 0; x < 16; x++)
                w->u[((size_t)x * (size_t)w->ic + (size_t)i) * (size_t)w->oc + (size_t)o] =
                    (float)u[x / 4][x % 4];
        }
    *out = w;
    return FERRY_OK;
}

void cpu_wino_destroy(cpu_wino *w)
{
    if (!w)
        return;
    free(w->u);
    free(w->bias);
    free(w);
}

/* WINO_MIN_TILES: below it a run stays with oneDNN's direct conv. At
 * batch 1 that is resnet18's 7x7 layers (16 tiles), whose U (16 MB for
 * 512x512) would stream from memory every forward: the network's weights
 * do not fit the L3 (32 MB), and DRAM gives one core ~11 GB/s here.
 * WINO_MC: tiles a chunk (the GEMMs' M): on one Zen 3 core, batch 16,
 * 256 and 512 measured best for every resnet18 layer against 32 to 1024,
 * within WINO_CHUNK_FLOATS of V and M. WINO_PHASED: tiles a thread under
 * which a multi-threaded run is phased (see wino_job). */
enum {
    WINO_MIN_TILES = 32,
    WINO_MC = 256,
    WINO_CHUNK_FLOATS = 16 * 131072, /* 8 MB */
    WINO_PHASED = 64,
};

int cpu_wino_wants(const cpu_wino *w, int64_t n, int threads)
{
    (void)threads;
    return n * w->th * w->tw >= WINO_MIN_TILES;
}

/* ------------------------------------------------------------ scratch */

/* Each thread's V and M, grown to the largest run it has seen and freed
 * when the thread ends. */
typedef struct wino_scratch {
    size_t floats;
    float *p;
} wino_scratch;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_key_ok;

static void scratch_free(void *arg)
{
    wino_scratch *s = arg;
    free(s->p);
    free(s);
}

static void scratch_init(void)
{
    scratch_key_ok = pthread_key_create(&scratch_key, scratch_free) == 0;
}

static float *scratch_get(size_t floats)
{
    pthread_once(&scratch_once, scratch_init);
    if (!scratch_key_ok)
        return NULL;
    wino_scratch *s = pthread_getspecific(scratch_key);
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s || pthread_setspecific(scratch_key, s) != 0) {
            free(s);
            return NULL;
        }
    }
    if (s->floats < floats) {
        float *p = aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64);
        if (!p)
            return NULL;
        free(s->p);
        s->p = p;
        s->floats = floats;
    }
    return s->p;
}

/* ---------------------------------------------------------- transforms */

#ifdef WINO_HAVE_AVX2

/* V[xi][t][ic] for tile (ty, tx) of image xi0 (its first float). */
WINO_AVX2 static void wino_in_tile(const cpu_wino *w, const float *xi0, int64_t ty, int64_t tx,
                                   float *V, int64_t vs, int64_t t)
{
    int64_t r0 = 2 * ty - w->pt, c0 = 2 * tx - w->pl, W = w->w, H = w->h;
    int64_t hw8 = H * W * 8;
    int inside = r0 >= 0 && c0 >= 0 && r0 + 4 <= H && c0 + 4 <= W;
    int ok[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            ok[i][j] = r0 + i >= 0 && r0 + i < H && c0 + j >= 0 && c0 + j < W;
    float *v0 = V + t * w->ic;
    for (int64_t cb = 0; cb < w->ic / 8; cb++) {
        /* An offset, not a pointer: a border tile's corner is outside x. */
        int64_t at = cb * hw8 + (r0 * W + c0) * 8;
        __m256 d[4][4], s[4][4];
        if (inside) {
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++)
                    d[i][j] = _mm256_loadu_ps(xi0 + at + (i * W + j) * 8);
        } else {
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++)
                    d[i][j] = _mm256_setzero_ps();
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++)
                    if (ok[i][j])
                        d[i][j] = _mm256_loadu_ps(xi0 + at + (i * W + j) * 8);
        }
        for (int j = 0; j < 4; j++) {
            s[0][j] = d[0][j] - d[2][j];
            s[1][j] = d[1][j] + d[2][j];
            s[2][j] = d[2][j] - d[1][j];
            s[3][j] = d[1][j] - d[3][j];
        }
        float *v = v0 + cb * 8;
        for (int i = 0; i < 4; i++) {
            _mm256_storeu_ps(v + (i * 4 + 0) * vs, s[i][0] - s[i][2]);
            _mm256_storeu_ps(v + (i * 4 + 1) * vs, s[i][1] + s[i][2]);
            _mm256_storeu_ps(v + (i * 4 + 2) * vs, s[i][2] - s[i][1]);
            _mm256_storeu_ps(v + (i * 4 + 3) * vs, s[i][1] - s[i][3]);
        }
    }
}

/* y (and residual r, both image yi0's first float) for tile (ty, tx) from
 * M[xi][t][0..noc) (rows ldm apart, matrices ms), output channels
 * [oc0, oc0 + noc). */
WINO_AVX2 static void wino_out_tile(const cpu_wino *w, const float *M, int64_t ms, int64_t ldm,
                                    int64_t t, int64_t oc0, int64_t noc, float *yi0,
                                    const float *ri0, int64_t ty, int64_t tx)
{
    int64_t OW = w->ow, ohw8 = w->oh * OW * 8;
    int nr = w->oh - 2 * ty < 2 ? 1 : 2, nc = OW - 2 * tx < 2 ? 1 : 2;
    int64_t pix = (2 * ty * OW + 2 * tx) * 8;
    const float *m0 = M + t * ldm;
    __m256 zero = _mm256_setzero_ps();
    for (int64_t ob = 0; ob < noc / 8; ob++) {
        __m256 m[4][4], s[2][4], o[2][2];
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++)
                m[i][j] = _mm256_loadu_ps(m0 + (i * 4 + j) * ms + ob * 8);
        for (int j = 0; j < 4; j++) {
            s[0][j] = m[0][j] + m[1][j] + m[2][j];
            s[1][j] = m[1][j] - m[2][j] - m[3][j];
        }
        __m256 b = _mm256_loadu_ps(w->bias + oc0 + ob * 8);
        for (int i = 0; i < 2; i++) {
            o[i][0] = s[i][0] + s[i][1] + s[i][2] + b;
            o[i][1] = s[i][1] - s[i][2] - s[i][3] + b;
        }
        int64_t at = (oc0 / 8 + ob) * ohw8 + pix;
        for (int i = 0; i < nr; i++)
            for (int j = 0; j < nc; j++) {
                int64_t off = at + (i * OW + j) * 8;
                __m256 v = o[i][j];
                if (ri0)
                    v = v + _mm256_loadu_ps(ri0 + off);
                if (w->relu)
                    v = _mm256_max_ps(v, zero);
                _mm256_storeu_ps(yi0 + off, v);
            }
    }
}

#endif

/* ---------------------------------------------------------------- runs */

/* A run is either
 *  - chunked: chunks of mc tiles, each transformed, multiplied and
 *    written by one thread in its own scratch, so that V and M stay in
 *    its cache; or
 *  - phased, where the tiles are too few to give each thread a GEMM of
 *    its own worth running (a batch-1 run of a 14x14 or 7x7 layer): all
 *    tiles' input transform, then the 16 GEMMs, then the output
 *    transform, each phase split over the threads, in the caller's
 *    scratch. Each thread then reads its share of U once; chunks of a few
 *    tiles would each read all of it (16/9 of the filter: 16 MB for a
 *    512x512 conv). */
typedef struct wino_job {
    const cpu_wino *w;
    const float *x, *res;
    float *y;
    int64_t tiles, mc; /* chunked: mc tiles a chunk */
    float *V, *M;      /* phased: the caller's scratch */
    int64_t group;     /* phased: tiles a transform item */
    ferry_status st;
} wino_job;

#ifdef WINO_HAVE_AVX2
/* Input transform of tiles [g0, g0 + nt) into V rows row0.. */
static void wino_in_tiles(const wino_job *j, float *V, int64_t vs, int64_t g0, int64_t nt,
                          int64_t row0)
{
    const cpu_wino *w = j->w;
    int64_t per_img = w->th * w->tw, xin = w->ic * w->h * w->w;
    for (int64_t t = 0; t < nt; t++) {
        int64_t g = g0 + t, img = g / per_img, r = g % per_img;
        wino_in_tile(w, j->x + img * xin, r / w->tw, r % w->tw, V, vs, row0 + t);
    }
}

static void wino_out_tiles(const wino_job *j, const float *M, int64_t ms, int64_t ldm, int64_t g0,
                           int64_t nt, int64_t row0, int64_t oc0, int64_t noc)
{
    const cpu_wino *w = j->w;
    int64_t per_img = w->th * w->tw, yout = w->oc * w->oh * w->ow;
    for (int64_t t = 0; t < nt; t++) {
        int64_t g = g0 + t, img = g / per_img, r = g % per_img;
        wino_out_tile(w, M, ms, ldm, row0 + t, oc0, noc, j->y + img * yout,
                      j->res ? j->res + img * yout : NULL, r / w->tw, r % w->tw);
    }
}

static void wino_gemm(const cpu_wino *w, int x, int64_t nt, const float *V, int64_t vs, int64_t oc0,
                      int64_t noc, float *M, int64_t ms, int64_t ldm)
{
    const float *U = w->u + (size_t)x * (size_t)(w->ic * w->oc) + oc0;
    /* oneDNN's sgemm up to 256x256 channels, OpenBLAS's above (batch 16,
     * one core: 64ch 36.6 -> 29.5 ms a layer, 128ch 25.7 -> 22.4, 256ch
     * 23.7 -> 20.5, but 512ch 28.5 -> 34.6). Its OpenMP team must be one
     * thread (see cpu_gemm_block). */
    if (w->ic * w->oc <= 256 * 256) {
        int saved = omp_get_max_threads();
        if (saved != 1)
            omp_set_num_threads(1);
        dnnl_status_t st = dnnl_sgemm('N', 'N', nt, noc, w->ic, 1.0f, V + x * vs, w->ic, U, w->oc,
                                      0.0f, M + x * ms, ldm);
        if (saved != 1)
            omp_set_num_threads(saved);
        if (st == dnnl_success)
            return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nt, (int)noc, (int)w->ic, 1.0f,
                V + x * vs, (int)w->ic, U, (int)w->oc, 0.0f, M + x * ms, (int)ldm);
}
#endif

static void wino_part(void *arg, int64_t part)
{
#ifdef WINO_HAVE_AVX2
    wino_job *j = arg;
    const cpu_wino *w = j->w;
    int64_t t0 = part * j->mc, nt = j->tiles - t0 < j->mc ? j->tiles - t0 : j->mc;
    int64_t vs = j->mc * w->ic, ms = j->mc * w->oc;
    float *V = scratch_get((size_t)(16 * (vs + ms)));
    if (!V) {
        j->st = ferry_fail(FERRY_ENOMEM, "conv: out of memory for Winograd scratch");
        return;
    }
    float *M = V + 16 * vs;
    wino_in_tiles(j, V, vs, t0, nt, 0);
    for (int x = 0; x < 16; x++)
        wino_gemm(w, x, nt, V, vs, 0, w->oc, M, ms, w->oc);
    wino_out_tiles(j, M, ms, w->oc, t0, nt, 0, 0, w->oc);
#else
    (void)arg;
    (void)part;
#endif
}

#ifdef WINO_HAVE_AVX2
static void phase_in(void *arg, int64_t i)
{
    wino_job *j = arg;
    int64_t g0 = i * j->group, nt = j->tiles - g0 < j->group ? j->tiles - g0 : j->group;
    wino_in_tiles(j, j->V, j->tiles * j->w->ic, g0, nt, g0);
}

static void phase_gemm(void *arg, int64_t x)
{
    wino_job *j = arg;
    const cpu_wino *w = j->w;
    wino_gemm(w, (int)x, j->tiles, j->V, j->tiles * w->ic, 0, w->oc, j->M, j->tiles * w->oc, w->oc);
}

static void phase_out(void *arg, int64_t i)
{
    wino_job *j = arg;
    int64_t g0 = i * j->group, nt = j->tiles - g0 < j->group ? j->tiles - g0 : j->group;
    wino_out_tiles(j, j->M, j->tiles * j->w->oc, j->w->oc, g0, nt, g0, 0, j->w->oc);
}
#endif

ferry_status cpu_wino_run(cpu_wino *w, int64_t n, int threads, const float *x,
                          const float *residual, float *y)
{
    if (!x || !y || (w->residual && !residual))
        return ferry_fail(FERRY_EINVAL, "conv: NULL input, output or residual");
    wino_job j = {.w = w, .x = x, .res = w->residual ? residual : NULL, .y = y, .st = FERRY_OK};
    j.tiles = n * w->th * w->tw;
#ifdef WINO_HAVE_AVX2
    if (threads > 1 && j.tiles < WINO_PHASED * threads) {
        float *V = scratch_get((size_t)(16 * j.tiles * (w->ic + w->oc)));
        if (!V)
            return ferry_fail(FERRY_ENOMEM, "conv: out of memory for Winograd scratch");
        j.V = V;
        j.M = V + 16 * j.tiles * w->ic;
        j.group = 8;
        int64_t items = (j.tiles + j.group - 1) / j.group;
        cpu_parallel_for(phase_in, &j, items, threads);
        cpu_parallel_for(phase_gemm, &j, 16, threads);
        cpu_parallel_for(phase_out, &j, items, threads);
        return FERRY_OK;
    }
#endif
    /* Chunks of up to WINO_MC tiles, as many as a multiple of the
     * threads and all about the same size. */
    int64_t mc = WINO_CHUNK_FLOATS / (16 * (w->ic + w->oc));
    mc = mc < WINO_MC ? mc : WINO_MC;
    mc = mc < 16 ? 16 : mc;
    int64_t chunks = (j.tiles + mc - 1) / mc;
    if (threads > 1)
        chunks = (chunks + threads - 1) / threads * threads;
    j.mc = (j.tiles + chunks - 1) / chunks;
    chunks = (j.tiles + j.mc - 1) / j.mc;
    if (threads > 1 && chunks > 1)
        cpu_parallel_for(wino_part, &j, chunks, threads);
    else
        for (int64_t p = 0; p < chunks; p++)
            wino_part(&j, p);
    return j.st;
}
