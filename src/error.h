/* Error reporting inside the library: fill the caller's hs_error and return the code. */
#ifndef HS_ERROR_H
#define HS_ERROR_H

#include "headstart.h"

/* Formats the message into err (when err is not NULL) and returns code, so a failing path
 * reads `return hs_fail(err, HS_ERR_FORMAT, "%s: truncated at byte %zu", path, off);`. */
hs_status hs_fail(hs_error *err, hs_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes an error already in err with more context ("loading weights: " + message). */
hs_status hs_fail_context(hs_error *err, hs_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
