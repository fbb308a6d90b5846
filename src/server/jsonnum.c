/*
 * jsonnum.c - JSON number reading (Clinger, Eisel-Lemire, strtod_l) and the
 * shortest float writer (Ryu's f2s, by Ulf Adams, Apache-2.0/Boost).
 */
#include "server/jsonnum.h"

#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- read */

static const double exact_pow10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                       1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                       1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/*
 * The 128 most significant bits of 5^q for q in POW5_MIN..POW5_MAX (for
 * q < 0, of 2^b / 5^-q rounded up), as fast_float generates them. The
 * range covers every float32 and the usual doubles: a 19-digit mantissa
 * times 10^-80..10^60; numbers outside it go to strtod_l.
 */
#define POW5_MIN (-80)
#define POW5_MAX 60
static const uint64_t pow5_128[141][2] = {
    {0x97c560ba6b0919a5u, 0xdccd879fc967d41au}, {0xbdb6b8e905cb600fu, 0x5400e987bbc1c920u},
    {0xed246723473e3813u, 0x290123e9aab23b68u}, {0x9436c0760c86e30bu, 0xf9a0b6720aaf6521u},
    {0xb94470938fa89bceu, 0xf808e40e8d5b3e69u}, {0xe7958cb87392c2c2u, 0xb60b1d1230b20e04u},
    {0x90bd77f3483bb9b9u, 0xb1c6f22b5e6f48c2u}, {0xb4ecd5f01a4aa828u, 0x1e38aeb6360b1af3u},
    {0xe2280b6c20dd5232u, 0x25c6da63c38de1b0u}, {0x8d590723948a535fu, 0x579c487e5a38ad0eu},
    {0xb0af48ec79ace837u, 0x2d835a9df0c6d851u}, {0xdcdb1b2798182244u, 0xf8e431456cf88e65u},
    {0x8a08f0f8bf0f156bu, 0x1b8e9ecb641b58ffu}, {0xac8b2d36eed2dac5u, 0xe272467e3d222f3fu},
    {0xd7adf884aa879177u, 0x5b0ed81dcc6abb0fu}, {0x86ccbb52ea94baeau, 0x98e947129fc2b4e9u},
    {0xa87fea27a539e9a5u, 0x3f2398d747b36224u}, {0xd29fe4b18e88640eu, 0x8eec7f0d19a03aadu},
    {0x83a3eeeef9153e89u, 0x1953cf68300424acu}, {0xa48ceaaab75a8e2bu, 0x5fa8c3423c052dd7u},
    {0xcdb02555653131b6u, 0x3792f412cb06794du}, {0x808e17555f3ebf11u, 0xe2bbd88bbee40bd0u},
    {0xa0b19d2ab70e6ed6u, 0x5b6aceaeae9d0ec4u}, {0xc8de047564d20a8bu, 0xf245825a5a445275u},
    {0xfb158592be068d2eu, 0xeed6e2f0f0d56712u}, {0x9ced737bb6c4183du, 0x55464dd69685606bu},
    {0xc428d05aa4751e4cu, 0xaa97e14c3c26b886u}, {0xf53304714d9265dfu, 0xd53dd99f4b3066a8u},
    {0x993fe2c6d07b7fabu, 0xe546a8038efe4029u}, {0xbf8fdb78849a5f96u, 0xde98520472bdd033u},
    {0xef73d256a5c0f77cu, 0x963e66858f6d4440u}, {0x95a8637627989aadu, 0xdde7001379a44aa8u},
    {0xbb127c53b17ec159u, 0x5560c018580d5d52u}, {0xe9d71b689dde71afu, 0xaab8f01e6e10b4a6u},
    {0x9226712162ab070du, 0xcab3961304ca70e8u}, {0xb6b00d69bb55c8d1u, 0x3d607b97c5fd0d22u},
    {0xe45c10c42a2b3b05u, 0x8cb89a7db77c506au}, {0x8eb98a7a9a5b04e3u, 0x77f3608e92adb242u},
    {0xb267ed1940f1c61cu, 0x55f038b237591ed3u}, {0xdf01e85f912e37a3u, 0x6b6c46dec52f6688u},
    {0x8b61313bbabce2c6u, 0x2323ac4b3b3da015u}, {0xae397d8aa96c1b77u, 0xabec975e0a0d081au},
    {0xd9c7dced53c72255u, 0x96e7bd358c904a21u}, {0x881cea14545c7575u, 0x7e50d64177da2e54u},
    {0xaa242499697392d2u, 0xdde50bd1d5d0b9e9u}, {0xd4ad2dbfc3d07787u, 0x955e4ec64b44e864u},
    {0x84ec3c97da624ab4u, 0xbd5af13bef0b113eu}, {0xa6274bbdd0fadd61u, 0xecb1ad8aeacdd58eu},
    {0xcfb11ead453994bau, 0x67de18eda5814af2u}, {0x81ceb32c4b43fcf4u, 0x80eacf948770ced7u},
    {0xa2425ff75e14fc31u, 0xa1258379a94d028du}, {0xcad2f7f5359a3b3eu, 0x096ee45813a04330u},
    {0xfd87b5f28300ca0du, 0x8bca9d6e188853fcu}, {0x9e74d1b791e07e48u, 0x775ea264cf55347eu},
    {0xc612062576589ddau, 0x95364afe032a819eu}, {0xf79687aed3eec551u, 0x3a83ddbd83f52205u},
    {0x9abe14cd44753b52u, 0xc4926a9672793543u}, {0xc16d9a0095928a27u, 0x75b7053c0f178294u},
    {0xf1c90080baf72cb1u, 0x5324c68b12dd6339u}, {0x971da05074da7beeu, 0xd3f6fc16ebca5e04u},
    {0xbce5086492111aeau, 0x88f4bb1ca6bcf585u}, {0xec1e4a7db69561a5u, 0x2b31e9e3d06c32e6u},
    {0x9392ee8e921d5d07u, 0x3aff322e62439fd0u}, {0xb877aa3236a4b449u, 0x09befeb9fad487c3u},
    {0xe69594bec44de15bu, 0x4c2ebe687989a9b4u}, {0x901d7cf73ab0acd9u, 0x0f9d37014bf60a11u},
    {0xb424dc35095cd80fu, 0x538484c19ef38c95u}, {0xe12e13424bb40e13u, 0x2865a5f206b06fbau},
    {0x8cbccc096f5088cbu, 0xf93f87b7442e45d4u}, {0xafebff0bcb24aafeu, 0xf78f69a51539d749u},
    {0xdbe6fecebdedd5beu, 0xb573440e5a884d1cu}, {0x89705f4136b4a597u, 0x31680a88f8953031u},
    {0xabcc77118461cefcu, 0xfdc20d2b36ba7c3eu}, {0xd6bf94d5e57a42bcu, 0x3d32907604691b4du},
    {0x8637bd05af6c69b5u, 0xa63f9a49c2c1b110u}, {0xa7c5ac471b478423u, 0x0fcf80dc33721d54u},
    {0xd1b71758e219652bu, 0xd3c36113404ea4a9u}, {0x83126e978d4fdf3bu, 0x645a1cac083126eau},
    {0xa3d70a3d70a3d70au, 0x3d70a3d70a3d70a4u}, {0xccccccccccccccccu, 0xcccccccccccccccdu},
    {0x8000000000000000u, 0x0000000000000000u}, {0xa000000000000000u, 0x0000000000000000u},
    {0xc800000000000000u, 0x0000000000000000u}, {0xfa00000000000000u, 0x0000000000000000u},
    {0x9c40000000000000u, 0x0000000000000000u}, {0xc350000000000000u, 0x0000000000000000u},
    {0xf424000000000000u, 0x0000000000000000u}, {0x9896800000000000u, 0x0000000000000000u},
    {0xbebc200000000000u, 0x0000000000000000u}, {0xee6b280000000000u, 0x0000000000000000u},
    {0x9502f90000000000u, 0x0000000000000000u}, {0xba43b74000000000u, 0x0000000000000000u},
    {0xe8d4a51000000000u, 0x0000000000000000u}, {0x9184e72a00000000u, 0x0000000000000000u},
    {0xb5e620f480000000u, 0x0000000000000000u}, {0xe35fa931a0000000u, 0x0000000000000000u},
    {0x8e1bc9bf04000000u, 0x0000000000000000u}, {0xb1a2bc2ec5000000u, 0x0000000000000000u},
    {0xde0b6b3a76400000u, 0x0000000000000000u}, {0x8ac7230489e80000u, 0x0000000000000000u},
    {0xad78ebc5ac620000u, 0x0000000000000000u}, {0xd8d726b7177a8000u, 0x0000000000000000u},
    {0x878678326eac9000u, 0x0000000000000000u}, {0xa968163f0a57b400u, 0x0000000000000000u},
    {0xd3c21bcecceda100u, 0x0000000000000000u}, {0x84595161401484a0u, 0x0000000000000000u},
    {0xa56fa5b99019a5c8u, 0x0000000000000000u}, {0xcecb8f27f4200f3au, 0x0000000000000000u},
    {0x813f3978f8940984u, 0x4000000000000000u}, {0xa18f07d736b90be5u, 0x5000000000000000u},
    {0xc9f2c9cd04674edeu, 0xa400000000000000u}, {0xfc6f7c4045812296u, 0x4d00000000000000u},
    {0x9dc5ada82b70b59du, 0xf020000000000000u}, {0xc5371912364ce305u, 0x6c28000000000000u},
    {0xf684df56c3e01bc6u, 0xc732000000000000u}, {0x9a130b963a6c115cu, 0x3c7f400000000000u},
    {0xc097ce7bc90715b3u, 0x4b9f100000000000u}, {0xf0bdc21abb48db20u, 0x1e86d40000000000u},
    {0x96769950b50d88f4u, 0x1314448000000000u}, {0xbc143fa4e250eb31u, 0x17d955a000000000u},
    {0xeb194f8e1ae525fdu, 0x5dcfab0800000000u}, {0x92efd1b8d0cf37beu, 0x5aa1cae500000000u},
    {0xb7abc627050305adu, 0xf14a3d9e40000000u}, {0xe596b7b0c643c719u, 0x6d9ccd05d0000000u},
    {0x8f7e32ce7bea5c6fu, 0xe4820023a2000000u}, {0xb35dbf821ae4f38bu, 0xdda2802c8a800000u},
    {0xe0352f62a19e306eu, 0xd50b2037ad200000u}, {0x8c213d9da502de45u, 0x4526f422cc340000u},
    {0xaf298d050e4395d6u, 0x9670b12b7f410000u}, {0xdaf3f04651d47b4cu, 0x3c0cdd765f114000u},
    {0x88d8762bf324cd0fu, 0xa5880a69fb6ac800u}, {0xab0e93b6efee0053u, 0x8eea0d047a457a00u},
    {0xd5d238a4abe98068u, 0x72a4904598d6d880u}, {0x85a36366eb71f041u, 0x47a6da2b7f864750u},
    {0xa70c3c40a64e6c51u, 0x999090b65f67d924u}, {0xd0cf4b50cfe20765u, 0xfff4b4e3f741cf6du},
    {0x82818f1281ed449fu, 0xbff8f10e7a8921a4u}, {0xa321f2d7226895c7u, 0xaff72d52192b6a0du},
    {0xcbea6f8ceb02bb39u, 0x9bf4f8a69f764490u}, {0xfee50b7025c36a08u, 0x02f236d04753d5b4u},
    {0x9f4f2726179a2245u, 0x01d762422c946590u},
};

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void c_locale_init(void)
{
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

/* The slow path: strtod (or strtof, for f32) in the "C" locale whatever
 * the process's, on a NUL-terminated copy (the token is a valid JSON number,
 * which is a valid strtod subject with the same value). */
static double slow_strtod(const char *s, size_t n, bool f32)
{
    char stack[128];
    char *buf = n < sizeof stack ? stack : malloc(n + 1);
    if (!buf)
        return 0.0; /* out of memory on a 128-digit number; nothing better to do */
    memcpy(buf, s, n);
    buf[n] = '\0';
    pthread_once(&c_locale_once, c_locale_init);
    double d;
    if (f32)
        d = c_locale ? strtof_l(buf, NULL, c_locale) : strtof(buf, NULL);
    else
        d = c_locale ? strtod_l(buf, NULL, c_locale) : strtod(buf, NULL);
    if (buf != stack)
        free(buf);
    return d;
}

/*
 * w * 10^q correctly rounded to double by Eisel-Lemire, for w != 0 with at
 * most 19 digits. Returns false where it cannot decide (or does not try:
 * subnormals, exponents outside the table), leaving it to strtod.
 */
static bool eisel_lemire(uint64_t w, int q, double *out)
{
    if (q < POW5_MIN || q > POW5_MAX)
        return false;
    int lz = __builtin_clzll(w);
    w <<= lz;
    const uint64_t *t = pow5_128[q - POW5_MIN];
    unsigned __int128 first = (unsigned __int128)w * t[0];
    uint64_t hi = (uint64_t)(first >> 64), lo = (uint64_t)first;
    if ((hi & 0x1ff) == 0x1ff) { /* the low bits might carry: add the next word's product */
        uint64_t second = (uint64_t)(((unsigned __int128)w * t[1]) >> 64);
        lo += second;
        if (second > lo)
            hi++;
    }
    if (lo == UINT64_MAX && (q < -27 || q > 55))
        return false;
    int upper = (int)(hi >> 63);
    uint64_t m = hi >> (upper + 9);
    int p2 = (((152170 + 65536) * q) >> 16) + 63 + upper - lz + 1023;
    if (p2 <= 0)
        return false; /* subnormal */
    /* exactly halfway between two doubles: round to even */
    if (lo <= 1 && q >= -4 && q <= 23 && (m & 3) == 1 && (m << (upper + 9)) == hi)
        m &= ~(uint64_t)1;
    m += m & 1;
    m >>= 1;
    if (m >= (uint64_t)2 << 52) {
        m = (uint64_t)1 << 52;
        p2++;
    }
    m &= ~((uint64_t)1 << 52);
    if (p2 >= 0x7ff)
        return false;
    uint64_t bits = m | (uint64_t)p2 << 52;
    memcpy(out, &bits, 8);
    return true;
}

static inline bool is_digit(char c)
{
    return (unsigned char)(c - '0') < 10;
}

/* Eight ASCII digits in v (little-endian load)? Their value (fast_float's
 * SWAR tricks). */
static inline bool eight_digits(uint64_t v)
{
    return !(((v + 0x4646464646464646u) | (v - 0x3030303030303030u)) & 0x8080808080808080u);
}

static inline uint32_t parse_eight(uint64_t v)
{
    v -= 0x3030303030303030u;
    v = v * 10 + (v >> 8);
    v = ((v & 0x000000ff000000ffu) * 0x000f424000000064u +
         ((v >> 16) & 0x000000ff000000ffu) * 0x0000271000000001u) >>
        32;
    return (uint32_t)v;
}

float jsonnum_strtof(const char *s, size_t n)
{
    return (float)slow_strtod(s, n, true); /* a float, exactly */
}

float jsonnum_digits_to_f32(uint64_t w, int q, const char *s, size_t n)
{
    double d;
    return eisel_lemire(w, q, &d) ? jsonnum_to_f32(d, s, n) : jsonnum_strtof(s, n);
}

bool jsonnum_parse(const char **pp, const char *end, jsonnum *out)
{
    const char *p = *pp, *start = p;
    bool neg = false;
    if (p < end && *p == '-') {
        neg = true;
        p++;
    }
    if (p == end || !is_digit(*p)) {
        *pp = p;
        return false;
    }
    uint64_t w = 0;
    int nd = 0;         /* significant digits in w */
    int dropped = 0;    /* integer digits past the 19 kept */
    bool trunc = false; /* a nonzero digit was dropped */
    if (*p == '0') {
        p++;
        if (p < end && is_digit(*p)) {
            *pp = p; /* a leading zero */
            return false;
        }
    } else {
        do {
            unsigned d = (unsigned)(*p - '0');
            if (nd < 19) {
                w = w * 10 + d;
                nd++;
            } else {
                dropped++;
                trunc |= d != 0;
            }
            p++;
        } while (p < end && is_digit(*p));
    }
    int exp = dropped;
    bool integer = true;
    if (p < end && *p == '.') {
        integer = false;
        p++;
        if (p == end || !is_digit(*p)) {
            *pp = p;
            return false;
        }
        const char *f0 = p;
        if (w == 0) /* leading zeros of 0.000123 are not significant */
            while (p < end && *p == '0')
                p++;
        while (nd <= 11 && end - p >= 8) {
            uint64_t v;
            memcpy(&v, p, 8);
            if (!eight_digits(v))
                break;
            w = w * 100000000 + parse_eight(v);
            nd += 8;
            p += 8;
        }
        while (nd < 19 && p < end && is_digit(*p)) {
            w = w * 10 + (uint64_t)(*p - '0');
            nd++;
            p++;
        }
        exp -= (int)(p - f0);
        while (p < end && is_digit(*p)) /* past 19 significant digits */
            trunc |= *p++ != '0';
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        integer = false;
        p++;
        bool eneg = false;
        if (p < end && (*p == '+' || *p == '-'))
            eneg = *p++ == '-';
        if (p == end || !is_digit(*p)) {
            *pp = p;
            return false;
        }
        int e = 0;
        do {
            if (e < 100000) /* past any double's range; keeps the sum in int */
                e = e * 10 + (*p - '0');
            p++;
        } while (p < end && is_digit(*p));
        exp += eneg ? -e : e;
    }
    *pp = p;

    out->integer = integer;
    out->is_int = integer && !trunc && dropped == 0 &&
                  (neg ? w <= (uint64_t)INT64_MAX + 1 : w <= (uint64_t)INT64_MAX);
    if (out->is_int)
        out->i = neg ? (int64_t)(0 - w) : (int64_t)w;

    double d;
    if (w == 0 && !trunc) {
        d = 0.0;
    } else if (!trunc && w <= (uint64_t)1 << 53 && exp >= -22 && exp <= 22) {
        /* Clinger: w and 10^|exp| are exact doubles, so one rounding */
        d = exp >= 0 ? (double)w * exact_pow10[exp] : (double)w / exact_pow10[-exp];
    } else if (trunc || !eisel_lemire(w, exp, &d)) {
        d = slow_strtod(start, (size_t)(p - start), false);
        out->d = d;
        return true;
    }
    out->d = neg ? -d : d;
    return true;
}

/* --------------------------------------------------------------- write */

/*
 * Ryu's float tables: 5^-i scaled up to 59 bits plus one, and 5^i's top
 * 61 bits, where pow5bits(i) = ceil(log2(5^i)):
 *   inv[i] = floor(2^(pow5bits(i) - 1 + 59) / 5^i) + 1
 *   pow5[i] = 5^i >> (pow5bits(i) - 61)        (a left shift when negative)
 */
#define POW5_INV_BITS 59
#define POW5_BITS 61
static const uint64_t f2s_pow5_inv[31] = {
    576460752303423489u, 461168601842738791u, 368934881474191033u, 295147905179352826u,
    472236648286964522u, 377789318629571618u, 302231454903657294u, 483570327845851670u,
    386856262276681336u, 309485009821345069u, 495176015714152110u, 396140812571321688u,
    316912650057057351u, 507060240091291761u, 405648192073033409u, 324518553658426727u,
    519229685853482763u, 415383748682786211u, 332306998946228969u, 531691198313966350u,
    425352958651173080u, 340282366920938464u, 544451787073501542u, 435561429658801234u,
    348449143727040987u, 557518629963265579u, 446014903970612463u, 356811923176489971u,
    570899077082383953u, 456719261665907162u, 365375409332725730u,
};

static const uint64_t f2s_pow5[47] = {
    1152921504606846976u, 1441151880758558720u, 1801439850948198400u, 2251799813685248000u,
    1407374883553280000u, 1759218604441600000u, 2199023255552000000u, 1374389534720000000u,
    1717986918400000000u, 2147483648000000000u, 1342177280000000000u, 1677721600000000000u,
    2097152000000000000u, 1310720000000000000u, 1638400000000000000u, 2048000000000000000u,
    1280000000000000000u, 1600000000000000000u, 2000000000000000000u, 1250000000000000000u,
    1562500000000000000u, 1953125000000000000u, 1220703125000000000u, 1525878906250000000u,
    1907348632812500000u, 1192092895507812500u, 1490116119384765625u, 1862645149230957031u,
    1164153218269348144u, 1455191522836685180u, 1818989403545856475u, 2273736754432320594u,
    1421085471520200371u, 1776356839400250464u, 2220446049250313080u, 1387778780781445675u,
    1734723475976807094u, 2168404344971008868u, 1355252715606880542u, 1694065894508600678u,
    2117582368135750847u, 1323488980084844279u, 1654361225106055349u, 2067951531382569187u,
    1292469707114105741u, 1615587133892632177u, 2019483917365790221u,
};

static inline int pow5bits(int e)
{
    return (int)((((uint32_t)e * 1217359) >> 19) + 1);
}

static inline uint32_t log10_pow2(int e)
{
    return ((uint32_t)e * 78913) >> 18;
}

static inline uint32_t log10_pow5(int e)
{
    return ((uint32_t)e * 732923) >> 20;
}

static inline bool multiple_of_pow5(uint32_t v, uint32_t p)
{
    uint32_t count = 0;
    while (v % 5 == 0) {
        v /= 5;
        count++;
    }
    return count >= p;
}

static inline bool multiple_of_pow2(uint32_t v, uint32_t p)
{
    return (v & ((1u << p) - 1)) == 0;
}

static inline uint32_t mul_shift(uint32_t m, uint64_t factor, int shift)
{
    uint64_t lo = (uint64_t)m * (uint32_t)factor, hi = (uint64_t)m * (uint32_t)(factor >> 32);
    return (uint32_t)(((lo >> 32) + hi) >> (shift - 32));
}

int jsonnum_f32_shortest(float f, uint32_t *digits, int *e10)
{
    uint32_t bits;
    memcpy(&bits, &f, 4);
    uint32_t ieee_m = bits & 0x7fffffu, ieee_e = (bits >> 23) & 0xffu;
    int e2;
    uint32_t m2;
    if (ieee_e == 0) {
        e2 = 1 - 127 - 23 - 2;
        m2 = ieee_m;
    } else {
        e2 = (int)ieee_e - 127 - 23 - 2;
        m2 = (1u << 23) | ieee_m;
    }
    bool accept_bounds = (m2 & 1) == 0;
    /* the value and its rounding interval's bounds, times 4 */
    uint32_t mv = 4 * m2, mp = 4 * m2 + 2;
    uint32_t mm_shift = ieee_m != 0 || ieee_e <= 1;
    uint32_t mm = 4 * m2 - 1 - mm_shift;

    uint32_t vr, vp, vm;
    int e;
    bool vm_zeros = false, vr_zeros = false;
    uint32_t last = 0;
    if (e2 >= 0) {
        uint32_t q = log10_pow2(e2);
        e = (int)q;
        int k = POW5_INV_BITS + pow5bits((int)q) - 1, i = -e2 + (int)q + k;
        vr = mul_shift(mv, f2s_pow5_inv[q], i);
        vp = mul_shift(mp, f2s_pow5_inv[q], i);
        vm = mul_shift(mm, f2s_pow5_inv[q], i);
        if (q != 0 && (vp - 1) / 10 <= vm / 10) {
            int l = POW5_INV_BITS + pow5bits((int)(q - 1)) - 1;
            last = mul_shift(mv, f2s_pow5_inv[q - 1], -e2 + (int)q - 1 + l) % 10;
        }
        if (q <= 9) {
            if (mv % 5 == 0)
                vr_zeros = multiple_of_pow5(mv, q);
            else if (accept_bounds)
                vm_zeros = multiple_of_pow5(mm, q);
            else
                vp -= multiple_of_pow5(mp, q);
        }
    } else {
        uint32_t q = log10_pow5(-e2);
        e = (int)q + e2;
        int i = -e2 - (int)q, k = pow5bits(i) - POW5_BITS, j = (int)q - k;
        vr = mul_shift(mv, f2s_pow5[i], j);
        vp = mul_shift(mp, f2s_pow5[i], j);
        vm = mul_shift(mm, f2s_pow5[i], j);
        if (q != 0 && (vp - 1) / 10 <= vm / 10) {
            j = (int)q - 1 - (pow5bits(i + 1) - POW5_BITS);
            last = mul_shift(mv, f2s_pow5[i + 1], j) % 10;
        }
        if (q <= 1) {
            vr_zeros = true;
            if (accept_bounds)
                vm_zeros = mm_shift == 1;
            else
                vp--;
        } else if (q < 31) {
            vr_zeros = multiple_of_pow2(mv, q - 1);
        }
    }

    /* drop digits while the interval still holds a shorter number */
    int removed = 0;
    uint32_t output;
    if (vm_zeros || vr_zeros) {
        while (vp / 10 > vm / 10) {
            vm_zeros &= vm % 10 == 0;
            vr_zeros &= last == 0;
            last = vr % 10;
            vr /= 10;
            vp /= 10;
            vm /= 10;
            removed++;
        }
        if (vm_zeros) {
            while (vm % 10 == 0) {
                vr_zeros &= last == 0;
                last = vr % 10;
                vr /= 10;
                vp /= 10;
                vm /= 10;
                removed++;
            }
        }
        if (vr_zeros && last == 5 && vr % 2 == 0)
            last = 4; /* exactly ...50..0: round to even */
        output = vr + ((vr == vm && (!accept_bounds || !vm_zeros)) || last >= 5);
    } else {
        while (vp / 10 > vm / 10) {
            last = vr % 10;
            vr /= 10;
            vp /= 10;
            vm /= 10;
            removed++;
        }
        output = vr + (vr == vm || last >= 5);
    }
    *digits = output;
    *e10 = e + removed;
    return output >= 100000000  ? 9
           : output >= 10000000 ? 8
           : output >= 1000000  ? 7
           : output >= 100000   ? 6
           : output >= 10000    ? 5
           : output >= 1000     ? 4
           : output >= 100      ? 3
           : output >= 10       ? 2
                                : 1;
}

/* The eight decimal digits of v < 10^8 as ASCII, first digit in the low
 * byte (a little-endian store writes them in order): two lanes of four
 * digits, then of two, then one, by multiplications (Lemire). */
static inline uint64_t ascii8(uint32_t v)
{
    uint64_t merged = (uint64_t)(v / 10000) | (uint64_t)(v % 10000) << 32;
    uint64_t top100 = ((merged * 10486) >> 20) & ((0x7fu | (uint64_t)0x7f << 32));
    uint64_t hundreds = ((merged - 100 * top100) << 16) + top100;
    uint64_t tens = ((hundreds * 103) >> 10) & 0x000f000f000f000fu;
    uint64_t ones = hundreds - 10 * tens;
    return (ones << 8) + tens + 0x3030303030303030u;
}

static const uint32_t pow10_u32[10] = {1,      10,      100,      1000,      10000,
                                       100000, 1000000, 10000000, 100000000, 1000000000};

static inline void store16(char *p, uint64_t lo, uint64_t hi)
{
    memcpy(p, &lo, 8);
    memcpy(p + 8, &hi, 8);
}

size_t jsonnum_write_f32(char *p, float f)
{
    uint32_t bits;
    memcpy(&bits, &f, 4);
    if (((bits >> 23) & 0xffu) == 0xffu) {
        memcpy(p, "null", 4);
        return 4;
    }
    if ((bits & 0x7fffffffu) == 0) {
        *p = '0';
        return 1;
    }
    char *start = p;
    if (bits >> 31)
        *p++ = '-';
    uint32_t v;
    int e;
    int nd = jsonnum_f32_shortest(f, &v, &e);
    /* The digits left-aligned in 16 bytes, '0'-padded, held in two
     * registers (lo: digits 0-7, hi: 8-15): every piece below is written
     * with whole 8-byte stores and the length advanced by the real count,
     * no byte loop and no reload of bytes just stored. */
    uint32_t d9 = v * pow10_u32[9 - nd];
    uint32_t first = d9 / 100000000;
    uint64_t rest = ascii8(d9 - first * 100000000);
    uint64_t lo = ('0' + first) | rest << 8;
    uint64_t hi = rest >> 56 | (uint64_t)0x30303030303030u << 8;
    unsigned __int128 all = (unsigned __int128)hi << 64 | lo;
    int e10 = e + nd - 1;      /* of the first digit */
    if (e10 >= 0 && e10 < 9) { /* ddd[.ddd] */
        int ip = e10 + 1;
        store16(p, lo, hi);
        p += ip;
        if (nd > ip) {
            *p++ = '.';
            unsigned __int128 tail = all >> (8 * ip);
            store16(p, (uint64_t)tail, (uint64_t)(tail >> 64));
            p += nd - ip;
        }
    } else if (e10 < 0 && e10 >= -5) { /* 0.000ddd */
        memcpy(p, "0.00000", 8);
        p += 2 + (-e10 - 1);
        store16(p, lo, hi);
        p += nd;
    } else { /* d[.ddd]e[-]x */
        *p++ = (char)lo;
        if (nd > 1) {
            *p++ = '.';
            unsigned __int128 tail = all >> 8;
            store16(p, (uint64_t)tail, (uint64_t)(tail >> 64));
            p += nd - 1;
        }
        *p++ = 'e';
        int ex = e10;
        if (ex < 0) {
            *p++ = '-';
            ex = -ex;
        }
        if (ex >= 10)
            *p++ = (char)('0' + ex / 10);
        *p++ = (char)('0' + ex % 10);
    }
    return (size_t)(p - start);
}
