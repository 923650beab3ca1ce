/* A cheap bound on the memory cJSON would spend on a text, checked before parsing it. */
#ifndef HS_JSON_BOUND_H
#define HS_JSON_BOUND_H

#include <stddef.h>

/* An upper bound on the JSON values in text[0, len), without parsing it. cJSON takes about
 * 80 bytes per value, so a parser of untrusted JSON compares this with the most values its
 * format can need: without that, text like [1,1,1,...] costs 40 times its size. */
size_t hs_json_value_bound(const char *text, size_t len);

#endif
