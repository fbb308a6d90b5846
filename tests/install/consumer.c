/*
 * consumer.c - a user's program, built by tests/install/test_install.py
 * against an installed Ferry only (pkg-config or find_package), never the
 * source tree. Runs a model on 3 samples of ones and prints one line:
 * "ok <version> <steps> <checksum>", or the error and exit status 1.
 */
#include <ferry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what, ferry_status st)
{
    fprintf(stderr, "%s: %s: %s\n", what, ferry_status_str(st), ferry_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: consumer MODEL.onnx\n");
        return 2;
    }
    if (strcmp(ferry_version(), FERRY_VERSION) != 0) {
        fprintf(stderr, "header %s, library %s\n", FERRY_VERSION, ferry_version());
        return 1;
    }
    ferry_model *m = NULL;
    ferry_status st = ferry_model_load("/nonexistent/model.onnx", &m);
    if (st != FERRY_EIO || !strstr(ferry_last_error(), "/nonexistent/model.onnx")) {
        fprintf(stderr, "a missing file gave %s: '%s'\n", ferry_status_str(st), ferry_last_error());
        return 1;
    }
    if ((st = ferry_model_load(argv[1], &m)) != FERRY_OK)
        return fail("load", st);
    int n_steps = 0;
    if ((st = ferry_model_plan(m, NULL, 0, &n_steps)) != FERRY_OK)
        return fail("plan", st);

    /* The engine must copy cfg.device: this buffer is overwritten after. */
    char device[16];
    strcpy(device, "cpu");
    ferry_engine_config cfg;
    ferry_engine_config_init(&cfg);
    cfg.device = device;
    cfg.workers = 1;
    ferry_engine *e = NULL;
    if ((st = ferry_engine_create(m, &cfg, &e)) != FERRY_OK)
        return fail("engine", st);
    strcpy(device, "XXXX");
    if (strcmp(ferry_engine_get_config(e)->device, "cpu") != 0) {
        fprintf(stderr, "the engine kept the caller's device pointer\n");
        return 1;
    }

    ferry_tensor_info ti;
    ferry_model_input(m, 0, &ti);
    int64_t per = 1;
    for (int d = 1; d < ti.ndim; d++)
        per *= ti.shape[d];
    float *x = malloc(sizeof *x * (size_t)(3 * per));
    for (int64_t i = 0; i < 3 * per; i++)
        x[i] = 1.0f;
    ferry_tensor in = {FERRY_F32, ti.ndim, {3}, x};
    for (int d = 1; d < ti.ndim; d++)
        in.shape[d] = ti.shape[d];
    ferry_tensor out;
    if ((st = ferry_engine_output_info(e, 0, 3, &out)) != FERRY_OK)
        return fail("output_info", st);
    int64_t n_out = ferry_tensor_numel(&out);
    float *y = malloc(sizeof *y * (size_t)n_out);
    out.data = y;
    if ((st = ferry_engine_run(e, &in, 1, &out, 1)) != FERRY_OK)
        return fail("run", st);
    double sum = 0;
    for (int64_t i = 0; i < n_out; i++)
        sum += y[i];
    printf("ok %s %d %.4f\n", ferry_version(), n_steps, sum);
    ferry_engine_destroy(e);
    ferry_model_destroy(m);
    free(x);
    free(y);
    return 0;
}
