/* SHA-256 of files (OpenSSL's libcrypto): the identity of a weights file. */
#ifndef HS_HASH_H
#define HS_HASH_H

#include <stddef.h>

#include "headstart.h"

/* Writes the 64 hex digits and a terminating zero into hex. */
hs_status hs_sha256_file(const char *path, char hex[65], hs_error *err);

/* Incremental hashing of bytes in memory (a cache file's payload, a key's text). */
typedef struct hs_sha256 hs_sha256;
hs_sha256 *hs_sha256_new(void); /* NULL when out of memory */
void hs_sha256_update(hs_sha256 *h, const void *data, size_t size);
/* Writes the 32-byte digest and frees h; returns 0 on success. */
int hs_sha256_finish(hs_sha256 *h, unsigned char digest[32]);
void hs_sha256_hex(const unsigned char digest[32], char hex[65]);

#endif
