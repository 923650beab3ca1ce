#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

hs_status hs_fail(hs_error *err, hs_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

hs_status hs_fail_context(hs_error *err, hs_status code, const char *fmt, ...) {
    if (err) {
        char prefix[HS_ERROR_MESSAGE_SIZE];
        char old[HS_ERROR_MESSAGE_SIZE];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(prefix, sizeof prefix, fmt, ap);
        va_end(ap);
        memcpy(old, err->message, sizeof old);
        old[sizeof old - 1] = '\0';
        snprintf(err->message, sizeof err->message, "%.300s: %.700s", prefix, old);
        err->code = code;
    }
    return code;
}

const char *hs_status_name(hs_status status) {
    switch (status) {
    case HS_OK: return "ok";
    case HS_ERR_ARGUMENT: return "argument";
    case HS_ERR_IO: return "io";
    case HS_ERR_FORMAT: return "format";
    case HS_ERR_UNSAFE: return "unsafe";
    case HS_ERR_NOMEM: return "memory";
    case HS_ERR_MISMATCH: return "mismatch";
    case HS_ERR_NOT_FOUND: return "not-found";
    case HS_ERR_IMAGE: return "image";
    case HS_ERR_INTERNAL: return "internal";
    case HS_ERR_DIVERGED: return "diverged";
    case HS_ERR_INTERRUPTED: return "interrupted";
    case HS_ERR_EXISTS: return "exists";
    }
    return "unknown";
}
