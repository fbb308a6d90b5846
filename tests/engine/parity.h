/*
 * parity.h - shared by test_parity.c and test_parity_cuda.c: reads the
 * manifest tests/models/gen.py wrote, runs one model on one reference input
 * and measures ||out - ref|| / ||ref|| in double against PyTorch's float64
 * output. Include after <cmocka.h>.
 */
#ifndef FERRY_TESTS_ENGINE_PARITY_H
#define FERRY_TESTS_ENGINE_PARITY_H

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry.h"
#include "util/npy.h"

#define PARITY_MAX_MODELS 16
#define PARITY_MAX_BATCHES 8

typedef struct parity_model {
    char name[64];
    char onnx[PATH_MAX + 256];
    int opset;
    int n_batches;
    int batches[PARITY_MAX_BATCHES];
} parity_model;

typedef struct parity_manifest {
    char dir[PATH_MAX];
    int n_models;
    parity_model models[PARITY_MAX_MODELS];
} parity_manifest;

/* The models directory: $FERRY_TEST_MODELS, else the build's default. */
static inline const char *parity_models_dir(void)
{
    const char *d = getenv("FERRY_TEST_MODELS");
    return d && *d ? d : FERRY_TEST_MODELS;
}

/* Reads DIR/manifest.json; returns 0, or -1 after printing why. */
static inline int parity_load_manifest(parity_manifest *pm)
{
    memset(pm, 0, sizeof *pm);
    snprintf(pm->dir, sizeof pm->dir, "%s", parity_models_dir());
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/manifest.json", pm->dir);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot open (run tests/models/gen.py --out %s, or ctest, whose "
                        "gen_models fixture does)\n", path, pm->dir);
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)len + 1);
    size_t got = text ? fread(text, 1, (size_t)len, f) : 0;
    fclose(f);
    if (!text || got != (size_t)len) {
        free(text);
        fprintf(stderr, "%s: read failed\n", path);
        return -1;
    }
    text[len] = '\0';
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *models = cJSON_GetObjectItemCaseSensitive(root, "models"), *m;
    if (!cJSON_IsArray(models)) {
        fprintf(stderr, "%s: no 'models' array\n", path);
        cJSON_Delete(root);
        return -1;
    }
    cJSON_ArrayForEach(m, models)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(m, "name");
        const cJSON *file = cJSON_GetObjectItemCaseSensitive(m, "onnx");
        const cJSON *opset = cJSON_GetObjectItemCaseSensitive(m, "opset");
        const cJSON *bs = cJSON_GetObjectItemCaseSensitive(m, "batch_sizes"), *b;
        if (!cJSON_IsString(name) || !cJSON_IsString(file) || !cJSON_IsArray(bs) ||
            pm->n_models == PARITY_MAX_MODELS) {
            fprintf(stderr, "%s: bad model entry\n", path);
            cJSON_Delete(root);
            return -1;
        }
        parity_model *pmod = &pm->models[pm->n_models++];
        snprintf(pmod->name, sizeof pmod->name, "%s", name->valuestring);
        char onnx_path[sizeof pmod->onnx];
        snprintf(onnx_path, sizeof onnx_path, "%s/%s", parity_models_dir(), file->valuestring);
        memcpy(pmod->onnx, onnx_path, sizeof onnx_path);
        pmod->opset = cJSON_IsNumber(opset) ? opset->valueint : 0;
        cJSON_ArrayForEach(b, bs)
        {
            if (cJSON_IsNumber(b) && pmod->n_batches < PARITY_MAX_BATCHES)
                pmod->batches[pmod->n_batches++] = b->valueint;
        }
    }
    cJSON_Delete(root);
    if (pm->n_models == 0) {
        fprintf(stderr, "%s: lists no models\n", path);
        return -1;
    }
    return 0;
}

/* Runs model `name` (already compiled into e) on DIR/name.in.b.npy and
 * compares with DIR/name.ref.b.npy; fails the current test if the relative
 * error exceeds tol. Prints the error either way. Returns the error. */
static inline double parity_check(ferry_engine *e, const char *dir, const char *name, int b,
                                  double tol, const char *label)
{
    char in_path[PATH_MAX + 128], ref_path[PATH_MAX + 128];
    snprintf(in_path, sizeof in_path, "%s/%s.in.%d.npy", dir, name, b);
    snprintf(ref_path, sizeof ref_path, "%s/%s.ref.%d.npy", dir, name, b);
    ferry_tensor in, ref, out;
    ferry_status st = npy_read(in_path, &in);
    if (st)
        fail_msg("%s", ferry_last_error());
    st = npy_read(ref_path, &ref);
    if (st)
        fail_msg("%s", ferry_last_error());
    assert_int_equal(in.dtype, FERRY_F32);
    assert_int_equal(ref.dtype, FERRY_F64);
    assert_int_equal(in.shape[0], b);
    assert_int_equal(ref.shape[0], b);

    st = ferry_engine_output_info(e, 0, b, &out);
    if (st)
        fail_msg("ferry_engine_output_info(%s, b=%d): %s: %s", name, b, ferry_status_str(st),
                 ferry_last_error());
    assert_int_equal(out.dtype, FERRY_F32);
    assert_int_equal(out.ndim, ref.ndim);
    for (int i = 0; i < ref.ndim; i++)
        assert_int_equal(out.shape[i], ref.shape[i]);
    int64_t n = ferry_tensor_numel(&ref);
    float *o = malloc(sizeof(float) * (size_t)n);
    assert_non_null(o);
    for (int64_t i = 0; i < n; i++) /* an output never written shows as NaN */
        o[i] = NAN;
    out.data = o;

    st = ferry_engine_run(e, &in, 1, &out, 1);
    if (st)
        fail_msg("ferry_engine_run(%s, b=%d, %s): %s: %s", name, b, label, ferry_status_str(st),
                 ferry_last_error());

    const double *r = ref.data;
    double num = 0, den = 0, max_abs = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)o[i] - r[i];
        num += d * d;
        den += r[i] * r[i];
        if (!(fabs(d) <= max_abs)) /* also catches NaN */
            max_abs = fabs(d);
    }
    double rel = sqrt(num) / (den > 0 ? sqrt(den) : 1.0);
    print_message("%-10s b=%-5d %-22s rel err %.3e  max abs %.3e  (tol %.0e)\n", name, b, label,
                  rel, max_abs, tol);
    free(o);
    npy_free(&in);
    npy_free(&ref);
    if (!(rel <= tol))
        fail_msg("%s b=%d %s: relative error %.3e exceeds %.0e", name, b, label, rel, tol);
    return rel;
}

#endif
