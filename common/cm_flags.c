#include "cm_flags.h"
#include "cm_log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cm_parse_duration_ms(const char *s, uint32_t *ms)
{
	char *end;
	double v, mul;

	if (!s || !*s)
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || v < 0)
		return -1;
	if (!strcmp(end, "ms"))
		mul = 1;
	else if (!strcmp(end, "s") || !*end)
		mul = 1000;
	else if (!strcmp(end, "m"))
		mul = 60000;
	else
		return -1;
	v *= mul;
	if (v > 86400.0 * 1000 * 30)
		return -1;
	*ms = (uint32_t)(v + 0.5);
	return 0;
}

int cm_parse_size64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v, mul;

	if (!s || !*s || *s == '-')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	if (!*end)
		mul = 1;
	else if (!strcmp(end, "k") || !strcmp(end, "K") || !strcmp(end, "KiB") || !strcmp(end, "KB"))
		mul = 1024;
	else if (!strcmp(end, "m") || !strcmp(end, "M") || !strcmp(end, "MiB") || !strcmp(end, "MB"))
		mul = 1024 * 1024;
	else if (!strcmp(end, "g") || !strcmp(end, "G") || !strcmp(end, "GiB") || !strcmp(end, "GB"))
		mul = 1024 * 1024 * 1024;
	else
		return -1;
	if (v > UINT64_MAX / mul)
		return -1;
	*out = (uint64_t)(v * mul);
	return 0;
}

int cm_parse_size(const char *s, uint32_t *out)
{
	uint64_t v;

	if (cm_parse_size64(s, &v) || v > UINT32_MAX)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

int cm_parse_choice(const char *s, const char *const *names, size_t n)
{
	for (size_t i = 0; s && i < n; i++)
		if (!strcmp(s, names[i]))
			return (int)i;
	return -1;
}

int cm_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || end == s || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

uint8_t *cm_read_secret_file(const char *path, size_t *len, char *err, size_t errcap)
{
	FILE *f = fopen(path, "rb");
	uint8_t buf[4096], *p;
	size_t n;

	if (!f) {
		snprintf(err, errcap, "%s: %s", path, strerror(errno));
		return NULL;
	}
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	if (n == sizeof(buf)) {
		snprintf(err, errcap, "%s: larger than 4095 bytes", path);
		return NULL;
	}
	if (n && buf[n - 1] == '\n')
		n--;
	if (n == 0) {
		snprintf(err, errcap, "%s: empty secret", path);
		return NULL;
	}
	p = cm_xmalloc(n);
	memcpy(p, buf, n);
	*len = n;
	return p;
}

int cm_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	uint64_t v;

	if (cm_parse_uint(s, min, max, &v))
		return -1;
	*out = (uint32_t)v;
	return 0;
}

int cm_flag_fail(char *err, size_t cap, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, cap, fmt, ap);
	va_end(ap);
	return -1;
}
