/* cm_log — logging and invariants shared by every binary.
 *
 * Log once, where the error happens. Lines go to stderr as
 * "<ms since epoch> <level> <prog>: message". CM_ASSERT stays on in release
 * builds: a broken invariant is fatal. Out of memory aborts (cm_xmalloc). */
#ifndef CM_LOG_H
#define CM_LOG_H

#include <stddef.h>
#include <stdlib.h>

enum cm_log_level { CM_LOG_DEBUG, CM_LOG_INFO, CM_LOG_WARN, CM_LOG_ERROR };

/* "debug", "info", "warn", "error": the level names printed and parsed. */
extern const char *const cm_log_level_names[4];

/* Sets the program name printed on every line and the minimum level. */
void cm_log_init(const char *prog, enum cm_log_level min);
void cm_log(enum cm_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
_Noreturn void cm_panic(const char *file, int line, const char *what);

#define cm_debug(...) cm_log(CM_LOG_DEBUG, __VA_ARGS__)
#define cm_info(...)  cm_log(CM_LOG_INFO, __VA_ARGS__)
#define cm_warn(...)  cm_log(CM_LOG_WARN, __VA_ARGS__)
#define cm_error(...) cm_log(CM_LOG_ERROR, __VA_ARGS__)

#define CM_ASSERT(c) \
	do { if (__builtin_expect(!(c), 0)) cm_panic(__FILE__, __LINE__, #c); } while (0)

/* Allocation that never returns NULL: out of memory aborts. */
void *cm_xmalloc(size_t n);
void *cm_xcalloc(size_t n, size_t size);
void *cm_xrealloc(void *p, size_t n);
char *cm_xstrndup(const char *s, size_t n);

#define CM_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define CM_LIKELY(x)   __builtin_expect(!!(x), 1)
#define CM_UNLIKELY(x) __builtin_expect(!!(x), 0)

#endif
