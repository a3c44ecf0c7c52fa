#include "cm_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *log_prog = "herald";
static enum cm_log_level log_min = CM_LOG_INFO;

const char *const cm_log_level_names[4] = { "debug", "info", "warn", "error" };

void cm_log_init(const char *prog, enum cm_log_level min)
{
	log_prog = prog;
	log_min = min;
}

void cm_log(enum cm_log_level lvl, const char *fmt, ...)
{
	char line[1024];
	struct timespec ts;
	va_list ap;
	int n;

	if (lvl < log_min)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	n = snprintf(line, sizeof(line), "%lld.%03ld %s %s: ", (long long)ts.tv_sec,
		     ts.tv_nsec / 1000000, cm_log_level_names[lvl], log_prog);
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	/* One write per line: lines from several threads do not interleave. */
	fwrite(line, 1, (size_t)n, stderr);
}

void cm_panic(const char *file, int line, const char *what)
{
	fprintf(stderr, "%s: assertion failed at %s:%d: %s\n", log_prog, file, line, what);
	abort();
}

void *cm_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		cm_panic(__FILE__, __LINE__, "out of memory");
	return p;
}

void *cm_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		cm_panic(__FILE__, __LINE__, "out of memory");
	return p;
}

void *cm_xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		cm_panic(__FILE__, __LINE__, "out of memory");
	return p;
}

char *cm_xstrndup(const char *s, size_t n)
{
	char *p = cm_xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = 0;
	return p;
}
