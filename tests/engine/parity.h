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

#define PARITY_MAX_MODELS 128
#define PARITY_MAX_BATCHES 8
#define PARITY_MAX_IO 8

typedef struct parity_model {
    char name[64];
    char family[32]; /* "mlp" for the MLP-era models, else the real-model family */
    char onnx[PATH_MAX + 256];
    int opset;
    double tol; /* relative L2 error allowed against float64 PyTorch */
    int n_batches;
    int batches[PARITY_MAX_BATCHES];
    int n_in, n_out;
    /* file names (in the manifest's directory) per input/output and batch */
    char in_files[PARITY_MAX_IO][PARITY_MAX_BATCHES][128];
    char out_files[PARITY_MAX_IO][PARITY_MAX_BATCHES][128];
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

/* Files of each input or output: [{"files": {"<batch>": "f.npy"}}]. */
static inline int parity_read_files(const cJSON *list, parity_model *pm,
                                    char (*files)[PARITY_MAX_BATCHES][128], int *count)
{
    const cJSON *t;
    *count = 0;
    cJSON_ArrayForEach(t, list)
    {
        if (*count == PARITY_MAX_IO)
            return -1;
        const cJSON *fs = cJSON_GetObjectItemCaseSensitive(t, "files");
        for (int i = 0; i < pm->n_batches; i++) {
            char key[16];
            snprintf(key, sizeof key, "%d", pm->batches[i]);
            const cJSON *f = cJSON_GetObjectItemCaseSensitive(fs, key);
            if (!cJSON_IsString(f))
                return -1;
            snprintf(files[*count][i], sizeof files[*count][i], "%s", f->valuestring);
        }
        (*count)++;
    }
    return *count ? 0 : -1;
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
        const cJSON *family = cJSON_GetObjectItemCaseSensitive(m, "family");
        const cJSON *tol = cJSON_GetObjectItemCaseSensitive(m, "tol");
        const cJSON *bs = cJSON_GetObjectItemCaseSensitive(m, "batch_sizes"), *b;
        if (!cJSON_IsString(name) || !cJSON_IsString(file) || !cJSON_IsArray(bs) ||
            pm->n_models == PARITY_MAX_MODELS) {
            fprintf(stderr, "%s: bad model entry\n", path);
            cJSON_Delete(root);
            return -1;
        }
        parity_model *pmod = &pm->models[pm->n_models++];
        snprintf(pmod->name, sizeof pmod->name, "%s", name->valuestring);
        snprintf(pmod->family, sizeof pmod->family, "%s",
                 cJSON_IsString(family) ? family->valuestring : "mlp");
        char onnx_path[sizeof pmod->onnx];
        snprintf(onnx_path, sizeof onnx_path, "%s/%s", parity_models_dir(), file->valuestring);
        memcpy(pmod->onnx, onnx_path, sizeof onnx_path);
        pmod->opset = cJSON_IsNumber(opset) ? opset->valueint : 0;
        pmod->tol = cJSON_IsNumber(tol) ? tol->valuedouble : 1e-5;
        cJSON_ArrayForEach(b, bs)
        {
            if (cJSON_IsNumber(b) && pmod->n_batches < PARITY_MAX_BATCHES)
                pmod->batches[pmod->n_batches++] = b->valueint;
        }
        if (parity_read_files(cJSON_GetObjectItemCaseSensitive(m, "inputs"), pmod,
                              pmod->in_files, &pmod->n_in) ||
            parity_read_files(cJSON_GetObjectItemCaseSensitive(m, "outputs"), pmod,
                              pmod->out_files, &pmod->n_out)) {
            fprintf(stderr, "%s: model '%s': bad inputs/outputs (regenerate with gen.py)\n",
                    path, pmod->name);
            cJSON_Delete(root);
            return -1;
        }
    }
    cJSON_Delete(root);
    if (pm->n_models == 0) {
        fprintf(stderr, "%s: lists no models\n", path);
        return -1;
    }
    return 0;
}

/* Runs model pm (already compiled into e) on its reference inputs at
 * batch index bi and compares every output with PyTorch's float64 one;
 * fails the current test if a relative error exceeds tol. Prints the
 * errors either way. Returns the largest. */
static inline double parity_check(ferry_engine *e, const char *dir, const parity_model *pm, int bi,
                                  double tol, const char *label)
{
    int b = pm->batches[bi];
    ferry_tensor in[PARITY_MAX_IO], ref[PARITY_MAX_IO], out[PARITY_MAX_IO];
    char path[PATH_MAX + 160];
    for (int k = 0; k < pm->n_in; k++) {
        snprintf(path, sizeof path, "%s/%s", dir, pm->in_files[k][bi]);
        if (npy_read(path, &in[k]))
            fail_msg("%s", ferry_last_error());
        assert_int_equal(in[k].shape[0], b);
    }
    for (int k = 0; k < pm->n_out; k++) {
        snprintf(path, sizeof path, "%s/%s", dir, pm->out_files[k][bi]);
        if (npy_read(path, &ref[k]))
            fail_msg("%s", ferry_last_error());
        /* gen.py's sequence models (bert-var) have their length axis at
         * the first input's dim 1; a model without one ignores it */
        int64_t length = pm->n_in && in[0].ndim >= 2 ? in[0].shape[1] : 0;
        ferry_status st = ferry_engine_output_info_len(e, k, b, length, &out[k]);
        if (st)
            fail_msg("ferry_engine_output_info(%s, b=%d): %s: %s", pm->name, b,
                     ferry_status_str(st), ferry_last_error());
        assert_int_equal(out[k].ndim, ref[k].ndim);
        for (int i = 0; i < ref[k].ndim; i++)
            assert_int_equal(out[k].shape[i], ref[k].shape[i]);
        int64_t n = ferry_tensor_numel(&ref[k]);
        size_t es = ferry_dtype_size(out[k].dtype);
        out[k].data = malloc((size_t)(n ? n : 1) * es);
        assert_non_null(out[k].data);
        if (out[k].dtype == FERRY_F32) /* an output never written shows as NaN */
            for (int64_t i = 0; i < n; i++)
                ((float *)out[k].data)[i] = NAN;
    }
    ferry_status st = ferry_engine_run(e, in, pm->n_in, out, pm->n_out);
    if (st)
        fail_msg("ferry_engine_run(%s, b=%d, %s): %s: %s", pm->name, b, label,
                 ferry_status_str(st), ferry_last_error());
    double worst = 0;
    for (int k = 0; k < pm->n_out; k++) {
        int64_t n = ferry_tensor_numel(&ref[k]);
        double num = 0, den = 0, max_abs = 0;
        for (int64_t i = 0; i < n; i++) {
            double o, r;
            if (out[k].dtype == FERRY_F32)
                o = ((const float *)out[k].data)[i];
            else if (out[k].dtype == FERRY_I64)
                o = (double)((const int64_t *)out[k].data)[i];
            else
                o = NAN;
            if (ref[k].dtype == FERRY_F64)
                r = ((const double *)ref[k].data)[i];
            else if (ref[k].dtype == FERRY_F32)
                r = ((const float *)ref[k].data)[i];
            else if (ref[k].dtype == FERRY_I64)
                r = (double)((const int64_t *)ref[k].data)[i];
            else
                r = NAN;
            double d = o - r;
            num += d * d;
            den += r * r;
            if (!(fabs(d) <= max_abs)) /* also catches NaN */
                max_abs = fabs(d);
        }
        double rel = sqrt(num) / (den > 0 ? sqrt(den) : 1.0);
        print_message("%-18s b=%-5d out %d %-16s rel err %.3e  max abs %.3e  (tol %.0e)\n",
                      pm->name, b, k, label, rel, max_abs, tol);
        if (!(rel <= worst))
            worst = rel;
        free(out[k].data);
        npy_free(&ref[k]);
    }
    for (int k = 0; k < pm->n_in; k++)
        npy_free(&in[k]);
    if (!(worst <= tol))
        fail_msg("%s b=%d %s: relative error %.3e exceeds %.0e", pm->name, b, label, worst, tol);
    return worst;
}

#endif
