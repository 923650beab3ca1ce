/* IEEE 754 half precision (binary16) storage for cached features: half the disk and memory
 * of float32, 11 significant bits. Conversions round to nearest even, keep infinities and
 * NaNs, and use the CPU's F16C instructions when it has them (the same results, faster). */
#ifndef HS_HALF_H
#define HS_HALF_H

#include <stddef.h>
#include <stdint.h>

uint16_t hs_float_to_half(float f);
float hs_half_to_float(uint16_t h);

/* n values at a time; the fast path when available. */
void hs_floats_to_half(const float *in, size_t n, uint16_t *out);
void hs_half_to_floats(const uint16_t *in, size_t n, float *out);

#endif
