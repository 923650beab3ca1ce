#include "hash.h"

#include <openssl/evp.h>
#include <stdio.h>

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
