/*
 * Small text helpers shared by the pure parsers (router, validation,
 * configuration, the request path).  No Kore, no allocation.
 */

#ifndef SB_TEXT_H
#define SB_TEXT_H

#include <sys/types.h>

#include <stddef.h>
#include <stdint.h>

/* Value of a hexadecimal digit, or -1. */
int	sb_hexval(int c);

/* 64-bit FNV-1a of a string: cheap, stable table hashing (not for
 * anything an attacker chooses: ratelimit.c keys SipHash for that). */
uint64_t	sb_fnv1a64(const char *s);

/* base64url without padding (RFC 4648 section 5): encode into out
 * (NUL-terminated, truncated to outlen), decode into at most outlen bytes
 * (-1 on anything an encoder would not produce). */
void	sb_base64url(const unsigned char *, size_t, char *out, size_t outlen);
ssize_t	sb_unbase64url(const char *, unsigned char *out, size_t outlen);

/* vsnprintf into err when err is not NULL and errlen > 0. */
void	sb_seterr(char *err, size_t errlen, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

#endif /* SB_TEXT_H */
