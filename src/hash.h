/* SHA-256 of files (OpenSSL's libcrypto): the identity of a weights file. */
#ifndef HS_HASH_H
#define HS_HASH_H

#include "headstart.h"

/* Writes the 64 hex digits and a terminating zero into hex. */
hs_status hs_sha256_file(const char *path, char hex[65], hs_error *err);

#endif
