/*
 * test_jsonw.c - the server's JSON writers: every float written reads back
 * to the same bits (strtof), the exact text of typical values, string
 * escaping (bytes that are not UTF-8 included), integer extremes and
 * allocation growth.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "server/jsonw.h"

static const char *f32_text(jsonw *w, float f)
{
    w->len = 0;
    jsonw_f32(w, f);
    jsonw_char(w, '\0');
    assert_false(w->oom);
    return w->buf;
}

static void check_round_trip(jsonw *w, uint32_t bits)
{
    float f, g;
    memcpy(&f, &bits, 4);
    if (isnan(f) || isinf(f))
        return;
    const char *s = f32_text(w, f);
    char *end;
    g = strtof(s, &end);
    assert_int_equal(*end, '\0');
    if (f == 0.0f) {
        assert_true(g == 0.0f);
        return;
    }
    uint32_t gb;
    memcpy(&gb, &g, 4);
    if (gb != bits)
        fail_msg("%a written as '%s' reads back as %a", (double)f, s, (double)g);
}

static void test_f32_round_trip(void **state)
{
    (void)state;
    jsonw w = {0};
    /* every exponent, with mantissas at the edges and in between */
    for (uint32_t e = 0; e < 255; e++)
        for (uint32_t m = 0; m < 64; m++) {
            uint32_t man = m < 32 ? m : 0x7fffffu - (m - 32);
            check_round_trip(&w, (e << 23) | man);
            check_round_trip(&w, 0x80000000u | (e << 23) | (man * 131071u & 0x7fffffu));
        }
    /* a pseudo-random sweep of bit patterns */
    uint32_t u = 12345;
    for (int i = 0; i < 2000000; i++) {
        u = u * 1664525u + 1013904223u;
        check_round_trip(&w, u);
    }
    /* powers of ten and their neighbours, where digit estimates go wrong */
    for (int k = -45; k <= 38; k++) {
        float f = (float)pow(10.0, k);
        uint32_t b;
        memcpy(&b, &f, 4);
        check_round_trip(&w, b - 1);
        check_round_trip(&w, b);
        check_round_trip(&w, b + 1);
    }
    jsonw_free(&w);
}

static void test_f32_text(void **state)
{
    (void)state;
    jsonw w = {0};
    assert_string_equal(f32_text(&w, 0.0f), "0");
    assert_string_equal(f32_text(&w, -0.0f), "0");
    assert_string_equal(f32_text(&w, 0.5f), "0.5");
    assert_string_equal(f32_text(&w, -2.25f), "-2.25");
    assert_string_equal(f32_text(&w, 100.0f), "100");
    assert_string_equal(f32_text(&w, 16777216.0f), "16777216");
    assert_string_equal(f32_text(&w, 1e9f), "1e9");
    assert_string_equal(f32_text(&w, 0.1f), "0.1"); /* shortest, not nine digits */
    assert_string_equal(f32_text(&w, 1.5e-3f), "0.0015");
    assert_string_equal(f32_text(&w, 3.0e-7f), "3e-7");
    assert_string_equal(f32_text(&w, 0.1f + 1e-8f), "0.10000001");
    assert_string_equal(f32_text(&w, NAN), "null");
    assert_string_equal(f32_text(&w, -INFINITY), "null");
    jsonw_free(&w);
}

static void test_str_escaping(void **state)
{
    (void)state;
    jsonw w = {0};
    jsonw_str(&w, "a\"b\\c\n\x01z");
    jsonw_char(&w, '\0');
    assert_string_equal(w.buf, "\"a\\\"b\\\\c\\u000a\\u0001z\"");
    w.len = 0;
    jsonw_str(&w, "h\xc3\xa9"); /* UTF-8 passes through */
    jsonw_char(&w, '\0');
    assert_string_equal(w.buf, "\"h\xc3\xa9\"");
    /* bytes that are not UTF-8 (a client's, echoed in an error) become
     * U+FFFD, one per bad byte, so that the document stays valid JSON */
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"a\xff", "\"a\\ufffd\""},
        {"\xc3", "\"\\ufffd\""},                                              /* cut short */
        {"\xc3(", "\"\\ufffd(\""},                                            /* bad continuation */
        {"\xc0\xaf", "\"\\ufffd\\ufffd\""},                                   /* overlong */
        {"\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""},                        /* a surrogate */
        {"\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""},             /* past U+10FFFF */
        {"\xe2\x82\xac\xf0\x9f\x98\x80", "\"\xe2\x82\xac\xf0\x9f\x98\x80\""}, /* fine */
        {"\xe2\x82", "\"\\ufffd\\ufffd\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        w.len = 0;
        jsonw_str(&w, cases[i].in);
        jsonw_char(&w, '\0');
        assert_string_equal(w.buf, cases[i].out);
    }
    /* with a length: NULs are characters, and a sequence cut by the end of
     * the n bytes (not by a NUL) is checked against that end */
    w.len = 0;
    jsonw_strn(&w, "a\0b\xe2\x82\xac", 5);
    jsonw_char(&w, '\0');
    assert_string_equal(w.buf, "\"a\\u0000b\\ufffd\\ufffd\"");
    jsonw_free(&w);
}

static void test_integers_and_growth(void **state)
{
    (void)state;
    jsonw w = {0};
    jsonw_i64(&w, INT64_MIN);
    jsonw_char(&w, ' ');
    jsonw_i64(&w, INT64_MAX);
    jsonw_char(&w, ' ');
    jsonw_u64(&w, 0);
    jsonw_char(&w, '\0');
    assert_string_equal(w.buf, "-9223372036854775808 9223372036854775807 0");
    w.len = 0;
    for (int i = 0; i < 100000; i++)
        jsonw_f32(&w, (float)i);
    assert_false(w.oom);
    assert_true(w.cap >= w.len);
    jsonw_free(&w);
    assert_null(w.buf);
    assert_int_equal(w.len, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f32_round_trip),
        cmocka_unit_test(test_f32_text),
        cmocka_unit_test(test_str_escaping),
        cmocka_unit_test(test_integers_and_growth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
