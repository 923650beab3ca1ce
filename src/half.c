#include "half.h"

#include <cpuid.h>
#include <immintrin.h>
#include <string.h>

uint16_t hs_float_to_half(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t abs = x & 0x7fffffffu;
    if (abs >= 0x7f800000u) /* infinity or NaN (NaNs stay NaN: keep a mantissa bit set) */
        return sign | 0x7c00u | (abs > 0x7f800000u ? 0x0200u | ((abs >> 13) & 0x03ffu) : 0);
    if (abs >= 0x477ff000u) return sign | 0x7c00u; /* rounds past 65504: infinity */
    if (abs < 0x38800000u) { /* a half subnormal (or zero): shift in the hidden bit */
        if (abs < 0x33000000u) return sign; /* below half the smallest subnormal */
        int shift = 126 - (int)(abs >> 23);  /* 14..24 */
        uint32_t mant = (abs & 0x007fffffu) | 0x00800000u;
        uint32_t result = mant >> shift;
        uint32_t rest = mant & ((1u << shift) - 1), halfway = 1u << (shift - 1);
        if (rest > halfway || (rest == halfway && (result & 1u))) result++;
        return sign | (uint16_t)result;
    }
    /* Normal: rebias the exponent, round the 13 dropped mantissa bits to nearest even (a
     * carry into the exponent is the correct result). */
    uint32_t result = (abs - 0x38000000u) >> 13;
    uint32_t rest = abs & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (result & 1u))) result++;
    return sign | (uint16_t)result;
}

float hs_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x03ffu, x;
    if (exp == 0x1fu) {
        x = sign | 0x7f800000u | (mant << 13);
    } else if (exp != 0) {
        x = sign | ((exp + 112u) << 23) | (mant << 13);
    } else if (mant == 0) {
        x = sign;
    } else { /* subnormal: normalise */
        int e = -1;
        do {
            mant <<= 1;
            e++;
        } while (!(mant & 0x0400u));
        x = sign | ((uint32_t)(112 - e) << 23) | ((mant & 0x03ffu) << 13);
    }
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

/* ---- F16C: eight at a time ---------------------------------------------------------------- */

__attribute__((target("avx,f16c"))) static void to_half_f16c(const float *in, size_t n,
                                                             uint16_t *out) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128((__m128i *)(out + i), h);
    }
    for (; i < n; i++) out[i] = hs_float_to_half(in[i]);
}

__attribute__((target("avx,f16c"))) static void to_float_f16c(const uint16_t *in, size_t n,
                                                              float *out) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(in + i))));
    for (; i < n; i++) out[i] = hs_half_to_float(in[i]);
}

static int has_f16c(void) {
    static int cached = -1;
    if (cached < 0) { /* F16C is CPUID leaf 1, ECX bit 29 (not every compiler names it) */
        unsigned a = 0, b = 0, c = 0, d = 0;
        cached = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) && __builtin_cpu_supports("avx");
    }
    return cached;
}

void hs_floats_to_half(const float *in, size_t n, uint16_t *out) {
    if (has_f16c()) {
        to_half_f16c(in, n, out);
        return;
    }
    for (size_t i = 0; i < n; i++) out[i] = hs_float_to_half(in[i]);
}

void hs_half_to_floats(const uint16_t *in, size_t n, float *out) {
    if (has_f16c()) {
        to_float_f16c(in, n, out);
        return;
    }
    for (size_t i = 0; i < n; i++) out[i] = hs_half_to_float(in[i]);
}
