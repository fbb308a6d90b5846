/* test_half.c - the host's fp32 -> fp16/bf16 conversions (util/half.h):
 * round to nearest even, and the saturating forms model constants take. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "util/half.h"

static void test_round_trip(void **state)
{
    (void)state;
    const float exact[] = {0.0f, -0.0f, 1.0f, -2.5f, 65504.0f, -65504.0f, 6.103515625e-05f};
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        assert_true(ferry_f16_to_f32(ferry_f32_to_f16(exact[i])) == exact[i]);
    assert_int_equal(ferry_f32_to_f16(65520.0f), 0x7c00); /* rounds past the largest: inf */
    assert_int_equal(ferry_f32_to_f16(1e30f), 0x7c00);
    assert_int_equal(ferry_f32_to_bf16(-3.4028235e38f), 0xff80); /* FLT_MAX rounds to -inf */
}

/* A finite constant past the range saturates; infinities and NaN stay. */
static void test_saturating(void **state)
{
    (void)state;
    assert_int_equal(ferry_f32_to_f16_sat(-3.4028235e38f), 0xfbff); /* -65504 */
    assert_int_equal(ferry_f32_to_f16_sat(65520.0f), 0x7bff);
    assert_int_equal(ferry_f32_to_f16_sat(1.0f), 0x3c00);
    assert_int_equal(ferry_f32_to_f16_sat(-INFINITY), 0xfc00);
    assert_true((ferry_f32_to_f16_sat(NAN) & 0x7c00) == 0x7c00 &&
                (ferry_f32_to_f16_sat(NAN) & 0x3ff) != 0);
    assert_int_equal(ferry_f32_to_bf16_sat(-3.4028235e38f), 0xff7f); /* -3.3895e38 */
    assert_int_equal(ferry_f32_to_bf16_sat(INFINITY), 0x7f80);
    assert_int_equal(ferry_f32_to_bf16_sat(1.0f), 0x3f80);
    /* what the mask arithmetic of a Hugging Face export then computes */
    float min16 = ferry_f16_to_f32(ferry_f32_to_f16_sat(-3.4028235e38f));
    assert_true(0.0f * min16 == 0.0f);
    assert_true(isfinite(ferry_bf16_to_f32(ferry_f32_to_bf16_sat(-3.4028235e38f))));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_saturating),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
