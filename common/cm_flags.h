/* cm_flags — the value parsers every binary's flags share, so that
 * durations, sizes, counts and secrets read the same everywhere. Each returns
 * 0 and sets *out, or -1 (leaving *out alone) for a malformed or out-of-range
 * value. */
#ifndef CM_FLAGS_H
#define CM_FLAGS_H

#include <stddef.h>
#include <stdint.h>

/* Milliseconds from "500ms", "5s", "5" (seconds), "1m"; fractions allowed
 * ("0.25"). At most 30 days. */
int cm_parse_duration_ms(const char *s, uint32_t *ms);

/* Bytes from "4096", "64k", "64KiB", "1M", "1MiB", "2G", "2GiB" (binary
 * units); cm_parse_size for a 32-bit field (below 4 GiB). */
int cm_parse_size(const char *s, uint32_t *out);
int cm_parse_size64(const char *s, uint64_t *out);

/* The index of s among names[0..n) (a keyword flag: --log-level info), or
 * -1 when it is none of them. */
int cm_parse_choice(const char *s, const char *const *names, size_t n);

/* A decimal integer within [min, max]; cm_parse_u32 for a 32-bit field. */
int cm_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);
int cm_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out);

/* Writes a flag's error (one line, printf-style) into err and returns -1,
 * for `return cm_flag_fail(err, cap, "bad --port '%s'", v);`. */
int cm_flag_fail(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Reads a secret file: its bytes without one trailing newline. Returns a
 * malloc'd buffer and its length, or NULL with a one-line reason in err
 * (unreadable, empty, larger than 4095 bytes). */
uint8_t *cm_read_secret_file(const char *path, size_t *len, char *err, size_t errcap);

#endif
