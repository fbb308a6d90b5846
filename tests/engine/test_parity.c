/*
 * test_parity.c - the CPU engine against PyTorch in float64: every model in
 * the manifest tests/models/gen.py writes, at every batch size it lists
 * (1, 7, 64, 1000), through ferry_model_load + ferry_engine_run with
 * max_batch 256 (so batch 1000 runs as four chunks over two workers).
 * Pass: ||out - ref|| / ||ref|| <= the manifest's tol (1e-5 for the MLPs,
 * 1e-4 for the real models), computed in double, for every output.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "engine/parity.h"

typedef struct model_ctx {
    const parity_model *pm;
    ferry_model *model;
    ferry_engine *engine;
} model_ctx;

typedef struct parity_case {
    model_ctx *ctx;
    int batch_index;
    char name[96];
} parity_case;

static parity_manifest manifest;
static model_ctx *current; /* the model of the group being run */

static int group_setup(void **state)
{
    (void)state;
    model_ctx *c = current;
    ferry_status st = ferry_model_load(c->pm->onnx, &c->model);
    if (st) {
        print_error("ferry_model_load('%s'): %s: %s\n", c->pm->onnx, ferry_status_str(st),
                    ferry_last_error());
        return -1;
    }
    ferry_engine_config cfg;
    ferry_engine_config_init(&cfg);
    cfg.device = "cpu";
    cfg.workers = 2;
    cfg.max_batch = 256;
    cfg.precision = FERRY_PRECISION_FP32;
    st = ferry_engine_create(c->model, &cfg, &c->engine);
    if (st) {
        print_error("ferry_engine_create(%s, cpu fp32): %s: %s\n", c->pm->name,
                    ferry_status_str(st), ferry_last_error());
        ferry_model_destroy(c->model);
        c->model = NULL;
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    ferry_engine_destroy(current->engine);
    ferry_model_destroy(current->model);
    current->engine = NULL;
    current->model = NULL;
    return 0;
}

static void test_case(void **state)
{
    parity_case *pc = *state;
    parity_check(pc->ctx->engine, manifest.dir, pc->ctx->pm, pc->batch_index, pc->ctx->pm->tol,
                 "cpu fp32");
}

int main(void)
{
    if (parity_load_manifest(&manifest))
        return 1;
    int failed = 0;
    for (int m = 0; m < manifest.n_models; m++) {
        const parity_model *pm = &manifest.models[m];
        model_ctx ctx = {.pm = pm};
        parity_case cases[PARITY_MAX_BATCHES];
        struct CMUnitTest tests[PARITY_MAX_BATCHES];
        for (int i = 0; i < pm->n_batches; i++) {
            cases[i].ctx = &ctx;
            cases[i].batch_index = i;
            snprintf(cases[i].name, sizeof cases[i].name, "%s b=%d", pm->name, pm->batches[i]);
            tests[i] = (struct CMUnitTest){.name = cases[i].name, .test_func = test_case,
                                           .initial_state = &cases[i]};
        }
        char group[96];
        snprintf(group, sizeof group, "parity %s (opset %d) cpu", pm->name, pm->opset);
        current = &ctx;
        if (_cmocka_run_group_tests(group, tests, (size_t)pm->n_batches, group_setup,
                                    group_teardown) != 0)
            failed++;
    }
    return failed ? 1 : 0;
}
