#include "json_bound.h"

/* Every value but the first of each container follows a comma, and every container opens
 * with a bracket; commas and brackets inside strings do not count. */
size_t hs_json_value_bound(const char *text, size_t len) {
    size_t n = 1;
    int in_string = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_string) {
            if (c == '\\') i++;
            else if (c == '"') in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c == ',' || c == '[' || c == '{') {
            n++;
        }
    }
    return n;
}
