#include "class_weights.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fileutil.h"

int hs_class_weights_is_mode(const char *spec) {
    return spec && (!strcmp(spec, "none") || !strcmp(spec, "balanced"));
}

static hs_status balanced(char *const *names, int classes, const int *labels, int n,
                          float *w, hs_error *err) {
    long *count = calloc((size_t)classes, sizeof *count);
    if (!count) return hs_fail(err, HS_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++)
        if (labels[i] >= 0 && labels[i] < classes) count[labels[i]]++;
    hs_status st = HS_OK;
    for (int k = 0; k < classes && !st; k++) {
        if (count[k] == 0)
            st = hs_fail(err, HS_ERR_ARGUMENT, "--class-weights balanced: class '%s' has no "
                         "training image", names[k]);
        else
            w[k] = (float)((double)n / ((double)classes * (double)count[k]));
    }
    free(count);
    return st;
}

/* Strips leading and trailing blanks (and a '\r') in place. */
static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    size_t len = strlen(s);
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r'))
        s[--len] = '\0';
    return s;
}

static hs_status from_file(const char *path, char *const *names, int classes, float *w,
                           hs_error *err) {
    char *text = NULL;
    size_t size = 0;
    /* A line per class: HS_MAX_CLASSES names of at most 255 bytes fit in 8 MiB. */
    hs_status st = hs_read_file(path, 8u << 20, &text, &size, err);
    if (st) return hs_fail_context(err, st, "--class-weights");
    char *seen = calloc((size_t)classes, 1);
    if (!seen) {
        free(text);
        return hs_fail(err, HS_ERR_NOMEM, "out of memory");
    }
    if (memchr(text, '\0', size))
        st = hs_fail(err, HS_ERR_ARGUMENT, "--class-weights %s is not a text file", path);
    int line_no = 0;
    for (char *line = text, *next; !st && line && line < text + size; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        line_no++;
        char *s = trim(line);
        if (!*s || *s == '#') continue;
        char *comma = strrchr(s, ',');
        if (!comma) {
            st = hs_fail(err, HS_ERR_ARGUMENT, "--class-weights %s line %d: expected "
                         "'class,weight'", path, line_no);
            break;
        }
        *comma = '\0';
        char *name = trim(s), *value = trim(comma + 1), *end = NULL;
        double v = strtod(value, &end);
        if (!*value || *end || !isfinite(v) || !(v > 0) || v > HS_CLASS_WEIGHT_MAX) {
            st = hs_fail(err, HS_ERR_ARGUMENT, "--class-weights %s line %d: the weight must be "
                         "a number in (0, %g], not '%.40s'", path, line_no, HS_CLASS_WEIGHT_MAX,
                         value);
            break;
        }
        int k = 0;
        while (k < classes && strcmp(names[k], name) != 0) k++;
        if (k == classes)
            st = hs_fail(err, HS_ERR_ARGUMENT, "--class-weights %s line %d: no class '%.255s' "
                         "in the data", path, line_no, name);
        else if (seen[k])
            st = hs_fail(err, HS_ERR_ARGUMENT, "--class-weights %s line %d: class '%.255s' is "
                         "named twice", path, line_no, name);
        else {
            seen[k] = 1;
            w[k] = (float)v;
        }
    }
    for (int k = 0; !st && k < classes; k++)
        if (!seen[k])
            st = hs_fail(err, HS_ERR_ARGUMENT, "--class-weights %s names no weight for class "
                         "'%.255s' (every class needs one)", path, names[k]);
    free(seen);
    free(text);
    return st;
}

hs_status hs_class_weights_resolve(const char *spec, char *const *class_names, int classes,
                                   const int *labels, int n, float **out, hs_error *err) {
    *out = NULL;
    if (!spec || !strcmp(spec, "none")) return HS_OK;
    if (classes < 1) return hs_fail(err, HS_ERR_INTERNAL, "class weights for %d classes", classes);
    float *w = malloc((size_t)classes * sizeof *w);
    if (!w) return hs_fail(err, HS_ERR_NOMEM, "out of memory");
    hs_status st = !strcmp(spec, "balanced") ? balanced(class_names, classes, labels, n, w, err)
                                             : from_file(spec, class_names, classes, w, err);
    if (st) {
        free(w);
        return st;
    }
    *out = w;
    return HS_OK;
}
