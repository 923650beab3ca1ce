/* A small seeded random number generator (xoshiro256**, seeded through splitmix64): the same
 * seed gives the same numbers on every machine, which reproducible runs rely on. */
#ifndef HS_RNG_H
#define HS_RNG_H

#include <stdint.h>

typedef struct hs_rng {
    uint64_t s[4];
} hs_rng;

void hs_rng_seed(hs_rng *rng, uint64_t seed);
/* Seeds one of several independent streams drawn from one seed: (seed, stream, index) passes
 * through splitmix64's mixer one part at a time, so nearby seeds, streams or indices (epoch e's
 * dropout and epoch e + 1's shuffle) start from unrelated states. */
void hs_rng_seed_stream(hs_rng *rng, uint64_t seed, uint64_t stream, uint64_t index);
uint64_t hs_rng_next(hs_rng *rng);
/* The stream of one sample in one layer of a training forward, from the step's generator
 * `key` (read, not advanced): (key, layer, sample) alone decide it, so a sample's dropout
 * mask is the same whichever batch, position or rank it is computed in, which lets N
 * data-parallel ranks draw what one process draws. */
void hs_rng_for_sample(hs_rng *out, const hs_rng *key, int layer, int64_t sample);
/* Uniform in [0, 1) with 24 random bits, exactly representable as float. */
float hs_rng_uniform(hs_rng *rng);
/* Uniform in [lo, hi). */
float hs_rng_range(hs_rng *rng, float lo, float hi);
/* Standard normal (Box-Muller). */
float hs_rng_normal(hs_rng *rng);
/* Uniform integer in [0, n), without modulo bias. */
uint64_t hs_rng_below(hs_rng *rng, uint64_t n);
/* Gamma(shape, 1) for shape > 0 (Marsaglia and Tsang's method; shape < 1 through
 * Gamma(shape + 1) * U^(1/shape)), in double. */
double hs_rng_gamma(hs_rng *rng, double shape);
/* Beta(a, b) for a, b > 0, as X / (X + Y) of two Gamma draws. */
double hs_rng_beta(hs_rng *rng, double a, double b);

#endif
