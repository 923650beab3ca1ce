#include "hash.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>

#include "error.h"

hs_status hs_sha256_file(const char *path, char hex[65], hs_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return hs_fail(err, HS_ERR_IO, "cannot open %s", path);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    hs_status st = HS_OK;
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
        st = hs_fail(err, HS_ERR_INTERNAL, "SHA-256 is not available");
    } else {
        unsigned char buf[1 << 16];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0) EVP_DigestUpdate(ctx, buf, n);
        if (ferror(f)) st = hs_fail(err, HS_ERR_IO, "error reading %s", path);
    }
    unsigned char digest[32];
    unsigned int length = 0;
    if (!st && EVP_DigestFinal_ex(ctx, digest, &length) && length == 32) {
        for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    } else if (!st) {
        st = hs_fail(err, HS_ERR_INTERNAL, "SHA-256 failed for %s", path);
    }
    EVP_MD_CTX_free(ctx);
    fclose(f);
    return st;
}

struct hs_sha256 {
    EVP_MD_CTX *ctx;
};

hs_sha256 *hs_sha256_new(void) {
    hs_sha256 *h = malloc(sizeof *h);
    if (!h) return NULL;
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx || !EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(h->ctx);
        free(h);
        return NULL;
    }
    return h;
}

void hs_sha256_update(hs_sha256 *h, const void *data, size_t size) {
    if (size) EVP_DigestUpdate(h->ctx, data, size);
}

int hs_sha256_finish(hs_sha256 *h, unsigned char digest[32]) {
    unsigned int length = 0;
    int ok = EVP_DigestFinal_ex(h->ctx, digest, &length) && length == 32;
    EVP_MD_CTX_free(h->ctx);
    free(h);
    return ok ? 0 : -1;
}

void hs_sha256_hex(const unsigned char digest[32], char hex[65]) {
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", digest[i]);
}
