/*
 * test_error.c - the user's view of an error message (ferry_error_for_users):
 * the source file references CUDA errors carry are left out, nothing else.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/error.h"

static void check(const char *in, const char *want)
{
    char out[256];
    ferry_error_for_users(in, out, sizeof out);
    assert_string_equal(out, want);
}

static void test_source_refs_left_out(void **state)
{
    (void)state;
    check("cudaMalloc failed: out of memory (cudaErrorMemoryAllocation) at "
          "/work/ferry/src/backend/cuda/cuda_device.c:59",
          "cudaMalloc failed: out of memory (cudaErrorMemoryAllocation)");
    check("cuda: cublasLtMatmul failed: CUBLAS_STATUS_NOT_SUPPORTED at src/backend/cuda/"
          "cuda_gemm.c:210; then x at src/a.cu:3, end",
          "cuda: cublasLtMatmul failed: CUBLAS_STATUS_NOT_SUPPORTED; then x, end");
    /* what only looks like one stays */
    check("input 'x' at layer 3: shape [2,3]", "input 'x' at layer 3: shape [2,3]");
    check("model at models/m.onnx:12 bytes", "model at models/m.onnx:12 bytes");
    check("file at dir/f.c:x", "file at dir/f.c:x");
    check("loaded at f.c:12", "loaded at f.c:12"); /* no directory: not a source path */
    char small[8];
    ferry_error_for_users("abcdefghij", small, sizeof small);
    assert_string_equal(small, "abcdefg");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_source_refs_left_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
