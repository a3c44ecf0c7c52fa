#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/gw_opts.h"

static int parse(struct gw_opts *o, char *err, const char *first, ...)
{
	char *argv[64];
	int argc = 0;
	va_list ap;
	argv[argc++] = "herald-gateway";
	va_start(ap, first);
	for (const char *a = first; a; a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	return gw_opts_parse(o, argc, argv, err, 256);
}

Test(gw_opts, defaults_match_the_contract)
{
	struct gw_opts o;
	char err[256];
	setenv("HERALD_JWT_SECRET", "s3cret", 1);
	cr_assert_eq(parse(&o, err, NULL), 0, "%s", err);
	cr_assert(o.has_listen);
	cr_assert_eq(o.listen_port, 8080);
	cr_assert_str_eq(o.redis_host, "127.0.0.1");
	cr_assert_eq(o.redis_port, 6379);
	cr_assert_str_eq(o.prefix, "herald");
	cr_assert(o.auth_jwt);
	cr_assert_eq(o.jwt_secret_len, 6);
	cr_assert_eq(memcmp(o.jwt_secret, "s3cret", 6), 0);
	cr_assert_eq(o.admin_port, 9101);
	cr_assert_eq(o.max_conns, 100000);
	cr_assert_eq(o.max_message, 65536);
	cr_assert_eq(o.max_queued, 1048576);
	cr_assert_eq(o.max_queued_total, 1073741824ull);
	cr_assert_eq(o.ping_ms, 25000);
	cr_assert_eq(o.idle_ms, 60000);
	cr_assert_eq(o.handshake_ms, 10000);
	cr_assert_eq(o.drain_ms, 10000);
	cr_assert_eq(o.pub, GW_PUB_ALL);
	cr_assert_eq(o.max_subs, 1000);
	cr_assert(!o.standalone);
	cr_assert_neq(strchr(o.id, ':'), NULL);
	gw_opts_free(&o);
	unsetenv("HERALD_JWT_SECRET");
}

Test(gw_opts, jwt_without_secret_is_an_error)
{
	struct gw_opts o;
	char err[256];
	unsetenv("HERALD_JWT_SECRET");
	cr_assert_eq(parse(&o, err, "--auth", "jwt", NULL), -1);
	cr_assert_neq(strstr(err, "secret"), NULL);
	gw_opts_free(&o);
}

Test(gw_opts, secret_file_drops_one_trailing_newline)
{
	struct gw_opts o;
	char err[256], path[] = "/tmp/gw_opts_secretXXXXXX";
	int fd = mkstemp(path);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, "abc\n\n", 5), 5);
	close(fd);
	cr_assert_eq(parse(&o, err, "--jwt-secret-file", path, NULL), 0, "%s", err);
	cr_assert_eq(o.jwt_secret_len, 4);
	cr_assert_eq(memcmp(o.jwt_secret, "abc\n", 4), 0);
	gw_opts_free(&o);
	unlink(path);
}

Test(gw_opts, parses_every_flag)
{
	struct gw_opts o;
	char err[256];
	int r = parse(&o, err, "--listen", "127.0.0.1:1", "--tls-listen", "[::1]:2", "--cert", "c",
		      "--key", "k", "--threads", "3", "--id", "gw-a", "--redis", "none",
		      "--redis-prefix", "hx", "--auth", "none", "--admin", "none", "--max-conns", "7",
		      "--max-message-bytes", "2KiB", "--max-queued-bytes", "1M",
		      "--max-queued-total", "6GiB", "--ping-interval",
		      "500ms", "--idle-timeout", "2", "--handshake-timeout", "1.5s",
		      "--drain-timeout", "0", "--client-publish", "chat:,news", "--cmd-rate", "5",
		      "--cmd-burst", "9", "--max-subscriptions", "4", "--recv-buffers", "64", "--recv-buffer-size", "8k",
		      "--log-level", "debug", NULL);
	cr_assert_eq(r, 0, "%s", err);
	cr_assert_eq(o.listen_port, 1);
	cr_assert_str_eq(o.tls_host, "::1");
	cr_assert_eq(o.threads, 3);
	cr_assert_str_eq(o.id, "gw-a");
	cr_assert(o.standalone);
	cr_assert_str_eq(o.prefix, "hx");
	cr_assert(!o.auth_jwt && !o.has_admin);
	cr_assert_eq(o.max_conns, 7);
	cr_assert_eq(o.max_message, 2048);
	cr_assert_eq(o.max_queued, 1048576);
	cr_assert_eq(o.max_queued_total, 6ull << 30);
	cr_assert_eq(o.ping_ms, 500);
	cr_assert_eq(o.idle_ms, 2000);
	cr_assert_eq(o.handshake_ms, 1500);
	cr_assert_eq(o.drain_ms, 0);
	cr_assert_eq(o.pub, GW_PUB_LIST);
	cr_assert_eq(o.npub_prefixes, 2);
	cr_assert_eq(o.cmd_rate, 5);
	cr_assert_eq(o.cmd_burst, 9);
	cr_assert_eq(o.max_subs, 4);
	cr_assert_eq(o.recv_buffers, 64);
	cr_assert_eq(o.recv_buffer_size, 8192);
	cr_assert_eq(o.log_level, CM_LOG_DEBUG);
	gw_opts_free(&o);
}

Test(gw_opts, rejects_bad_values_with_one_line)
{
	static const char *bad[][2] = {
		{ "--listen", "nocolon" }, { "--threads", "0" }, { "--threads", "x" },
		{ "--auth", "basic" }, { "--max-conns", "-1" }, { "--ping-interval", "5h" },
		{ "--idle-timeout", "" }, { "--max-message-bytes", "12QB" },
		{ "--client-publish", "a,,b" }, { "--client-publish", "bad name" },
		{ "--recv-buffers", "100" }, { "--max-queued-total", "512" },
		{ "--max-queued-total", "1T" }, { "--log-level", "loud" }, { "--redis", "host" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct gw_opts o;
		char err[256] = "";
		cr_assert_eq(parse(&o, err, "--auth", "none", bad[i][0], bad[i][1], NULL), -1,
			     "%s %s accepted", bad[i][0], bad[i][1]);
		cr_assert(err[0] && !strchr(err, '\n'), "%s", err);
		gw_opts_free(&o);
	}
}

Test(gw_opts, unknown_flag_and_tls_without_cert)
{
	struct gw_opts o;
	char err[256];
	cr_assert_eq(parse(&o, err, "--auth", "none", "--bogus", NULL), -1);
	gw_opts_free(&o);
	cr_assert_eq(parse(&o, err, "--auth", "none", "--tls-listen", "127.0.0.1:1", NULL), -1);
	gw_opts_free(&o);
	cr_assert_eq(parse(&o, err, "--auth", "none", "--listen", NULL), -1);
	gw_opts_free(&o);
}

Test(gw_opts, help_returns_one)
{
	struct gw_opts o;
	char err[256];
	cr_redirect_stdout();
	cr_assert_eq(parse(&o, err, "--help", NULL), 1);
	gw_opts_free(&o);
}

Test(gw_opts, client_publish_policy)
{
	struct gw_opts o;
	char err[256];
	cr_assert_eq(parse(&o, err, "--auth", "none", NULL), 0);
	cr_assert(gw_opts_may_publish(&o, "clan:7", 6));
	cr_assert(!gw_opts_may_publish(&o, "user:u1", 7));
	cr_assert(!gw_opts_may_publish(&o, "*", 1));
	gw_opts_free(&o);
	cr_assert_eq(parse(&o, err, "--auth", "none", "--client-publish", "none", NULL), 0);
	cr_assert(!gw_opts_may_publish(&o, "clan:7", 6));
	gw_opts_free(&o);
	cr_assert_eq(parse(&o, err, "--auth", "none", "--client-publish", "chat:,news", NULL), 0);
	cr_assert(gw_opts_may_publish(&o, "chat:1", 6));
	cr_assert(gw_opts_may_publish(&o, "news", 4));
	cr_assert(gw_opts_may_publish(&o, "newsroom", 8));
	cr_assert(!gw_opts_may_publish(&o, "chat", 4));
	cr_assert(!gw_opts_may_publish(&o, "clan:7", 6));
	gw_opts_free(&o);
	cr_assert_eq(parse(&o, err, "--auth", "none", "--client-publish", "user:", NULL), 0);
	cr_assert(!gw_opts_may_publish(&o, "user:x", 6));
	gw_opts_free(&o);
}
