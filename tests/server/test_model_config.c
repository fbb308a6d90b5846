/*
 * test_model_config.c - the protobuf text format reader (pbtxt.c) and
 * config.pbtxt's meaning for Ferry (model_config.c): the syntax's forms
 * (lists, both message brackets, separators, comments, string escapes and
 * concatenation, signed numbers), syntax errors with their line, limits
 * (nesting), every applied field, each ignored field reported once, bad
 * values with the field's path, and the version policies' choices.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "server/model_config.h"
#include "server/pbtxt.h"

static void test_pbtxt_forms(void **state)
{
    (void)state;
    const char *t = "# a comment\n"
                    "name: \"a\\tb\" 'c\\x41\\101\\u00e9'  # two strings, one value\n"
                    "n: -5; x: 0x1F, f: 1.5e-3 e: KIND_GPU\n"
                    "m { a: 1 } m: < b: [2, 3] >\n"
                    "l [ { k: 1 }, { k: 2 } ]\n"
                    "empty: []\n"
                    "neg: - inf\n";
    pbtxt_msg m;
    char err[200];
    assert_true(pbtxt_parse(t, strlen(t), &m, err, sizeof err));
    assert_int_equal(m.n, 10);
    assert_string_equal(m.fields[0].name, "name");
    assert_int_equal(m.fields[0].kind, PBTXT_STRING);
    assert_int_equal(m.fields[0].len, 8);
    assert_memory_equal(m.fields[0].text, "a\tbcAA\xc3\xa9", 8);
    assert_int_equal(m.fields[0].line, 2);
    assert_string_equal(m.fields[1].text, "-5");
    assert_int_equal(m.fields[1].kind, PBTXT_NUMBER);
    assert_string_equal(m.fields[2].text, "0x1F");
    assert_string_equal(m.fields[3].text, "1.5e-3");
    assert_int_equal(m.fields[4].kind, PBTXT_IDENT);
    assert_string_equal(m.fields[4].text, "KIND_GPU");
    assert_int_equal(m.fields[5].kind, PBTXT_MESSAGE);
    assert_int_equal(m.fields[5].msg.n, 1);
    assert_int_equal(m.fields[6].kind, PBTXT_MESSAGE);
    assert_int_equal(m.fields[6].msg.n, 2); /* b: [2, 3] is b twice */
    assert_string_equal(m.fields[6].msg.fields[1].text, "3");
    assert_string_equal(m.fields[7].name, "l");
    assert_string_equal(m.fields[8].name, "l");
    assert_string_equal(m.fields[8].msg.fields[0].text, "2");
    assert_string_equal(m.fields[9].name, "neg");
    assert_string_equal(m.fields[9].text, "-inf");
    assert_int_equal(m.fields[9].line, 7);
    pbtxt_free(&m);
}

static void expect_syntax_error(const char *t, const char *frag)
{
    pbtxt_msg m;
    char err[200];
    if (pbtxt_parse(t, strlen(t), &m, err, sizeof err))
        fail_msg("'%s' was read", t);
    if (!strstr(err, frag))
        fail_msg("'%s': error '%s' lacks '%s'", t, err, frag);
    assert_int_equal(m.n, 0);
    assert_null(m.fields);
}

static void test_pbtxt_errors(void **state)
{
    (void)state;
    expect_syntax_error("a: 1\nb {\n c: 2\n", "line 4: expected '}' before the end of the file");
    expect_syntax_error("a 1", "line 1: field 'a': expected ':' or '{'");
    expect_syntax_error("a: \"open\nb: 2", "line 1: string not closed");
    expect_syntax_error("a: }", "line 1: field 'a': expected a value, found '}'");
    expect_syntax_error("\n\n}", "line 3: unexpected '}'");
    expect_syntax_error("a: [1, 2", "field 'a': expected ',' or ']'");
    expect_syntax_error("a [1]", "a list of scalars needs ':'");
    expect_syntax_error("[ext.x]: 1", "extension");
    expect_syntax_error("a: \"\\q\"", "unknown escape '\\q'");
    expect_syntax_error("a: \"\\uD800\"", "not a Unicode scalar value");
    expect_syntax_error("a: \"\\777\"", "larger than a byte");
    expect_syntax_error("a: \x01", "found byte 0x01");
    expect_syntax_error("a { b: [ {c: 1}, 2 ] }", "expected '{' in a list of messages");
    /* nesting is bounded: no input can exhaust the stack */
    char deep[400] = "";
    for (int i = 0; i < 40; i++)
        strcat(deep, "a{");
    expect_syntax_error(deep, "nested deeper than 32");
    /* and bytes that end anywhere are an error, not a read past the end */
    const char *whole = "a { b: \"x\\\"y\" c: [1, 2] }";
    for (size_t n = 1; n < strlen(whole); n++) {
        char *cut = malloc(n);
        memcpy(cut, whole, n);
        pbtxt_msg m;
        char err[200];
        if (pbtxt_parse(cut, n, &m, err, sizeof err))
            pbtxt_free(&m);
        free(cut);
    }
}

typedef struct warnings {
    char text[16][160];
    int n;
} warnings;

static void on_warn(void *user, const char *field, const char *why)
{
    warnings *w = user;
    assert_true(w->n < 16);
    snprintf(w->text[w->n++], sizeof w->text[0], "%s: %s", field, why);
}

static void test_config_applied(void **state)
{
    (void)state;
    const char *t = "name: \"m\"\n"
                    "platform: \"onnxruntime_onnx\"\n"
                    "max_batch_size: 32\n"
                    "default_model_filename: \"net.onnx\"\n"
                    "dynamic_batching {\n"
                    "  max_queue_delay_microseconds: 100\n"
                    "  preferred_batch_size: [ 4, 8 ]\n"
                    "  priority_levels: 3\n"
                    "  default_queue_policy { timeout_action: REJECT\n"
                    "    default_timeout_microseconds: 5000 max_queue_size: 9 }\n"
                    "}\n"
                    "instance_group [ { count: 2 kind: KIND_CPU }, { count: 3 } ]\n";
    model_config mc;
    warnings w = {0};
    char err[300];
    assert_true(model_config_read(t, strlen(t), "m", &mc, on_warn, &w, err, sizeof err));
    assert_int_equal(w.n, 1);
    assert_string_equal(w.text[0], "instance_group.kind: not applied: the device is --device");
    assert_string_equal(mc.model_filename, "net.onnx");
    ferry_engine_config ec;
    ferry_batcher_config bc;
    ferry_engine_config_init(&ec);
    ferry_batcher_config_init(&bc);
    model_config_apply(&mc, &ec, &bc);
    assert_int_equal(ec.max_batch, 32);
    assert_int_equal(bc.max_batch, 32);
    assert_int_equal(bc.max_delay_us, 100);
    assert_int_equal(bc.n_preferred, 2);
    assert_int_equal(bc.preferred_batch_sizes[0], 4);
    assert_int_equal(bc.preferred_batch_sizes[1], 8);
    assert_int_equal(bc.priority_levels, 3);
    assert_int_equal(bc.default_priority, 0); /* Triton's level 3 of 3: the lowest */
    assert_int_equal(bc.default_timeout_us, 5000);
    assert_int_equal(bc.max_queue, 9);
    assert_int_equal(ec.workers, 5);

    /* nothing set: the defaults stay */
    assert_true(model_config_read("", 0, "m", &mc, on_warn, &w, err, sizeof err));
    ferry_engine_config ec2;
    ferry_batcher_config bc2;
    ferry_engine_config_init(&ec2);
    ferry_batcher_config_init(&bc2);
    ec = ec2;
    bc = bc2;
    model_config_apply(&mc, &ec, &bc);
    assert_memory_equal(&ec, &ec2, sizeof ec);
    assert_memory_equal(&bc, &bc2, sizeof bc);
    assert_string_equal(mc.model_filename, "model.onnx");
}

static void test_config_ignored_once(void **state)
{
    (void)state;
    const char *t = "input [ { name: \"a\" }, { name: \"b\" } ]\n"
                    "output { name: \"y\" }\n"
                    "optimization { graph { level: 1 } }\n"
                    "max_batch_size: 0\n"
                    "dynamic_batching { preserve_ordering: true default_priority_level: 1\n"
                    "  default_queue_policy { timeout_action: DELAY allow_timeout_override: false }"
                    " }\n"
                    "instance_group { kind: KIND_GPU } instance_group { kind: KIND_GPU gpus: [0] }\n"
                    "parameters { key: \"k\" value { string_value: \"v\" } }\n"
                    "parameters { key: \"k2\" value { string_value: \"v\" } }\n";
    model_config mc;
    warnings w = {0};
    char err[300];
    assert_true(model_config_read(t, strlen(t), "m", &mc, on_warn, &w, err, sizeof err));
    static const char *const want[] = {
        "input: not applied: Ferry reads them from the ONNX model",
        "output: not applied: Ferry reads them from the ONNX model",
        "optimization: not applied",
        "max_batch_size: 0 (no batch dimension) is not applied: Ferry batches along the first "
        "dimension, up to --max-batch",
        "dynamic_batching.preserve_ordering: not applied",
        "dynamic_batching.default_queue_policy.timeout_action: DELAY is not applied: a request "
        "past its timeout is answered 504",
        "dynamic_batching.default_queue_policy.allow_timeout_override: false is not applied: a "
        "request's own timeout parameter is honoured",
        "instance_group.kind: not applied: the device is --device",
        "instance_group.gpus: not applied: the device is --device",
        "parameters: not applied",
    };
    assert_int_equal(w.n, (int)(sizeof want / sizeof *want));
    for (int i = 0; i < w.n; i++)
        assert_string_equal(w.text[i], want[i]);
    assert_false(mc.has_max_batch);
    assert_int_equal(mc.workers, 2);
}

static void expect_config_error(const char *t, const char *frag)
{
    model_config mc;
    char err[300];
    if (model_config_read(t, strlen(t), "m", &mc, NULL, NULL, err, sizeof err))
        fail_msg("'%s' was accepted", t);
    if (!strstr(err, frag))
        fail_msg("'%s': error '%s' lacks '%s'", t, err, frag);
}

static void test_config_errors(void **state)
{
    (void)state;
    expect_config_error("\nmax_batch_size: \"8\"",
                        "line 2: max_batch_size: expected an integer in 0..1048576, got '8'");
    expect_config_error("max_batch_size: 1.5", "got '1.5'");
    expect_config_error("max_batch_size: -1", "got '-1'");
    expect_config_error("max_batch_size: 99999999999999999999999", "expected an integer");
    expect_config_error("max_batch_size: 4 max_batch_size: 8",
                        "max_batch_size is given more than once");
    expect_config_error("name: \"other\"", "name 'other' is not the model's directory name 'm'");
    expect_config_error("platform: \"tensorrt_plan\"", "platform 'tensorrt_plan' is not served");
    expect_config_error("backend: \"python\"", "backend 'python' is not served");
    expect_config_error("dynamic_batching: 5", "dynamic_batching: expected a message");
    expect_config_error("dynamic_batching { max_queue_delay_microseconds: x }",
                        "dynamic_batching.max_queue_delay_microseconds: expected an integer");
    expect_config_error("dynamic_batching { preferred_batch_size: [1,2,3,4,5,6,7,8,9] }",
                        "more than 8 sizes");
    expect_config_error("max_batch_size: 4 dynamic_batching { preferred_batch_size: 8 }",
                        "preferred_batch_size 8 is larger than max_batch_size 4");
    expect_config_error("dynamic_batching { priority_levels: 2 default_priority_level: 3 }",
                        "default_priority_level 3 is outside 1..2");
    expect_config_error("dynamic_batching { default_queue_policy { timeout_action: LATER } }",
                        "timeout_action: expected REJECT or DELAY");
    expect_config_error("instance_group { count: 0 }", "instance_group.count: expected an integer "
                                                       "in 1..1024");
    expect_config_error("version_policy { }", "expected one of latest, all or specific");
    expect_config_error("version_policy { newest { } }", "unknown policy 'newest'");
    expect_config_error("version_policy { specific { } }", "no versions listed");
    expect_config_error("version_policy { latest { num_versions: 0 } }",
                        "version_policy.latest.num_versions: expected an integer in 1..");
    expect_config_error("default_model_filename: \"../x.onnx\"", "is not a file name");
    expect_config_error("default_model_filename: \"a\\0b\"", "holds a NUL");
    expect_config_error("max_batch_size: 8\n\nfoo {", "line 3: expected '}'");
}

static void test_version_policy(void **state)
{
    (void)state;
    const int64_t all[] = {1, 2, 5, 10};
    model_config mc;
    char err[300];
    const char *latest2 = "version_policy: { latest { num_versions: 2 } }";
    assert_true(model_config_read("", 0, "m", &mc, NULL, NULL, err, sizeof err));
    bool got[4];
    for (int i = 0; i < 4; i++)
        got[i] = model_config_wants(&mc, all[i], all, 4);
    assert_true(!got[0] && !got[1] && !got[2] && got[3]); /* the highest, 10, not "5" > "10" */
    assert_true(model_config_read(latest2, strlen(latest2), "m", &mc, NULL, NULL, err, sizeof err));
    for (int i = 0; i < 4; i++)
        got[i] = model_config_wants(&mc, all[i], all, 4);
    assert_true(!got[0] && !got[1] && got[2] && got[3]);
    const char *spec = "version_policy { specific { versions: [1, 5] } }";
    assert_true(model_config_read(spec, strlen(spec), "m", &mc, NULL, NULL, err, sizeof err));
    for (int i = 0; i < 4; i++)
        got[i] = model_config_wants(&mc, all[i], all, 4);
    assert_true(got[0] && !got[1] && got[2] && !got[3]);
    const char *every = "version_policy { all { } }";
    assert_true(model_config_read(every, strlen(every), "m", &mc, NULL, NULL, err, sizeof err));
    for (int i = 0; i < 4; i++)
        assert_true(model_config_wants(&mc, all[i], all, 4));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pbtxt_forms),       cmocka_unit_test(test_pbtxt_errors),
        cmocka_unit_test(test_config_applied),    cmocka_unit_test(test_config_ignored_once),
        cmocka_unit_test(test_config_errors),     cmocka_unit_test(test_version_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
