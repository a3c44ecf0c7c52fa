/* cm_b64 — standard base64 (RFC 4648 section 4, '+' and '/'), written for
 * exact sizes: the encoder writes no terminator, so a caller can size a
 * buffer precisely and encode in place. */
#ifndef CM_B64_H
#define CM_B64_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Encoded length of n bytes, padding included. */
static inline size_t cm_b64_enc_len(size_t n)
{
	return (n + 2) / 3 * 4;
}

/* Upper bound of the decoded length of n base64 characters. */
static inline size_t cm_b64_dec_max(size_t n)
{
	return (n + 3) / 4 * 3;
}

/* Encodes in[0..n) into out (cm_b64_enc_len(n) bytes, no NUL). Returns the
 * length written. */
size_t cm_b64_encode(uint8_t *out, const uint8_t *in, size_t n);

/* Decodes in[0..n) into out (cm_b64_dec_max(n) bytes). Padding is optional
 * but, when present, must be complete; no whitespace; the unused low bits of
 * the last character must be zero (one canonical spelling per payload).
 * Returns the decoded length, or -1 when the input is not base64. */
long cm_b64_decode(uint8_t *out, const uint8_t *in, size_t n);

#endif
