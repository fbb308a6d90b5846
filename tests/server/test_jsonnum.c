/*
 * test_jsonnum.c - JSON number reading and the shortest float writer:
 * every read equals strtod's correctly rounded double (Clinger's path,
 * Eisel-Lemire and the strtod fallback alike), FP32 data reads as strtof
 * reads it (the fast path and the general one, at float midpoints too), the strict grammar refuses
 * what JSON refuses, integer literals stay exact, and every float written
 * reads back to the same bits, by strtof and through a double as Python
 * clients read it, in no more digits than "%.*g" needs.
 * FERRY_JSONNUM_EXHAUSTIVE=1 checks all 2^32 float bit patterns (minutes).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "server/jsonnum.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Parses all of s; fails the test unless it is one number. */
static jsonnum parse_all(const char *s)
{
    jsonnum v;
    const char *p = s;
    if (!jsonnum_parse(&p, s + strlen(s), &v))
        fail_msg("'%s' refused at byte %d", s, (int)(p - s));
    if (*p)
        fail_msg("'%s' read only %d bytes", s, (int)(p - s));
    return v;
}

static void check_like_strtod(const char *s)
{
    jsonnum v = parse_all(s);
    double want = strtod(s, NULL);
    if (memcmp(&v.d, &want, 8))
        fail_msg("'%s' read as %a, strtod gives %a", s, v.d, want);
}

/* Writes a random plain decimal of 1-max_digits digits, the point
 * anywhere (or none), no leading zero before more integer digits; returns
 * its length (s unterminated). */
static int random_decimal(char *s, int max_digits)
{
    int o = 0, nd = 1 + (int)(rnd() % (uint64_t)max_digits), point = (int)(rnd() % (nd + 1));
    if (rnd() & 1)
        s[o++] = '-';
    for (int k = 0; k < nd; k++) {
        if (k == point && k > 0)
            s[o++] = '.';
        int d = (int)(rnd() % 10);
        if (k == 0 && point != 1 && d == 0 && nd > 1)
            d = 1 + (int)(rnd() % 9);
        s[o++] = (char)('0' + d);
    }
    return o;
}

static void test_parse_matches_strtod(void **state)
{
    (void)state;
    const char *fixed[] = {"0",
                           "-0",
                           "1",
                           "-1",
                           "0.1",
                           "0.5",
                           "1e0",
                           "1E+2",
                           "1e-2",
                           "123456789012345678",
                           "9007199254740993",
                           "9007199254740992",
                           "4.9406564584124654e-324",
                           "2.2250738585072011e-308",
                           "2.2250738585072014e-308",
                           "1.7976931348623157e308",
                           "1.7976931348623159e308",
                           "1e309",
                           "1e-400",
                           "3.4028235e38",
                           "3.4028236e38",
                           "1.17549435e-38",
                           "1.4e-45",
                           "1e-45",
                           "7e-46",
                           "0.000000000000000000000000000000000000000000001",
                           "1e23",
                           "8.5e-1",
                           "2.5",
                           "1e22",
                           "1e-22",
                           "123456789e-30",
                           "12345678901234567890",
                           "12345678901234567890123",
                           "1.00000000000000011102230246251565404236316680908203125",
                           "1.00000000000000011102230246251565404236316680908203124",
                           "1.00000000000000011102230246251565404236316680908203126",
                           "9999999999999999999e-5",
                           "0.30000000000000004",
                           "1e99999999999999999999",
                           "-1e-99999999999999999999"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        check_like_strtod(fixed[i]);
    /* random decimals: 1-25 digits, a point anywhere, exponents far and near */
    char s[96];
    for (int it = 0; it < 1000000; it++) {
        int o = random_decimal(s, 25);
        if (rnd() % 3) {
            int e = (int)(rnd() % 700) - 350;
            if (rnd() % 2)
                e = (int)(rnd() % 90) - 45;
            o += snprintf(s + o, sizeof s - (size_t)o, "e%d", e);
        }
        s[o] = '\0';
        if (s[s[0] == '-'] == '0' && s[1 + (s[0] == '-')] != '.' && s[1 + (s[0] == '-')] != 'e' &&
            s[1 + (s[0] == '-')] != '\0')
            continue; /* "01": not JSON */
        check_like_strtod(s);
    }
    /* what clients send for float32 data: %.9g, %.17g (Python's float of
     * a float32), shortest; and random doubles at 17 digits */
    for (int it = 0; it < 300000; it++) {
        uint32_t b = (uint32_t)rnd();
        float f;
        memcpy(&f, &b, 4);
        if (!isfinite(f))
            continue;
        snprintf(s, sizeof s, "%.9g", (double)f);
        check_like_strtod(s);
        snprintf(s, sizeof s, "%.17g", (double)f);
        check_like_strtod(s);
        uint64_t db = rnd();
        double d;
        memcpy(&d, &db, 8);
        if (isfinite(d)) {
            snprintf(s, sizeof s, "%.17g", d);
            check_like_strtod(s);
            snprintf(s, sizeof s, "%.6e", d);
            check_like_strtod(s);
        }
    }
}

/* s read as FP32 data is: the fast path (when it takes s) and the general
 * path (jsonnum_parse, then jsonnum_to_f32) both give strtof's float. */
static void check_like_strtof(const char *s)
{
    float want = strtof(s, NULL), got;
    const char *p = s, *end = s + strlen(s);
    if (jsonnum_parse_f32_simple(&p, end, &got)) {
        if (p != end)
            fail_msg("'%s': fast path stopped at byte %d", s, (int)(p - s));
        if (memcmp(&got, &want, 4))
            fail_msg("'%s': fast path %.9g, strtof %.9g", s, (double)got, (double)want);
    } else if (p != s) {
        fail_msg("'%s': fast path refused but moved", s);
    }
    jsonnum v;
    p = s;
    if (!jsonnum_parse(&p, end, &v) || p != end)
        fail_msg("'%s' refused", s);
    got = jsonnum_to_f32(v.d, s, (size_t)(end - s));
    if (memcmp(&got, &want, 4))
        fail_msg("'%s': %.9g, strtof %.9g (via the double %.17g)", s, (double)got,
                 (double)want, v.d);
}

static void test_parse_f32(void **state)
{
    (void)state;
    const char *fixed[] = {
        "0", "-0", "0.0", "1", "-0.6300", "0.1", "16777216", "16777217", "16777219",
        "0.0000000001", "1234567890123456789", "9007199254740993", "3.4028235e38",
        "3.4028236e38", "340282356779733661637539395458142568448", "1e39", "1.17549435e-38",
        "1.4e-45", "7e-46", "1e-50",
        /* just below / at / above the midpoint 1 + 3*2^-24 between two floats:
         * through a double the first rounds to the midpoint, then up to even */
        "1.0000001788139343261718749", "1.000000178813934326171875",
        "1.0000001788139343261718751",
        /* the midpoint 1 + 2^-24: below rounds down whichever way */
        "1.0000000596046447753906249", "1.000000059604644775390625",
        "1.0000000596046447753906251"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        check_like_strtof(fixed[i]);
    /* the fast path refuses what it does not read (leaving the pointer) */
    const char *refused[] = {"1e5", "01", "-", "1.", ".5", "12345678901234567890", "x"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        float f;
        const char *p = refused[i];
        assert_false(jsonnum_parse_f32_simple(&p, p + strlen(p), &f));
        assert_ptr_equal(p, refused[i]);
    }
    char s[96];
    /* random plain decimals (the fast path's domain and past it) */
    for (int it = 0; it < 1000000; it++) {
        s[random_decimal(s, 22)] = '\0';
        check_like_strtof(s);
    }
    /* float midpoints, written out exactly, nudged below and above in the
     * last of 30-40 digits */
    for (int it = 0; it < 100000; it++) {
        uint32_t b = (uint32_t)(rnd() % 0x7f000000u) + 0x00800000u;
        float f;
        memcpy(&f, &b, 4);
        double mid = (double)f + ((double)nextafterf(f, INFINITY) - (double)f) / 2;
        for (int dir = -1; dir <= 1; dir++) {
            snprintf(s, sizeof s, "%.*e", 30 + (int)(rnd() % 10), mid);
            char *e = strchr(s, 'e');
            char *last = e - 1;
            if (dir < 0 && *last > '0')
                (*last)--;
            if (dir > 0 && *last < '9')
                (*last)++;
            check_like_strtof(s);
        }
    }
    /* what clients send: %.4f, %.6g, %.9g, %.17g of random floats */
    static const char *const formats[] = {"%.9g", "%.17g", "%.6g", "%.4f"};
    for (int it = 0; it < 1200000; it++) {
        uint32_t b = (uint32_t)rnd();
        float f;
        memcpy(&f, &b, 4);
        const char *fmt = formats[it % 4];
        if (isfinite(f) && (fmt[2] != '4' || fabsf(f) < 1e6f)) {
            snprintf(s, sizeof s, fmt, (double)f);
            check_like_strtof(s);
        }
    }
}

static void check_bad(const char *s, int at)
{
    jsonnum v;
    const char *p = s;
    if (jsonnum_parse(&p, s + strlen(s), &v))
        fail_msg("'%s' was accepted", s);
    if (p - s != at)
        fail_msg("'%s' refused at byte %d, expected %d", s, (int)(p - s), at);
}

static void check_stops(const char *s, int at)
{
    jsonnum v;
    const char *p = s;
    assert_true(jsonnum_parse(&p, s + strlen(s), &v));
    if (p - s != at)
        fail_msg("'%s' ended at byte %d, expected %d", s, (int)(p - s), at);
}

static void test_grammar(void **state)
{
    (void)state;
    check_bad("", 0);
    check_bad("-", 1);
    check_bad("--1", 1);
    check_bad("+1", 0);
    check_bad(".5", 0);
    check_bad("-.5", 1);
    check_bad("01", 1);
    check_bad("-007", 2);
    check_bad("1.", 2);
    check_bad("1.e5", 2);
    check_bad("1e", 2);
    check_bad("1e+", 3);
    check_bad("1E-x", 3);
    check_bad("NaN", 0);
    check_bad("Infinity", 0);
    check_bad("-Infinity", 1);
    /* the number ends where the grammar does; the caller judges the rest */
    check_stops("0x10", 1);
    check_stops("1,2", 1);
    check_stops("1.5]", 3);
    check_stops("2e3e4", 3);
    check_stops("-0.0e-0", 7);
    /* a number cut short by the end of the buffer */
    jsonnum v;
    const char *s = "12.5e7";
    for (size_t n = 0; n < strlen(s); n++) {
        const char *p = s;
        bool ok = jsonnum_parse(&p, s + n, &v);
        assert_true(ok == (n == 1 || n == 2 || n == 4));
    }
}

static void test_integers(void **state)
{
    (void)state;
    jsonnum v = parse_all("9223372036854775807");
    assert_true(v.is_int && v.integer);
    assert_true(v.i == INT64_MAX);
    v = parse_all("-9223372036854775808");
    assert_true(v.is_int && v.i == INT64_MIN);
    v = parse_all("9223372036854775808");
    assert_false(v.is_int);
    assert_true(v.integer);
    assert_true(v.d == 9223372036854775808.0);
    v = parse_all("-9223372036854775809");
    assert_false(v.is_int);
    v = parse_all("9007199254740993"); /* not a double: exact as int64 */
    assert_true(v.is_int && v.i == 9007199254740993);
    v = parse_all("123456789012345678901234567890");
    assert_false(v.is_int);
    v = parse_all("-0");
    assert_true(v.is_int && v.i == 0 && signbit(v.d));
    v = parse_all("1.0");
    assert_false(v.is_int || v.integer);
    assert_true(v.d == 1.0);
    v = parse_all("1e2");
    assert_false(v.is_int);
    assert_true(v.d == 100.0);
    v = parse_all("1e999");
    assert_true(isinf(v.d) && v.d > 0);
    v = parse_all("-1e-999");
    assert_true(v.d == 0 && signbit(v.d));
    /* a 400-digit number goes to strtod whole */
    char big[420];
    memset(big, '7', 400);
    big[400] = '\0';
    check_like_strtod(big);
    big[1] = '.';
    check_like_strtod(big);
}

/* ------------------------------------------------------------ writer */

static const char *f32_text(char *buf, float f)
{
    size_t n = jsonnum_write_f32(buf, f);
    assert_true(n <= 16);
    buf[n] = '\0';
    return buf;
}

/* The fewest significant digits "%.*g" needs to read back as f. */
static int printf_shortest(float f)
{
    char s[48];
    for (int k = 1; k <= 9; k++) {
        snprintf(s, sizeof s, "%.*g", k, (double)f);
        if (strtof(s, NULL) == f)
            return k;
    }
    return 99;
}

static void check_write(uint32_t bits, bool check_length)
{
    float f, g;
    memcpy(&f, &bits, 4);
    char buf[40];
    const char *s = f32_text(buf, f);
    if (!isfinite(f)) {
        assert_string_equal(s, "null");
        return;
    }
    char *end;
    g = strtof(s, &end);
    if (*end)
        fail_msg("%a written as '%s'", (double)f, s);
    float via_double = (float)strtod(s, NULL);
    uint32_t gb, db;
    memcpy(&gb, &g, 4);
    memcpy(&db, &via_double, 4);
    if (f == 0.0f) { /* -0 is written "0", as before */
        assert_string_equal(s, "0");
        return;
    }
    if (gb != bits || db != bits)
        fail_msg("%a written as '%s' reads back as %a (strtof) / %a (via double)", (double)f, s,
                 (double)g, (double)via_double);
    if (check_length) {
        uint32_t digits;
        int e10, nd = jsonnum_f32_shortest(f, &digits, &e10);
        if (nd > printf_shortest(f))
            fail_msg("%a written as '%s': %d digits, %%.%dg reads back too", (double)f, s, nd,
                     printf_shortest(f));
    }
}

static void test_write_round_trip(void **state)
{
    (void)state;
    if (getenv("FERRY_JSONNUM_EXHAUSTIVE")) {
        for (uint64_t b = 0; b <= UINT32_MAX; b++)
            check_write((uint32_t)b, false);
        return;
    }
    /* every exponent, with mantissas at the edges and in between */
    for (uint32_t e = 0; e < 256; e++)
        for (uint32_t m = 0; m < 64; m++) {
            uint32_t man = m < 32 ? m : 0x7fffffu - (m - 32);
            check_write((e << 23) | man, true);
            check_write(0x80000000u | (e << 23) | (man * 131071u & 0x7fffffu), true);
        }
    for (int i = 0; i < 2000000; i++)
        check_write((uint32_t)rnd(), i < 200000);
    /* powers of ten and their neighbours; integers */
    for (int k = -45; k <= 38; k++) {
        float f = (float)pow(10.0, k);
        uint32_t b;
        memcpy(&b, &f, 4);
        for (uint32_t d = 0; d < 5; d++) {
            check_write(b - d, true);
            check_write(b + d, true);
        }
    }
    for (int i = -100000; i <= 100000; i++) {
        float f = (float)i * 37.0f;
        uint32_t b;
        memcpy(&b, &f, 4);
        check_write(b, true);
    }
}

static void test_write_text(void **state)
{
    (void)state;
    char b[40];
    assert_string_equal(f32_text(b, 0.0f), "0");
    assert_string_equal(f32_text(b, -0.0f), "0");
    assert_string_equal(f32_text(b, 0.5f), "0.5");
    assert_string_equal(f32_text(b, -2.25f), "-2.25");
    assert_string_equal(f32_text(b, 100.0f), "100");
    assert_string_equal(f32_text(b, 16777216.0f), "16777216");
    assert_string_equal(f32_text(b, 123456789.0f), "123456790");
    assert_string_equal(f32_text(b, 1e9f), "1e9");
    assert_string_equal(f32_text(b, 0.1f), "0.1");
    assert_string_equal(f32_text(b, 1.5e-3f), "0.0015");
    assert_string_equal(f32_text(b, 1e-5f), "0.00001");
    assert_string_equal(f32_text(b, 1e-6f), "1e-6");
    assert_string_equal(f32_text(b, 3.0e-7f), "3e-7");
    assert_string_equal(f32_text(b, 1.0f / 3.0f), "0.33333334");
    assert_string_equal(f32_text(b, -1.17549435e-38f), "-1.1754944e-38");
    assert_string_equal(f32_text(b, 3.4028235e38f), "3.4028235e38");
    assert_string_equal(f32_text(b, 1e-45f), "1e-45");
    assert_string_equal(f32_text(b, 2.8e-45f), "3e-45");
    assert_string_equal(f32_text(b, NAN), "null");
    assert_string_equal(f32_text(b, -INFINITY), "null");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_matches_strtod),
        cmocka_unit_test(test_parse_f32),
        cmocka_unit_test(test_grammar),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_write_round_trip),
        cmocka_unit_test(test_write_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
