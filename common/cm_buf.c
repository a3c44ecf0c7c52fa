#include "cm_buf.h"
#include "cm_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void cm_buf_reserve(struct cm_buf *b, size_t more)
{
	size_t need = b->len + more + 1;
	if (need <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	b->p = cm_xrealloc(b->p, cap);
	b->cap = cap;
}

void cm_buf_append(struct cm_buf *b, const void *data, size_t n)
{
	cm_buf_reserve(b, n);
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = 0;
}

void cm_buf_printf(struct cm_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	cm_buf_reserve(b, 128);
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	CM_ASSERT(n >= 0);
	if ((size_t)n >= b->cap - b->len) {
		cm_buf_reserve(b, (size_t)n);
		va_start(ap, fmt);
		vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

void cm_buf_consume(struct cm_buf *b, size_t n)
{
	CM_ASSERT(n <= b->len);
	memmove(b->p, b->p + n, b->len - n);
	b->len -= n;
	if (b->p)
		b->p[b->len] = 0;
}

void cm_buf_free(struct cm_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}
