/*
 * test_onnx_external.c - external tensor data stays inside the model's
 * folder and never hangs the loader (issue 14, defects 3 and 4): a FIFO is
 * refused at once instead of blocking the open for a writer; a symbolic
 * link, as the file or as a folder on the way, is refused even though the
 * location's text stays inside (the link's target was read before); a
 * plain file in a subfolder still loads. The rest of external data (offset,
 * length, "..", absolute paths) is in test_onnx_load.c.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "graph/graph.h"
#include "graph/model.h"
#include "onnx_builder.h"

static char root[256];   /* holds model/ and outside/ */
static char mdir[300];   /* the model's folder */
static char outdir[300]; /* a folder beside it, which a link may point into */

static int setup_tmp(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "/tmp/ferry-test-onnx-ext-XXXXXX");
    if (!mkdtemp(root))
        return -1;
    snprintf(mdir, sizeof mdir, "%s/model", root);
    snprintf(outdir, sizeof outdir, "%s/outside", root);
    return mkdir(mdir, 0700) || mkdir(outdir, 0700) ? -1 : 0;
}

static int teardown_tmp(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len)
        assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

#define ASSERT_MSG(frag)                                                                           \
    do {                                                                                           \
        if (!strstr(ferry_last_error(), (frag)))                                                   \
            fail_msg("message '%s' lacks '%s'", ferry_last_error(), (frag));                       \
    } while (0)

/* The weights of fc1 (8x4 floats), as a file's bytes. */
static float weights[32];

/* mlp 4-8-2 whose fc1.weight is external data at `location` (offset 0). */
static ob *external_model(const char *location)
{
    ob *b = ob_mlp(4, 8, 2);
    Onnx__TensorProto *t = b->graph.initializer[0];
    t->has_raw_data = 0;
    t->has_data_location = 1;
    t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    Onnx__StringStringEntryProto **kv = ob_alloc(b, 2 * sizeof *kv);
    const char *keys[2] = {"location", "length"};
    const char *vals[2] = {location, "128"};
    for (int i = 0; i < 2; i++) {
        kv[i] = ob_alloc(b, sizeof *kv[i]);
        onnx__string_string_entry_proto__init(kv[i]);
        kv[i]->key = ob_str(b, keys[i]);
        kv[i]->value = ob_str(b, vals[i]);
    }
    t->external_data = kv;
    t->n_external_data = 2;
    return b;
}

/* Loads the model (from a file in mdir, as `ferry serve` does) and
 * returns the status; the model, if any, is checked and freed. */
static ferry_status load(const char *location)
{
    ob *b = external_model(location);
    size_t len;
    uint8_t *buf = ob_pack(b, &len);
    char mpath[512];
    snprintf(mpath, sizeof mpath, "%s/m.onnx", mdir);
    write_file(mpath, buf, len);
    ob_free(b);
    ferry_model *m = NULL;
    ferry_status st = ferry_model_load(mpath, &m);
    if (st == FERRY_OK) {
        int wv = graph_find_value(m->g, "fc1.weight");
        assert_memory_equal(m->g->values[wv].data, weights, sizeof weights);
    }
    ferry_model_destroy(m);
    return st;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void test_plain_files_load(void **state)
{
    (void)state;
    char p[512];
    snprintf(p, sizeof p, "%s/w.bin", mdir);
    write_file(p, weights, sizeof weights);
    assert_int_equal(load("w.bin"), FERRY_OK);
    snprintf(p, sizeof p, "%s/sub", mdir);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/sub/w.bin", mdir);
    write_file(p, weights, sizeof weights);
    assert_int_equal(load("sub/w.bin"), FERRY_OK);
    assert_int_equal(load("./sub//w.bin"), FERRY_OK);
}

/* Before: fopen blocked for a writer that never came, forever. */
static void test_fifo_is_refused_at_once(void **state)
{
    (void)state;
    char p[512];
    snprintf(p, sizeof p, "%s/fifo.bin", mdir);
    assert_int_equal(mkfifo(p, 0600), 0);
    double t = now_s();
    assert_int_equal(load("fifo.bin"), FERRY_EIO);
    ASSERT_MSG("initializer 'fc1.weight': external data");
    ASSERT_MSG("fifo.bin' is a FIFO, not a regular file");
    assert_true(now_s() - t < 5); /* not a timing test: it used to never return */
}

/* The model file itself a FIFO: refused at once too (open blocked). */
static void test_model_fifo_is_refused(void **state)
{
    (void)state;
    char p[512];
    snprintf(p, sizeof p, "%s/model-fifo.onnx", mdir);
    assert_int_equal(mkfifo(p, 0600), 0);
    ferry_model *m = NULL;
    assert_int_equal(ferry_model_load(p, &m), FERRY_EIO);
    ASSERT_MSG("model-fifo.onnx': not a regular file");
    assert_null(m);
}

/* Before: the file outside the folder was read through the link. */
static void test_symlinked_file_is_refused(void **state)
{
    (void)state;
    char target[512], link[512];
    snprintf(target, sizeof target, "%s/secret.bin", outdir);
    write_file(target, weights, sizeof weights);
    snprintf(link, sizeof link, "%s/link.bin", mdir);
    assert_int_equal(symlink(target, link), 0);
    assert_int_equal(load("link.bin"), FERRY_EIO);
    ASSERT_MSG("link.bin' is or passes through a symbolic link");
    ASSERT_MSG("outside the model's folder");
    /* relative, and pointing inside the folder: refused all the same (a
     * link is not followed at all, so there is no window to swap it) */
    snprintf(link, sizeof link, "%s/inner.bin", mdir);
    assert_int_equal(symlink("w.bin", link), 0);
    assert_int_equal(load("inner.bin"), FERRY_EIO);
    ASSERT_MSG("symbolic link");
}

static void test_symlinked_folder_is_refused(void **state)
{
    (void)state;
    char target[512], link[512];
    snprintf(target, sizeof target, "%s/data.bin", outdir);
    write_file(target, weights, sizeof weights);
    snprintf(link, sizeof link, "%s/ext", mdir);
    assert_int_equal(symlink(outdir, link), 0);
    assert_int_equal(load("ext/data.bin"), FERRY_EIO);
    ASSERT_MSG("ext/data.bin' is or passes through a symbolic link");
    /* deeper: a real folder, then the link */
    char p[512];
    snprintf(p, sizeof p, "%s/real", mdir);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(link, sizeof link, "%s/real/ext", mdir);
    assert_int_equal(symlink(outdir, link), 0);
    assert_int_equal(load("real/ext/data.bin"), FERRY_EIO);
    ASSERT_MSG("symbolic link");
}

static void test_other_kinds(void **state)
{
    (void)state;
    char p[512];
    snprintf(p, sizeof p, "%s/adir", mdir);
    assert_int_equal(mkdir(p, 0700), 0);
    assert_int_equal(load("adir"), FERRY_EIO);
    ASSERT_MSG("adir' is a directory, not a regular file");
    snprintf(p, sizeof p, "%s/plain", mdir);
    write_file(p, weights, sizeof weights);
    assert_int_equal(load("plain/w.bin"), FERRY_EIO); /* a file used as a folder */
    ASSERT_MSG("cannot open external data");
    ASSERT_MSG("Not a directory");
    assert_int_equal(load("nothing/w.bin"), FERRY_EIO);
    ASSERT_MSG("No such file");
}

int main(void)
{
    for (int i = 0; i < 32; i++)
        weights[i] = (float)i * 0.25f - 3;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_files_load),
        cmocka_unit_test(test_fifo_is_refused_at_once),
        cmocka_unit_test(test_model_fifo_is_refused),
        cmocka_unit_test(test_symlinked_file_is_refused),
        cmocka_unit_test(test_symlinked_folder_is_refused),
        cmocka_unit_test(test_other_kinds),
    };
    return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
