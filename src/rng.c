#include "rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void hs_rng_seed(hs_rng *rng, uint64_t seed) {
    for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&seed);
}

void hs_rng_seed_stream(hs_rng *rng, uint64_t seed, uint64_t stream, uint64_t index) {
    uint64_t x = seed;
    uint64_t h = splitmix64(&x);
    x = h ^ stream;
    h = splitmix64(&x);
    x = h ^ index;
    hs_rng_seed(rng, splitmix64(&x));
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void hs_rng_for_sample(hs_rng *out, const hs_rng *key, int layer, int64_t sample) {
    uint64_t k = key->s[0] ^ rotl(key->s[1], 17) ^ rotl(key->s[2], 31) ^ rotl(key->s[3], 47);
    hs_rng_seed_stream(out, k, (uint64_t)layer, (uint64_t)sample);
}

uint64_t hs_rng_next(hs_rng *rng) {
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float hs_rng_uniform(hs_rng *rng) { return (float)(hs_rng_next(rng) >> 40) * 0x1.0p-24f; }

float hs_rng_range(hs_rng *rng, float lo, float hi) { return lo + (hi - lo) * hs_rng_uniform(rng); }

float hs_rng_normal(hs_rng *rng) {
    double u1 = ((double)(hs_rng_next(rng) >> 11) + 1.0) * 0x1.0p-53; /* (0, 1] */
    double u2 = (double)(hs_rng_next(rng) >> 11) * 0x1.0p-53;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

uint64_t hs_rng_below(hs_rng *rng, uint64_t n) {
    if (n == 0) return 0;
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = hs_rng_next(rng);
    while (x >= limit);
    return x % n;
}

/* Standard normal in double (Box-Muller on 53-bit uniforms). */
static double normal_double(hs_rng *rng) {
    double u1 = ((double)(hs_rng_next(rng) >> 11) + 1.0) * 0x1.0p-53; /* (0, 1] */
    double u2 = (double)(hs_rng_next(rng) >> 11) * 0x1.0p-53;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Uniform in (0, 1]: log() of it is finite. */
static double uniform_open0(hs_rng *rng) {
    return ((double)(hs_rng_next(rng) >> 11) + 1.0) * 0x1.0p-53;
}

double hs_rng_gamma(hs_rng *rng, double shape) {
    if (!(shape > 0.0)) return 0.0;
    if (shape < 1.0) {
        /* Gamma(a) = Gamma(a + 1) * U^(1/a) (Marsaglia and Tsang, section 6) */
        double g = hs_rng_gamma(rng, shape + 1.0);
        return g * pow(uniform_open0(rng), 1.0 / shape);
    }
    const double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x = normal_double(rng);
        double v = 1.0 + c * x;
        if (v <= 0.0) continue;
        v = v * v * v;
        double u = uniform_open0(rng);
        if (log(u) < 0.5 * x * x + d - d * v + d * log(v)) return d * v;
    }
}

double hs_rng_beta(hs_rng *rng, double a, double b) {
    double x = hs_rng_gamma(rng, a), y = hs_rng_gamma(rng, b);
    /* both underflowing to 0 happens only for tiny shapes: fall back on a fair coin, the
     * limit of Beta(a, a) as a -> 0 */
    if (x + y <= 0.0) return (hs_rng_next(rng) >> 63) ? 1.0 : 0.0;
    return x / (x + y);
}
