/* Text from files (class names, paths, member names, messages that quote them) made safe to
 * show on a terminal. A folder named "\033[31m" or "a\nb" must not recolour, move the cursor,
 * forge a line of output or reprogram the terminal when headstart names it. */
#ifndef HS_TERMINAL_TEXT_H
#define HS_TERMINAL_TEXT_H

#include <stddef.h>

/* Writes into out (at most out_size bytes, always NUL-terminated when out_size > 0) the text s
 * with what a terminal would act on replaced by visible escapes: \n, \r, \t as such, other C0
 * controls, DEL and bytes that are not valid UTF-8 as \xHH, and C1 controls (U+0080..U+009F)
 * and the bidirectional overrides and isolates (U+202A..U+202E, U+2066..U+2069, which reorder
 * what is shown) as \u{HHHH}. Everything else, backslash included, is kept: ordinary paths
 * read as they are. Returns the length the whole escaped text needs (without the NUL), as
 * snprintf does, so a caller can size a buffer: at most 4 times strlen(s). A piece that does
 * not fit is left out whole, never cut in the middle of an escape or a character. */
size_t hs_escape_for_terminal(const char *s, char *out, size_t out_size);

#endif
