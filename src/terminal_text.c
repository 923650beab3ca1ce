#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "terminal_text.h"

/* The length of the valid UTF-8 sequence at s (1..4) and its code point, or 0 when the bytes
 * there are not one (overlong forms, surrogates and code points past U+10FFFF included). */
static int utf8_sequence(const unsigned char *s, uint32_t *cp) {
    unsigned char c = s[0];
    int n;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        n = 2, v = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3, v = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0; /* also stops at the NUL */
        v = v << 6 | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return n;
}

static int shown_as_escape(uint32_t cp) {
    return cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F) ||
           (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
}

size_t hs_escape_for_terminal(const char *text, char *out, size_t out_size) {
    const unsigned char *s = (const unsigned char *)text;
    size_t need = 0, written = 0;
    int full = 0; /* a piece did not fit: nothing more is written */
    while (*s) {
        uint32_t cp = 0;
        int n = utf8_sequence(s, &cp);
        char piece[16];
        size_t len;
        if (n == 0) { /* a byte that is not UTF-8: shown, not passed on */
            len = (size_t)snprintf(piece, sizeof piece, "\\x%02X", s[0]);
            n = 1;
        } else if (!shown_as_escape(cp)) {
            memcpy(piece, s, (size_t)n);
            len = (size_t)n;
        } else if (cp == '\n' || cp == '\r' || cp == '\t') {
            piece[0] = '\\';
            piece[1] = cp == '\n' ? 'n' : cp == '\r' ? 'r' : 't';
            len = 2;
        } else if (cp < 0x80) {
            len = (size_t)snprintf(piece, sizeof piece, "\\x%02X", (unsigned)cp);
        } else {
            len = (size_t)snprintf(piece, sizeof piece, "\\u{%04X}", (unsigned)cp);
        }
        if (!full && written + len < out_size) {
            memcpy(out + written, piece, len);
            written += len;
        } else {
            full = 1;
        }
        need += len;
        s += n;
    }
    if (out_size) out[written] = '\0';
    return need;
}
