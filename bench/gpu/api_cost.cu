/*
 * api_cost.cu - what the CUDA runtime and cuBLASLt cost the host per call on
 * this machine, and what PCIe carries, independent of Ferry: the numbers
 * that bound a non-captured small-batch pipeline (host issue rate) and a
 * large-batch one (copy bandwidth). Timing belongs in bench/, not tests.
 *
 * For each call kind, T threads (each with its own stream, and its own
 * cuBLASLt handle and workspace) issue calls back to back; the host time
 * spent inside the calls is summed (a stream sync every 256 calls keeps the
 * launch queue from filling, and is not counted). Then copy bandwidth:
 * H2D alone, D2H alone, and both at once on two streams.
 *
 * build: nvcc -O2 -arch=sm_90 bench/gpu/api_cost.cu -lcublasLt -o api_cost
 */
#include <cublasLt.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CK(x)                                                                                      \
    do {                                                                                           \
        cudaError_t e_ = (x);                                                                      \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "%s: %s\n", #x, cudaGetErrorString(e_));                               \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)
#define LK(x)                                                                                      \
    do {                                                                                           \
        cublasStatus_t s_ = (x);                                                                   \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                         \
            fprintf(stderr, "%s: status %d\n", #x, (int)s_);                                       \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

__global__ void k_empty(void) {}
__global__ void k_cast(const float *x, __half *y, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        y[i] = __float2half(x[i]);
}

enum kind { K_H2D, K_D2H, K_EMPTY, K_CAST, K_GEMM, K_EVENT, K_PIPE, K_GRAPH, K_N };
static const char *kname[K_N] = {"memcpyAsync H2D 32 KiB",
                                 "memcpyAsync D2H 32 KiB",
                                 "launch empty kernel",
                                 "launch cast kernel 8192",
                                 "cublasLtMatmul 32x512x256",
                                 "eventRecord",
                                 "batch: 8 calls (h2d cast 3xgemm cast d2h ev)",
                                 "batch as graph: h2d graphLaunch d2h ev"};

typedef struct tctx {
    int kind, iters, spin;
    double host_s, wall_s;
} tctx;

static volatile int g_spin_stop;
static cudaEvent_t g_spin_ev;

static void *spinner(void *arg)
{
    (void)arg;
    while (!g_spin_stop)
        (void)cudaEventQuery(g_spin_ev);
    return NULL;
}

static void gemm_setup(cublasLtHandle_t lt, cublasLtMatmulDesc_t *d, cublasLtMatrixLayout_t *la,
                       cublasLtMatrixLayout_t *lb, cublasLtMatrixLayout_t *lc,
                       cublasLtMatmulAlgo_t *algo, void *ws, size_t wss, int m, int n, int k)
{
    LK(cublasLtMatmulDescCreate(d, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t t = CUBLAS_OP_T;
    LK(cublasLtMatmulDescSetAttribute(*d, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof t));
    cublasLtEpilogue_t ep = CUBLASLT_EPILOGUE_RELU;
    LK(cublasLtMatmulDescSetAttribute(*d, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof ep));
    LK(cublasLtMatrixLayoutCreate(la, CUDA_R_16F, k, m, k));
    LK(cublasLtMatrixLayoutCreate(lb, CUDA_R_16F, k, n, k));
    LK(cublasLtMatrixLayoutCreate(lc, CUDA_R_16F, m, n, m));
    cublasLtMatmulPreference_t p;
    LK(cublasLtMatmulPreferenceCreate(&p));
    LK(cublasLtMatmulPreferenceSetAttribute(p, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wss,
                                            sizeof wss));
    cublasLtMatmulHeuristicResult_t r;
    int got = 0;
    LK(cublasLtMatmulAlgoGetHeuristic(lt, *d, *la, *lb, *lc, *lc, p, 1, &r, &got));
    if (!got) {
        fprintf(stderr, "no algo\n");
        exit(1);
    }
    *algo = r.algo;
    cublasLtMatmulPreferenceDestroy(p);
    (void)ws;
}

static void *worker(void *arg)
{
    tctx *c = (tctx *)arg;
    cudaStream_t s;
    CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    cublasLtHandle_t lt;
    LK(cublasLtCreate(&lt));
    size_t wss = 4 << 20;
    void *ws, *dx, *dh, *dw, *dy, *hx;
    CK(cudaMalloc(&ws, wss));
    CK(cudaMalloc(&dx, 1 << 20));
    CK(cudaMalloc(&dh, 1 << 20));
    CK(cudaMalloc(&dw, 1 << 20));
    CK(cudaMalloc(&dy, 1 << 20));
    CK(cudaMemset(dw, 0, 1 << 20));
    CK(cudaMemset(dh, 0, 1 << 20));
    CK(cudaMallocHost(&hx, 1 << 20));
    memset(hx, 0, 1 << 20);
    cublasLtMatmulDesc_t d;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;
    gemm_setup(lt, &d, &la, &lb, &lc, &algo, ws, wss, 512, 32, 256);
    cudaEvent_t ev;
    CK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
    float one = 1, zero = 0;
    const size_t B = 32 * 1024;

#define GEMM()                                                                                     \
    LK(cublasLtMatmul(lt, d, &one, dw, la, dh, lb, &zero, dy, lc, dy, lc, &algo, ws, wss, s))
    cudaGraphExec_t gx = NULL;
    if (c->kind == K_GRAPH) {
        cudaGraph_t g;
        GEMM(); /* warm */
        CK(cudaStreamSynchronize(s));
        CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
        k_cast<<<32, 256, 0, s>>>((const float *)dx, (__half *)dh, 8192);
        GEMM();
        GEMM();
        GEMM();
        k_cast<<<32, 256, 0, s>>>((const float *)dx, (__half *)dh, 8192);
        CK(cudaStreamEndCapture(s, &g));
        CK(cudaGraphInstantiate(&gx, g, 0));
    }
    /* warm-up */
    for (int i = 0; i < 64; i++) {
        GEMM();
        k_empty<<<1, 1, 0, s>>>();
    }
    CK(cudaStreamSynchronize(s));
    double host = 0, w0 = now();
    for (int i = 0; i < c->iters; i++) {
        double t0 = now();
        switch (c->kind) {
        case K_H2D: CK(cudaMemcpyAsync(dx, hx, B, cudaMemcpyHostToDevice, s)); break;
        case K_D2H: CK(cudaMemcpyAsync(hx, dx, B, cudaMemcpyDeviceToHost, s)); break;
        case K_EMPTY: k_empty<<<1, 1, 0, s>>>(); break;
        case K_CAST: k_cast<<<32, 256, 0, s>>>((const float *)dx, (__half *)dh, 8192); break;
        case K_GEMM: GEMM(); break;
        case K_EVENT: CK(cudaEventRecord(ev, s)); break;
        case K_PIPE:
            CK(cudaMemcpyAsync(dx, hx, B, cudaMemcpyHostToDevice, s));
            k_cast<<<32, 256, 0, s>>>((const float *)dx, (__half *)dh, 8192);
            GEMM();
            GEMM();
            GEMM();
            k_cast<<<32, 256, 0, s>>>((const float *)dx, (__half *)dh, 8192);
            CK(cudaMemcpyAsync(hx, dx, B, cudaMemcpyDeviceToHost, s));
            CK(cudaEventRecord(ev, s));
            break;
        case K_GRAPH:
            CK(cudaMemcpyAsync(dx, hx, B, cudaMemcpyHostToDevice, s));
            CK(cudaGraphLaunch(gx, s));
            CK(cudaMemcpyAsync(hx, dx, B, cudaMemcpyDeviceToHost, s));
            CK(cudaEventRecord(ev, s));
            break;
        }
        host += now() - t0;
        if ((i & 255) == 255 || (c->kind >= K_PIPE && (i & 31) == 31))
            CK(cudaStreamSynchronize(s));
    }
    CK(cudaStreamSynchronize(s));
    c->wall_s = now() - w0;
    c->host_s = host;
    return NULL;
}

static void run(int kind, int threads, int spin)
{
    pthread_t t[16], sp;
    tctx c[16];
    int iters = kind >= K_PIPE ? 4000 : 20000;
    g_spin_stop = 0;
    if (spin)
        pthread_create(&sp, NULL, spinner, NULL);
    for (int i = 0; i < threads; i++) {
        c[i] = (tctx){kind, iters, spin, 0, 0};
        pthread_create(&t[i], NULL, worker, &c[i]);
    }
    double host = 0, wall = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        host += c[i].host_s;
        if (c[i].wall_s > wall)
            wall = c[i].wall_s;
    }
    if (spin) {
        g_spin_stop = 1;
        pthread_join(sp, NULL);
    }
    printf("%-46s threads %d%s: %6.2f us host per call, %9.0f calls/s all threads (wall)\n",
           kname[kind], threads, spin ? " +spinner" : "         ", 1e6 * host / (threads * iters),
           threads * iters / wall);
    fflush(stdout);
}

static void bandwidth(void)
{
    size_t B = 64u << 20;
    void *h1, *h2, *d1, *d2;
    cudaStream_t s1, s2;
    CK(cudaMallocHost(&h1, B));
    CK(cudaMallocHost(&h2, B));
    CK(cudaMalloc(&d1, B));
    CK(cudaMalloc(&d2, B));
    memset(h1, 1, B);
    memset(h2, 1, B);
    CK(cudaStreamCreateWithFlags(&s1, cudaStreamNonBlocking));
    CK(cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking));
    for (int mode = 0; mode < 3; mode++) {
        int reps = 20;
        CK(cudaMemcpyAsync(d1, h1, B, cudaMemcpyHostToDevice, s1));
        CK(cudaMemcpyAsync(h2, d2, B, cudaMemcpyDeviceToHost, s2));
        CK(cudaDeviceSynchronize());
        double t0 = now();
        for (int r = 0; r < reps; r++) {
            if (mode != 1)
                CK(cudaMemcpyAsync(d1, h1, B, cudaMemcpyHostToDevice, s1));
            if (mode != 0)
                CK(cudaMemcpyAsync(h2, d2, B, cudaMemcpyDeviceToHost, s2));
        }
        CK(cudaDeviceSynchronize());
        double dt = now() - t0;
        double gb = (double)B * reps / dt / 1e9;
        static const char *nm[3] = {"H2D alone", "D2H alone", "H2D + D2H at once"};
        printf("PCIe %-20s %6.1f GB/s each way%s\n", nm[mode], gb,
               mode == 2 ? " (sum of both ways: twice that)" : "");
        if (mode == 2)
            printf("  -> mlp-s fp16 host-to-host ceiling (512 B in + 512 B out per sample): %.1f M "
                   "samples/s\n",
                   gb * 1e9 / 512 / 1e6);
    }
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cudaDeviceProp p;
    CK(cudaGetDeviceProperties(&p, 0));
    printf("device: %s\n", p.name);
    CK(cudaFree(0));
    CK(cudaEventCreateWithFlags(&g_spin_ev, cudaEventDisableTiming));
    bandwidth();
    for (int k = 0; k < K_N; k++) {
        run(k, 1, 0);
        run(k, 2, 0);
        if (k == K_PIPE || k == K_GRAPH || k == K_GEMM) {
            run(k, 4, 0);
            run(k, 2, 1);
        }
    }
    return 0;
}
