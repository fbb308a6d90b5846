/*
 * test_npy.c - src/util/npy.c: round trips for every dtype, files written
 * and read by numpy (versions 1.0, 2.0, 3.0), and hostile files: every
 * truncation of a valid file, malformed headers and random corruption must
 * give an exact status (FERRY_EPARSE naming the file), never a crash.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ferry.h"
#include "util/half.h"
#include "util/npy.h"

#define PYTHON "/usr/bin/python3"

static char tmpdir[] = "/tmp/ferry-test-npy-XXXXXX";

static const ferry_dtype all_dtypes[] = {FERRY_F32, FERRY_F64, FERRY_F16, FERRY_I32,
                                         FERRY_I64, FERRY_U8,  FERRY_I8,  FERRY_BOOL};
/* numpy's name for each of all_dtypes, as the interop script uses them */
static const char *const np_names[] = {"f4", "f8", "f2", "i4", "i8", "u1", "i1", "b1"};

static const char *tmp_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", tmpdir, name);
    return buf;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int group_setup(void **state)
{
    (void)state;
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Element i of a tensor as a double, whatever its dtype. */
static double elem(const ferry_tensor *t, int64_t i)
{
    switch (t->dtype) {
    case FERRY_F32: return ((const float *)t->data)[i];
    case FERRY_F64: return ((const double *)t->data)[i];
    case FERRY_F16: return ferry_f16_to_f32(((const uint16_t *)t->data)[i]);
    case FERRY_I32: return ((const int32_t *)t->data)[i];
    case FERRY_I64: return (double)((const int64_t *)t->data)[i];
    case FERRY_U8: return ((const uint8_t *)t->data)[i];
    case FERRY_I8: return ((const int8_t *)t->data)[i];
    case FERRY_BOOL: return ((const uint8_t *)t->data)[i];
    default: return -12345.0;
    }
}

/* Fills element i with v (an integer small enough for every dtype). */
static void set_elem(ferry_tensor *t, int64_t i, int v)
{
    switch (t->dtype) {
    case FERRY_F32: ((float *)t->data)[i] = (float)v; break;
    case FERRY_F64: ((double *)t->data)[i] = v; break;
    case FERRY_F16: ((uint16_t *)t->data)[i] = ferry_f32_to_f16((float)v); break;
    case FERRY_I32: ((int32_t *)t->data)[i] = v; break;
    case FERRY_I64: ((int64_t *)t->data)[i] = v; break;
    case FERRY_U8: ((uint8_t *)t->data)[i] = (uint8_t)v; break;
    case FERRY_I8: ((int8_t *)t->data)[i] = (int8_t)v; break;
    case FERRY_BOOL: ((uint8_t *)t->data)[i] = (uint8_t)(v & 1); break;
    default: break;
    }
}

/* The value numpy's interop files and ours hold at flat index i. */
static int pattern(ferry_dtype dt, int64_t i)
{
    if (dt == FERRY_BOOL)
        return (int)(i % 2);
    if (dt == FERRY_I8)
        return (int)(i % 100) - 50;
    return (int)(i % 120);
}

static void assert_status_names_file(ferry_status got, ferry_status want, const char *path)
{
    if (got != want)
        print_error("%s: got %s (%s), want %s\n", path, ferry_status_str(got), ferry_last_error(),
                    ferry_status_str(want));
    assert_int_equal(got, want);
    assert_non_null(strstr(ferry_last_error(), path));
}

/* ---------------------------------------------------------------- round trip */

static void roundtrip_one(ferry_dtype dt, int ndim, const int64_t *shape, const char *name)
{
    char path[256];
    tmp_path(path, sizeof path, name);
    ferry_tensor t = {.dtype = dt, .ndim = ndim};
    memcpy(t.shape, shape, sizeof(int64_t) * (size_t)ndim);
    int64_t n = ferry_tensor_numel(&t);
    size_t bytes = (size_t)n * ferry_dtype_size(dt);
    t.data = malloc(bytes ? bytes : 1);
    assert_non_null(t.data);
    for (int64_t i = 0; i < n; i++)
        set_elem(&t, i, pattern(dt, i));
    assert_int_equal(npy_write(path, &t), FERRY_OK);

    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(((size_t)sb.st_size - bytes) % 64, 0); /* data is 64-byte aligned */

    ferry_tensor r;
    ferry_status st = npy_read(path, &r);
    if (st)
        print_error("%s: %s\n", path, ferry_last_error());
    assert_int_equal(st, FERRY_OK);
    assert_int_equal(r.dtype, dt);
    assert_int_equal(r.ndim, ndim);
    for (int i = 0; i < ndim; i++)
        assert_int_equal(r.shape[i], shape[i]);
    assert_non_null(r.data);
    if (bytes)
        assert_memory_equal(r.data, t.data, bytes);
    npy_free(&r);
    assert_null(r.data);
    free(t.data);
}

static void test_roundtrip_every_dtype(void **state)
{
    (void)state;
    static const int64_t s1[] = {5}, s2[] = {3, 4}, s3[] = {2, 0, 3}, s8[] = {1, 2, 1, 2, 1, 2, 1, 3},
                         big[] = {1000, 257};
    for (size_t d = 0; d < sizeof all_dtypes / sizeof all_dtypes[0]; d++) {
        ferry_dtype dt = all_dtypes[d];
        char name[64];
        snprintf(name, sizeof name, "rt_%s_0d.npy", np_names[d]);
        roundtrip_one(dt, 0, s1, name);
        snprintf(name, sizeof name, "rt_%s_1d.npy", np_names[d]);
        roundtrip_one(dt, 1, s1, name);
        snprintf(name, sizeof name, "rt_%s_2d.npy", np_names[d]);
        roundtrip_one(dt, 2, s2, name);
        snprintf(name, sizeof name, "rt_%s_empty.npy", np_names[d]);
        roundtrip_one(dt, 3, s3, name);
        snprintf(name, sizeof name, "rt_%s_8d.npy", np_names[d]);
        roundtrip_one(dt, 8, s8, name);
        snprintf(name, sizeof name, "rt_%s_big.npy", np_names[d]);
        roundtrip_one(dt, 2, big, name);
    }
}

static void test_write_rejects(void **state)
{
    (void)state;
    char path[256];
    tmp_path(path, sizeof path, "rejected.npy");
    uint16_t h[4] = {0};
    ferry_tensor t = {.dtype = FERRY_BF16, .ndim = 1, .shape = {4}, .data = h};
    assert_status_names_file(npy_write(path, &t), FERRY_EUNSUPPORTED, path);
    t.dtype = FERRY_F16;
    t.ndim = FERRY_MAX_DIMS + 1;
    assert_int_equal(npy_write(path, &t), FERRY_EINVAL);
    t.ndim = 1;
    t.shape[0] = -1;
    assert_int_equal(npy_write(path, &t), FERRY_EINVAL);
    t.shape[0] = 4;
    t.data = NULL;
    assert_int_equal(npy_write(path, &t), FERRY_EINVAL);
    assert_int_equal(npy_write(NULL, &t), FERRY_EINVAL);
    assert_int_equal(npy_write(path, NULL), FERRY_EINVAL);
    t.data = h;
    char bad[300];
    snprintf(bad, sizeof bad, "%s/no/such/dir/x.npy", tmpdir);
    assert_status_names_file(npy_write(bad, &t), FERRY_EIO, bad);
    npy_free(NULL);
}

/* --------------------------------------------------------- numpy interop */

/* Checks the files we wrote (c_<dtype>.npy) with np.load, then writes
 * np_<dtype>_v<major>.npy and a few special files for the C side to read. */
static const char interop_py[] =
    "import sys\n"
    "import numpy as np\n"
    "from numpy.lib import format as fmt\n"
    "d = sys.argv[1]\n"
    "names = ['f4', 'f8', 'f2', 'i4', 'i8', 'u1', 'i1', 'b1']\n"
    "def pattern(name, shape):\n"
    "    i = np.arange(int(np.prod(shape)))\n"
    "    v = i % 2 if name == 'b1' else (i % 100) - 50 if name == 'i1' else i % 120\n"
    "    return v.astype(np.dtype('<' + name if name not in ('u1', 'i1', 'b1') else '|' + name)"
    ").reshape(shape)\n"
    "for n in names:\n"
    "    a = np.load(f'{d}/c_{n}.npy')\n"
    "    want = pattern(n, (3, 4))\n"
    "    assert a.dtype == want.dtype, (n, a.dtype)\n"
    "    assert a.shape == (3, 4), (n, a.shape)\n"
    "    assert (a == want).all(), n\n"
    "    for major in (1, 2, 3):\n"
    "        with open(f'{d}/np_{n}_v{major}.npy', 'wb') as f:\n"
    "            fmt.write_array(f, pattern(n, (3, 4)), version=(major, 0))\n"
    "np.save(f'{d}/np_scalar.npy', np.float64(3.5))\n"
    "np.save(f'{d}/np_empty.npy', np.zeros((0, 5), np.float32))\n"
    "np.save(f'{d}/np_big.npy', np.arange(256000, dtype=np.float32).reshape(1000, 256))\n"
    "np.save(f'{d}/np_fortran.npy', np.asfortranarray(pattern('f4', (2, 3))))\n"
    "np.save(f'{d}/np_bigendian.npy', np.arange(4, dtype='>f4'))\n"
    "np.save(f'{d}/np_complex.npy', np.zeros(3, np.complex64))\n"
    "np.save(f'{d}/np_struct.npy', np.zeros(3, dtype=[('a', '<f4'), ('b', '<i4')]))\n"
    "np.save(f'{d}/np_unicode.npy', np.array(['ab', 'c']))\n";

static void test_numpy_interop(void **state)
{
    (void)state;
    if (access(PYTHON, X_OK) != 0) {
        print_message("note: %s not found; numpy interop not tested\n", PYTHON);
        skip();
    }
    char path[256], cmd[600];
    static const int64_t shape[] = {3, 4};
    for (size_t d = 0; d < sizeof all_dtypes / sizeof all_dtypes[0]; d++) {
        char name[64];
        snprintf(name, sizeof name, "c_%s.npy", np_names[d]);
        tmp_path(path, sizeof path, name);
        ferry_tensor t = {.dtype = all_dtypes[d], .ndim = 2, .shape = {3, 4}};
        t.data = calloc(12, 8);
        for (int64_t i = 0; i < 12; i++)
            set_elem(&t, i, pattern(t.dtype, i));
        assert_int_equal(npy_write(path, &t), FERRY_OK);
        free(t.data);
    }
    tmp_path(path, sizeof path, "interop.py");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(interop_py, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s %s %s", PYTHON, path, tmpdir);
    int rc = system(cmd);
    if (rc != 0)
        fail_msg("'%s' failed (status %d): numpy rejected a file npy_write wrote", cmd, rc);

    for (size_t d = 0; d < sizeof all_dtypes / sizeof all_dtypes[0]; d++) {
        for (int major = 1; major <= 3; major++) {
            char name[64];
            snprintf(name, sizeof name, "np_%s_v%d.npy", np_names[d], major);
            tmp_path(path, sizeof path, name);
            ferry_tensor r;
            ferry_status st = npy_read(path, &r);
            if (st)
                print_error("%s: %s\n", path, ferry_last_error());
            assert_int_equal(st, FERRY_OK);
            assert_int_equal(r.dtype, all_dtypes[d]);
            assert_int_equal(r.ndim, 2);
            assert_int_equal(r.shape[0], shape[0]);
            assert_int_equal(r.shape[1], shape[1]);
            for (int64_t i = 0; i < 12; i++)
                assert_true(elem(&r, i) == (double)pattern(r.dtype, i));
            npy_free(&r);
        }
    }

    ferry_tensor r;
    assert_int_equal(npy_read(tmp_path(path, sizeof path, "np_scalar.npy"), &r), FERRY_OK);
    assert_int_equal(r.dtype, FERRY_F64);
    assert_int_equal(r.ndim, 0);
    assert_true(elem(&r, 0) == 3.5);
    npy_free(&r);

    assert_int_equal(npy_read(tmp_path(path, sizeof path, "np_empty.npy"), &r), FERRY_OK);
    assert_int_equal(r.ndim, 2);
    assert_int_equal(r.shape[0], 0);
    assert_int_equal(r.shape[1], 5);
    assert_non_null(r.data);
    npy_free(&r);

    assert_int_equal(npy_read(tmp_path(path, sizeof path, "np_big.npy"), &r), FERRY_OK);
    assert_int_equal(r.dtype, FERRY_F32);
    assert_int_equal(r.shape[0], 1000);
    assert_int_equal(r.shape[1], 256);
    for (int64_t i = 0; i < 256000; i++)
        if (elem(&r, i) != (double)i)
            fail_msg("np_big.npy element %lld is %g", (long long)i, elem(&r, i));
    npy_free(&r);

    static const char *const unsupported[] = {"np_fortran.npy", "np_bigendian.npy",
                                              "np_complex.npy", "np_struct.npy",
                                              "np_unicode.npy"};
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++) {
        tmp_path(path, sizeof path, unsupported[i]);
        assert_status_names_file(npy_read(path, &r), FERRY_EUNSUPPORTED, path);
        assert_null(r.data);
        assert_int_equal(r.ndim, 0);
    }
}

/* ---------------------------------------------------------- hostile files */

static void write_bytes(const char *path, const void *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static unsigned char *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return buf;
}

/* Writes a file with the given version, header text and data_bytes zero bytes. */
static const char *make_npy(const char *name, int major, const char *header, size_t data_bytes)
{
    static char path[256];
    tmp_path(path, sizeof path, name);
    size_t hl = strlen(header), pre = major == 1 ? 10 : 12, n = pre + hl + data_bytes;
    unsigned char *buf = calloc(1, n);
    assert_non_null(buf);
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = 0;
    for (size_t i = 0; i < pre - 8; i++)
        buf[8 + i] = (unsigned char)(hl >> (8 * i));
    memcpy(buf + pre, header, hl);
    write_bytes(path, buf, n);
    free(buf);
    return path;
}

static void test_truncated_everywhere(void **state)
{
    (void)state;
    char src[256], path[256];
    tmp_path(src, sizeof src, "whole.npy");
    tmp_path(path, sizeof path, "truncated.npy");
    float v[12] = {0};
    ferry_tensor t = {.dtype = FERRY_F32, .ndim = 2, .shape = {3, 4}, .data = v};
    assert_int_equal(npy_write(src, &t), FERRY_OK);
    size_t n;
    unsigned char *buf = read_bytes(src, &n);
    for (size_t len = 0; len < n; len++) {
        write_bytes(path, buf, len);
        ferry_tensor r;
        assert_status_names_file(npy_read(path, &r), FERRY_EPARSE, path);
        assert_null(r.data);
    }
    /* one byte too many is as wrong as one too few */
    buf[n] = 0;
    write_bytes(path, buf, n + 1);
    ferry_tensor r;
    assert_status_names_file(npy_read(path, &r), FERRY_EPARSE, path);
    free(buf);
}

static void test_malformed_headers(void **state)
{
    (void)state;
    static const struct {
        const char *header;
        size_t data;
        ferry_status want;
    } cases[] = {
        /* accepted variants of what numpy writes */
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }\n", 12, FERRY_OK},
        {"{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (3,)}", 12, FERRY_OK},
        {"{'shape': (2, 2), 'fortran_order': False, 'descr': '<i8'}   \n", 32, FERRY_OK},
        {"{'descr': '<i8', 'fortran_order': False, 'shape': (2L, 2L), }\n", 32, FERRY_OK},
        {"{'descr': 'f4', 'fortran_order': False, 'shape': (), }\n", 4, FERRY_OK},
        {"{'descr': '<u1', 'fortran_order': False, 'shape': (3, 0, 2), }\n", 0, FERRY_OK},
        /* malformed */
        {"", 0, FERRY_EPARSE},
        {"{", 0, FERRY_EPARSE},
        {"{}", 0, FERRY_EPARSE},
        {"{'descr': '<f4', 'fortran_order': False}\n", 0, FERRY_EPARSE},
        {"{'descr': '<f4', 'shape': (3,)}\n", 12, FERRY_EPARSE},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'x': 1}\n", 12, FERRY_EPARSE},
        {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (3,)}", 12,
         FERRY_EPARSE},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (3)}\n", 12, FERRY_EPARSE},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (-3,)}\n", 12, FERRY_EPARSE},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4\n", 48, FERRY_EPARSE},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (3,,)}\n", 12, FERRY_EPARSE},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': [3]}\n", 12, FERRY_EPARSE},
        {"{'descr': '<f4, 'fortran_order': False, 'shape': (3,)}\n", 12, FERRY_EPARSE},
        {"{'descr': <f4, 'fortran_order': False, 'shape': (3,)}\n", 12, FERRY_EPARSE},
        {"{'descr': '<f4' 'fortran_order': False, 'shape': (3,)}\n", 12, FERRY_EPARSE},
        {"{'descr': '<f4', 'fortran_order': 0, 'shape': (3,)}\n", 12, FERRY_EPARSE},
        {"{'descr': '<f4', 'fortran_order': Fals, 'shape': (3,)}\n", 12, FERRY_EPARSE},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (3,)} x\n", 12, FERRY_EPARSE},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (3,)}}\n", 12, FERRY_EPARSE},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }\n", 11, FERRY_EPARSE},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }\n", 13, FERRY_EPARSE},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, "
         "4294967296,)}\n", 0, FERRY_EPARSE},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}\n", 0,
         FERRY_EPARSE},
        /* well formed but not for Ferry */
        {"{'descr': '<f4', 'fortran_order': True, 'shape': (3,), }\n", 12, FERRY_EUNSUPPORTED},
        {"{'descr': '>f4', 'fortran_order': False, 'shape': (3,), }\n", 12, FERRY_EUNSUPPORTED},
        {"{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }\n", 24, FERRY_EUNSUPPORTED},
        {"{'descr': '|f4', 'fortran_order': False, 'shape': (3,), }\n", 12, FERRY_EUNSUPPORTED},
        {"{'descr': '', 'fortran_order': False, 'shape': (3,), }\n", 12, FERRY_EUNSUPPORTED},
        {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,), }\n", 12,
         FERRY_EUNSUPPORTED},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }\n", 4,
         FERRY_EUNSUPPORTED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int major = 1; major <= 2; major++) {
            char name[64];
            snprintf(name, sizeof name, "hdr_%zu_v%d.npy", i, major);
            const char *path = make_npy(name, major, cases[i].header, cases[i].data);
            ferry_tensor r;
            ferry_status st = npy_read(path, &r);
            if (st != cases[i].want)
                print_error("case %zu (%s): got %s: %s\n", i, cases[i].header,
                            ferry_status_str(st), ferry_last_error());
            if (cases[i].want == FERRY_OK) {
                assert_int_equal(st, FERRY_OK);
                npy_free(&r);
            } else {
                assert_status_names_file(st, cases[i].want, path);
                assert_null(r.data);
            }
        }
    }

    /* the preamble itself */
    const char *path = make_npy("badmagic.npy", 1, "{'descr': '<f4', 'fortran_order': False, "
                                                   "'shape': (1,)}\n", 4);
    size_t n;
    unsigned char *buf = read_bytes(path, &n);
    ferry_tensor r;
    buf[1] = 'X';
    write_bytes(path, buf, n);
    assert_status_names_file(npy_read(path, &r), FERRY_EPARSE, path);
    buf[1] = 'N';
    buf[6] = 4; /* version 4.0 */
    write_bytes(path, buf, n);
    assert_status_names_file(npy_read(path, &r), FERRY_EPARSE, path);
    buf[6] = 1;
    buf[7] = 1; /* version 1.1 */
    write_bytes(path, buf, n);
    assert_status_names_file(npy_read(path, &r), FERRY_EPARSE, path);
    buf[7] = 0;
    buf[8] = 0xff; /* header longer than the file */
    buf[9] = 0xff;
    write_bytes(path, buf, n);
    assert_status_names_file(npy_read(path, &r), FERRY_EPARSE, path);
    buf[8] = 0;
    buf[9] = 0;
    buf[10 + 5] = '\0'; /* a NUL inside the header */
    write_bytes(path, buf, n);
    assert_status_names_file(npy_read(path, &r), FERRY_EPARSE, path);
    free(buf);

    /* a header length of 4 GiB - 1 in a v2 file */
    path = make_npy("hugehdr.npy", 2, "{}", 0);
    buf = read_bytes(path, &n);
    memset(buf + 8, 0xff, 4);
    write_bytes(path, buf, n);
    assert_status_names_file(npy_read(path, &r), FERRY_EPARSE, path);
    free(buf);

    char missing[300];
    snprintf(missing, sizeof missing, "%s/does-not-exist.npy", tmpdir);
    assert_status_names_file(npy_read(missing, &r), FERRY_EIO, missing);
    assert_status_names_file(npy_read(tmpdir, &r), FERRY_EIO, tmpdir);
    assert_int_equal(npy_read(NULL, &r), FERRY_EINVAL);
    assert_int_equal(npy_read(missing, NULL), FERRY_EINVAL);
}

/* Random bytes, and valid files with random bytes changed: any status but a
 * crash (the sanitizer builds make "crash" include any invalid access). */
static void test_garbage_never_crashes(void **state)
{
    (void)state;
    char src[256], path[256];
    tmp_path(src, sizeof src, "fuzz-src.npy");
    tmp_path(path, sizeof path, "fuzz.npy");
    int32_t v[6] = {1, 2, 3, 4, 5, 6};
    ferry_tensor t = {.dtype = FERRY_I32, .ndim = 2, .shape = {2, 3}, .data = v};
    assert_int_equal(npy_write(src, &t), FERRY_OK);
    size_t n;
    unsigned char *valid = read_bytes(src, &n);
    unsigned char buf[512];
    uint64_t rng = 0x9e3779b97f4a7c15u;
#define NEXT() (rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17, rng)
    int ok = 0, parse = 0, unsupported = 0;
    for (int iter = 0; iter < 3000; iter++) {
        size_t len;
        if (iter % 3 == 0) { /* pure noise after a valid magic */
            len = 8 + NEXT() % 200;
            for (size_t i = 0; i < len; i++)
                buf[i] = (unsigned char)NEXT();
            memcpy(buf, "\x93NUMPY", 6);
            buf[6] = (unsigned char)(1 + NEXT() % 3);
            buf[7] = 0;
        } else { /* a valid file with up to 4 bytes changed, maybe cut short */
            memcpy(buf, valid, n);
            len = n;
            int flips = 1 + (int)(NEXT() % 4);
            for (int k = 0; k < flips; k++) {
                size_t at = 6 + NEXT() % (n - 6);
                uint64_t r = NEXT();
                buf[at] = (r & 1) ? (unsigned char)" ,:()'{}0123456789TFL<>|\n"[r % 25]
                                  : (unsigned char)(r >> 8);
            }
            if (NEXT() % 4 == 0)
                len = NEXT() % n;
        }
        write_bytes(path, buf, len);
        ferry_tensor r;
        ferry_status st = npy_read(path, &r);
        if (st == FERRY_OK) {
            assert_non_null(r.data);
            assert_true(r.ndim >= 0 && r.ndim <= FERRY_MAX_DIMS);
            ok++;
            npy_free(&r);
        } else {
            assert_true(st == FERRY_EPARSE || st == FERRY_EUNSUPPORTED);
            assert_non_null(strstr(ferry_last_error(), path));
            assert_null(r.data);
            if (st == FERRY_EPARSE)
                parse++;
            else
                unsupported++;
        }
    }
#undef NEXT
    print_message("garbage: %d read, %d EPARSE, %d EUNSUPPORTED\n", ok, parse, unsupported);
    assert_true(parse > 1000);
    free(valid);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_every_dtype),
        cmocka_unit_test(test_write_rejects),
        cmocka_unit_test(test_numpy_interop),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_malformed_headers),
        cmocka_unit_test(test_garbage_never_crashes),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
