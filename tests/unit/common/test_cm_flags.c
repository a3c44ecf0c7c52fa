#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cm_flags.h"
#include "cm_log.h"

Test(cm_flags, durations_take_ms_s_m_and_plain_seconds)
{
	uint32_t v = 7;
	cr_assert_eq(cm_parse_duration_ms("25", &v), 0);
	cr_assert_eq(v, 25000);
	cr_assert_eq(cm_parse_duration_ms("500ms", &v), 0);
	cr_assert_eq(v, 500);
	cr_assert_eq(cm_parse_duration_ms("2m", &v), 0);
	cr_assert_eq(v, 120000);
	cr_assert_eq(cm_parse_duration_ms("0.25", &v), 0);
	cr_assert_eq(v, 250);
	cr_assert_eq(cm_parse_duration_ms("5s", &v), 0);
	cr_assert_eq(v, 5000);
}

Test(cm_flags, bad_durations_are_refused_and_leave_the_value)
{
	uint32_t v = 7;
	cr_assert_eq(cm_parse_duration_ms("-1", &v), -1);
	cr_assert_eq(cm_parse_duration_ms("1x", &v), -1);
	cr_assert_eq(cm_parse_duration_ms("", &v), -1);
	cr_assert_eq(cm_parse_duration_ms("ms", &v), -1);
	cr_assert_eq(cm_parse_duration_ms("31d", &v), -1);
	cr_assert_eq(cm_parse_duration_ms("100000000", &v), -1);
	cr_assert_eq(v, 7);
}

Test(cm_flags, sizes_take_binary_units)
{
	uint32_t v = 0;
	cr_assert_eq(cm_parse_size("64KiB", &v), 0);
	cr_assert_eq(v, 65536);
	cr_assert_eq(cm_parse_size("1M", &v), 0);
	cr_assert_eq(v, 1048576);
	cr_assert_eq(cm_parse_size("3", &v), 0);
	cr_assert_eq(v, 3);
	cr_assert_eq(cm_parse_size("5000M", &v), -1);
	cr_assert_eq(cm_parse_size("-1", &v), -1);
	cr_assert_eq(cm_parse_size("4G", &v), -1);
	cr_assert_eq(cm_parse_size("3G", &v), 0);
	cr_assert_eq(v, 3221225472u);

	uint64_t w = 0;
	cr_assert_eq(cm_parse_size64("8GiB", &w), 0);
	cr_assert_eq(w, 8589934592ull);
	cr_assert_eq(cm_parse_size64("0", &w), 0);
	cr_assert_eq(w, 0);
	cr_assert_eq(cm_parse_size64("17179869184G", &w), -1);
	cr_assert_eq(cm_parse_size64("1T", &w), -1);
	cr_assert_eq(w, 0);
}

Test(cm_flags, choices_are_whole_names)
{
	static const char *const names[] = { "auto", "on", "off" };
	cr_assert_eq(cm_parse_choice("auto", names, 3), 0);
	cr_assert_eq(cm_parse_choice("off", names, 3), 2);
	cr_assert_eq(cm_parse_choice("of", names, 3), -1);
	cr_assert_eq(cm_parse_choice("offf", names, 3), -1);
	cr_assert_eq(cm_parse_choice("", names, 3), -1);
	cr_assert_eq(cm_parse_choice(NULL, names, 3), -1);
	cr_assert_eq(cm_parse_choice("error", cm_log_level_names, 4), CM_LOG_ERROR);
}

Test(cm_flags, uints_are_bounded_and_whole)
{
	uint64_t v = 0;
	cr_assert_eq(cm_parse_uint("10", 1, 10, &v), 0);
	cr_assert_eq(v, 10);
	cr_assert_eq(cm_parse_uint("11", 1, 10, &v), -1);
	cr_assert_eq(cm_parse_uint("0", 1, 10, &v), -1);
	cr_assert_eq(cm_parse_uint("1.5", 1, 10, &v), -1);
	cr_assert_eq(cm_parse_uint("-1", 0, 10, &v), -1);
	cr_assert_eq(cm_parse_uint(" 1", 0, 10, &v), -1);
	cr_assert_eq(cm_parse_uint("", 0, 10, &v), -1);
}

static char *write_tmp(const char *data, size_t n)
{
	char *path = strdup("/tmp/cm_flags_XXXXXX");
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, data, n), (ssize_t)n);
	close(fd);
	return path;
}

Test(cm_flags, secret_file_drops_one_trailing_newline)
{
	char err[128];
	size_t n = 0;
	char *path = write_tmp("s3cret\n\n", 8);
	uint8_t *p = cm_read_secret_file(path, &n, err, sizeof(err));
	cr_assert_not_null(p);
	cr_assert_eq(n, 7);
	cr_assert_eq(memcmp(p, "s3cret\n", 7), 0);
	free(p);
	unlink(path);
	free(path);
}

Test(cm_flags, secret_file_refuses_empty_missing_and_huge)
{
	char err[128], big[5000];
	size_t n = 0;
	char *path = write_tmp("\n", 1);
	cr_assert_null(cm_read_secret_file(path, &n, err, sizeof(err)));
	cr_assert(strstr(err, "empty"));
	unlink(path);
	free(path);
	memset(big, 'a', sizeof(big));
	path = write_tmp(big, sizeof(big));
	cr_assert_null(cm_read_secret_file(path, &n, err, sizeof(err)));
	cr_assert(strstr(err, "larger"));
	unlink(path);
	free(path);
	cr_assert_null(cm_read_secret_file("/nonexistent/secret", &n, err, sizeof(err)));
}

Test(cm_flags, u32_keeps_its_bounds_and_errors_read_as_one_line)
{
	uint32_t v = 7;
	char err[16];

	cr_assert_eq(cm_parse_u32("4294967295", 0, UINT32_MAX, &v), 0);
	cr_assert_eq(v, UINT32_MAX);
	cr_assert_eq(cm_parse_u32("10", 1, 9, &v), -1);
	cr_assert_eq(cm_parse_u32("-1", 0, 9, &v), -1);
	cr_assert_eq(v, UINT32_MAX, "a refused value changed the field");
	cr_assert_eq(cm_flag_fail(err, sizeof(err), "bad --port '%s'", "x"), -1);
	cr_assert_str_eq(err, "bad --port 'x'");
	cm_flag_fail(err, sizeof(err), "%s", "a message longer than the buffer");
	cr_assert_eq(strlen(err), sizeof(err) - 1);
}
