#include <criterion/criterion.h>
#include <string.h>
#include <sys/resource.h>

#include "loadtest/ld_opts.h"

static struct ld_opts o;
static char err[512];

static int parse(int argc, const char **argv)
{
	err[0] = 0;
	return ld_opts_parse(&o, argc, (char **)argv, err, sizeof(err));
}

#define PARSE(...) ({ const char *a_[] = { "herald-load", __VA_ARGS__ }; \
	parse((int)(sizeof(a_) / sizeof(a_[0])), a_); })

Test(ld_opts, a_target_is_required)
{
	cr_assert_eq(PARSE("--clients", "10"), -1);
	cr_assert(strstr(err, "--target"), "%s", err);
}

Test(ld_opts, connect_defaults_do_not_publish_or_subscribe)
{
	cr_assert_eq(PARSE("--target", "127.0.0.1:8080"), 0, "%s", err);
	cr_assert_eq(o.scenario, LD_SC_CONNECT);
	cr_assert_eq(o.clients, 1000);
	cr_assert_not(o.publish);
	cr_assert_not(o.subscribe);
	cr_assert_eq(o.workers, 1);
	cr_assert_eq(o.ntargets, 1);
	cr_assert_str_eq(o.targets[0].hostport, "127.0.0.1:8080");
}

Test(ld_opts, fanout_spreads_clients_over_streams_of_a_hundred)
{
	cr_assert_eq(PARSE("--scenario", "fanout", "--target", "127.0.0.1:1", "--clients", "20000",
			   "--rate-msgs", "100,300,1000"), 0, "%s", err);
	cr_assert(o.publish && o.subscribe);
	cr_assert_eq(o.streams, 200);
	cr_assert_eq(o.nrates, 3);
	cr_assert_float_eq(o.rates[2], 1000, 1e-9);
	cr_assert_eq(o.workers, 2, "20000 clients need two workers under 20000 descriptors");
}

Test(ld_opts, broadcast_is_one_stream)
{
	cr_assert_eq(PARSE("--scenario", "broadcast", "--target", "127.0.0.1:1"), 0, "%s", err);
	cr_assert_eq(o.streams, 1);
	cr_assert_eq(PARSE("--scenario", "broadcast", "--target", "127.0.0.1:1", "--streams", "5"), -1);
}

Test(ld_opts, targets_and_sources_take_comma_lists)
{
	cr_assert_eq(PARSE("--target", "127.0.0.1:1,127.0.0.1:2", "--target", "[::1]:3",
			   "--source-ips", "127.0.0.2,127.0.0.3"), 0, "%s", err);
	cr_assert_eq(o.ntargets, 3);
	cr_assert_str_eq(o.targets[2].hostport, "[::1]:3");
	cr_assert_eq(o.nsources, 2);
}

Test(ld_opts, bad_values_are_refused_with_a_reason)
{
	cr_assert_eq(PARSE("--target", "nohost"), -1);
	cr_assert(strstr(err, "HOST:PORT"), "%s", err);
	cr_assert_eq(PARSE("--target", "example.com:80"), -1, "names are not resolved");
	cr_assert_eq(PARSE("--target", "127.0.0.1:1", "--clients", "0"), -1);
	cr_assert_eq(PARSE("--target", "127.0.0.1:1", "--scenario", "nope"), -1);
	cr_assert_eq(PARSE("--target", "127.0.0.1:1", "--rate-msgs", "10,x"), -1);
	cr_assert_eq(PARSE("--target", "127.0.0.1:1", "--rate-msgs", "10"), -1,
		     "connect does not publish");
	cr_assert_eq(PARSE("--target", "127.0.0.1:1", "--churn-rate", "5"), -1);
	cr_assert_eq(PARSE("--target", "127.0.0.1:1", "--bogus"), -1);
	cr_assert(strstr(err, "--bogus"), "%s", err);
	cr_assert_eq(PARSE("--target", "127.0.0.1:1", "--source-ips", "1.2.3"), -1);
	cr_assert_eq(PARSE("--target", "127.0.0.1:1", "--format", "xml"), -1);
}

Test(ld_opts, too_many_clients_per_worker_names_the_fix)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_max == RLIM_INFINITY || rl.rlim_max > 100000)
		cr_skip_test("descriptor limit too high to hit");
	cr_assert_eq(PARSE("--target", "127.0.0.1:1", "--clients", "100000", "--workers", "1"), -1);
	cr_assert(strstr(err, "--workers"), "%s", err);
}

Test(ld_opts, help_is_not_an_error)
{
	cr_assert_eq(PARSE("--help"), 1);
}

Test(ld_opts, slow_and_churn_have_defaults)
{
	cr_assert_eq(PARSE("--scenario", "slow", "--target", "127.0.0.1:1"), 0, "%s", err);
	cr_assert_float_eq(o.slow_pct, 10, 1e-9);
	cr_assert(o.publish);
	cr_assert_eq(PARSE("--scenario", "churn", "--target", "127.0.0.1:1", "--clients", "500"), 0, "%s", err);
	cr_assert_float_eq(o.churn_rate, 50, 1e-9);
	cr_assert_not(o.publish);
}

Test(ld_opts, batch_waits_default_and_bounds)
{
	cr_assert_eq(PARSE("--target", "127.0.0.1:1"), 0, "%s", err);
	cr_assert_eq(o.batch, 32);
	cr_assert_eq(o.batch_us, 200);
	cr_assert_eq(PARSE("--target", "127.0.0.1:1", "--batch", "1", "--batch-us", "1000"), 0, "%s", err);
	cr_assert_eq(o.batch, 1);
	cr_assert_eq(o.batch_us, 1000);
	cr_assert_eq(PARSE("--target", "127.0.0.1:1", "--batch", "0"), -1);
	cr_assert(strstr(err, "--batch"), "%s", err);
	cr_assert_eq(PARSE("--target", "127.0.0.1:1", "--batch-us", "0"), -1);
}

Test(ld_opts, ack_on_read_is_off_unless_asked)
{
	cr_assert_eq(PARSE("--target", "127.0.0.1:1"), 0, "%s", err);
	cr_assert_not(o.ack_on_read);
	cr_assert_eq(PARSE("--target", "127.0.0.1:1", "--ack-on-read"), 0, "%s", err);
	cr_assert(o.ack_on_read);
}

Test(ld_opts, timeline_interval_defaults_to_a_second_within_bounds)
{
	cr_assert_eq(PARSE("--target", "127.0.0.1:1"), 0, "%s", err);
	cr_assert_eq(o.timeline_ms, 1000);
	cr_assert_eq(PARSE("--target", "127.0.0.1:1", "--timeline-ms", "100"), 0, "%s", err);
	cr_assert_eq(o.timeline_ms, 100);
	cr_assert_eq(PARSE("--target", "127.0.0.1:1", "--timeline-ms", "99"), -1);
	cr_assert(strstr(err, "--timeline-ms"), "%s", err);
	cr_assert_eq(PARSE("--target", "127.0.0.1:1", "--timeline-ms", "60001"), -1);
}
