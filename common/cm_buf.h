/* cm_buf — a growable byte buffer for cold paths (admin pages, metrics,
 * replies being assembled). Out of memory aborts. */
#ifndef CM_BUF_H
#define CM_BUF_H

#include <stddef.h>
#include <stdint.h>

struct cm_buf {
	char *p;
	size_t len, cap;
};

void cm_buf_reserve(struct cm_buf *b, size_t more);
void cm_buf_append(struct cm_buf *b, const void *data, size_t n);
void cm_buf_printf(struct cm_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops the first n bytes. */
void cm_buf_consume(struct cm_buf *b, size_t n);
void cm_buf_free(struct cm_buf *b);

#endif
