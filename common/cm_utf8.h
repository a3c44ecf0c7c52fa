/* cm_utf8 — incremental UTF-8 validation (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), resumable at any byte so a text
 * message can be checked frame by frame and buffer by buffer. */
#ifndef CM_UTF8_H
#define CM_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { CM_UTF8_ACCEPT = 0, CM_UTF8_REJECT = 1 };

/* Continues validation from `state` over p[0..n) and returns the new state:
 * CM_UTF8_ACCEPT at a character boundary, CM_UTF8_REJECT (sticky) once
 * invalid, anything else inside a character. Fast path for ASCII runs. */
uint32_t cm_utf8_step(uint32_t state, const uint8_t *p, size_t n);

/* True when p[0..n) is complete, valid UTF-8. */
bool cm_utf8_valid(const uint8_t *p, size_t n);

#endif
