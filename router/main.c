/* herald-router: flags, the loop, the relay and its admin server. */
#include "cm_flags.h"
#include "rt_admin.h"
#include "rt_router.h"
#include "cm_pb.h"

#include "cm_admin.h"
#include "cm_alloc.h"
#include "cm_log.h"
#include "cm_loop.h"
#include "cm_net.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

static const char usage[] =
	"usage: herald-router [flags]\n"
	"  --redis HOST:PORT        Redis (default 127.0.0.1:6379)\n"
	"  --redis-prefix P         key and channel prefix (default herald)\n"
	"  --admin HOST:PORT|none   /metrics, /api/gateways, /api/stats and the\n"
	"                           live page at / (default 127.0.0.1:9100)\n"
	"  --gateway-timeout D      a gateway that stops heartbeating (every 500ms)\n"
	"                           is dropped within D (default 5s)\n"
	"  --max-payload N          largest relayed payload (default 1MiB, at most 4MiB;\n"
	"                           k, M units)\n"
	"  --log-level L            debug, info, warn or error (default info)\n"
	"  --help                   this text\n"
	"Durations: 500ms, 5s, 5 (seconds), 1m.\n";

struct opts {
	char redis_host[256];
	int redis_port;
	const char *prefix;
	char admin_host[256];
	int admin_port;
	bool admin_off;
	uint32_t gateway_timeout_ms;
	size_t max_payload;
	enum cm_log_level level;
};

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	va_list ap;
	fputs("herald-router: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see --help)\n", stderr);
	return 2;
}

/* Returns -1 to go on, or the exit code (0 after --help, 2 on a bad flag). */
static int parse(int argc, char **argv, struct opts *o)
{
	enum { O_REDIS = 1, O_PREFIX, O_ADMIN, O_TIMEOUT, O_LOG, O_MAXP, O_HELP };
	static const struct option longs[] = {
		{ "redis", required_argument, NULL, O_REDIS },
		{ "redis-prefix", required_argument, NULL, O_PREFIX },
		{ "admin", required_argument, NULL, O_ADMIN },
		{ "gateway-timeout", required_argument, NULL, O_TIMEOUT },
		{ "log-level", required_argument, NULL, O_LOG },
		{ "max-payload", required_argument, NULL, O_MAXP },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	snprintf(o->redis_host, sizeof(o->redis_host), "127.0.0.1");
	o->redis_port = 6379;
	o->prefix = "herald";
	snprintf(o->admin_host, sizeof(o->admin_host), "127.0.0.1");
	o->admin_port = 9100;
	o->gateway_timeout_ms = 5000;
	o->max_payload = 1u << 20;
	o->level = CM_LOG_INFO;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", longs, NULL)) != -1) {
		const char *v = optarg;
		switch (c) {
		case O_REDIS:
			if (cm_parse_hostport(v, o->redis_host, sizeof(o->redis_host),
					      &o->redis_port) || o->redis_port <= 0)
				return fail("--redis: bad address '%s'", v);
			break;
		case O_PREFIX:
			if (!*v || strlen(v) > 64 || strpbrk(v, " \r\n\t*?[]"))
				return fail("--redis-prefix: bad prefix '%s'", v);
			o->prefix = v;
			break;
		case O_ADMIN:
			if (!strcmp(v, "none")) {
				o->admin_off = true;
				break;
			}
			if (cm_parse_hostport(v, o->admin_host, sizeof(o->admin_host),
					      &o->admin_port) || o->admin_port < 0)
				return fail("--admin: bad address '%s'", v);
			break;
		case O_TIMEOUT:
			if (cm_parse_duration_ms(v, &o->gateway_timeout_ms) || o->gateway_timeout_ms < 100)
				return fail("--gateway-timeout: bad duration '%s'", v);
			break;
		case O_MAXP: {
			uint32_t n;
			if (cm_parse_size(v, &n) || n == 0 || n > CM_CLUSTER_PAYLOAD_MAX)
				return fail("--max-payload: bad size '%s' (1 byte to 4MiB)", v);
			o->max_payload = n;
			break;
		}
		case O_LOG: {
			int l = cm_parse_choice(v, cm_log_level_names, 4);
			if (l < 0)
				return fail("--log-level: unknown level '%s'", v);
			o->level = (enum cm_log_level)l;
			break;
		}
		case O_HELP:
			fputs(usage, stdout);
			return 0;
		case ':':
			return fail("%s needs a value", argv[optind - 1]);
		default:
			return fail("unknown flag '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return fail("unexpected argument '%s'", argv[optind]);
	return -1;
}

static struct rt_router *the_router;

static void flush_hook(void *arg)
{
	(void)arg;
	if (the_router)
		rt_router_flush(the_router);
}

static void stop_loop(void *arg)
{
	cm_loop_stop(arg);
}

struct sigwatch {
	struct cm_loop *loop;
	int fd;
};

static void on_signal(void *arg, int revents)
{
	struct sigwatch *w = arg;
	struct signalfd_siginfo si;
	(void)revents;
	if (read(w->fd, &si, sizeof(si)) == sizeof(si))
		cm_info("signal %u: exiting", si.ssi_signo);
	cm_loop_stop(w->loop);
}

int main(int argc, char **argv)
{
	struct opts o;
	struct cm_loop *loop;
	struct rt_router *r;
	struct rt_opts ro;
	struct sigwatch sw;
	struct cm_admin *admin = NULL;
	struct cm_poll *sigpoll;
	sigset_t set;
	int rc, err = 0;

	cm_alloc_tune();
	memset(&o, 0, sizeof(o));
	rc = parse(argc, argv, &o);
	if (rc >= 0)
		return rc;
	cm_log_init("herald-router", o.level);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);

	loop = cm_loop_new(1024);
	sw.loop = loop;
	sw.fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sw.fd < 0) {
		cm_error("signalfd: %s", strerror(errno));
		return 1;
	}
	sigpoll = cm_poll_start(loop, sw.fd, POLLIN, true, on_signal, &sw);

	memset(&ro, 0, sizeof(ro));
	ro.redis_host = o.redis_host;
	ro.redis_port = o.redis_port;
	ro.prefix = o.prefix;
	ro.gateway_timeout_ms = o.gateway_timeout_ms;
	ro.max_payload = o.max_payload;
	r = rt_router_new(loop, &ro);
	the_router = r;
	cm_loop_on_turn(loop, flush_hook, NULL);

	if (!o.admin_off) {
		/* A router killed a moment ago may still hold the port: its
		 * io_uring instance is torn down asynchronously. */
		for (int i = 0; i < 50; i++) {
			admin = cm_admin_start(loop, o.admin_host, o.admin_port, &err);
			if (admin || err != -EADDRINUSE)
				break;
			usleep(100 * 1000);
		}
		if (!admin) {
			cm_error("--admin %s:%d: %s", o.admin_host, o.admin_port, strerror(-err));
			return 1;
		}
		rt_admin_routes(admin, r);
	}
	cm_info("router up: redis %s:%d prefix %s, admin %s:%d, gateway timeout %u ms",
		o.redis_host, o.redis_port, o.prefix, o.admin_off ? "none" : o.admin_host,
		admin ? cm_admin_port(admin) : 0, o.gateway_timeout_ms);
	rc = cm_loop_run(loop);
	/* A clean exit frees everything (the sanitizer builds check it): the
	 * admin server first (its handlers use the router), then the router,
	 * then one more turn for what the kernel still held. */
	cm_poll_stop(sigpoll);
	if (admin && !rc) {
		cm_admin_stop_then(admin, stop_loop, loop);
		cm_timer_start(loop, 2000, false, stop_loop, loop); /* bounded */
		cm_loop_run(loop);
	}
	the_router = NULL;
	rt_router_free(r);
	cm_timer_start(loop, 1, false, stop_loop, loop);
	cm_loop_run(loop);
	cm_loop_free(loop);
	close(sw.fd);
	cm_info("router stopped");
	return rc ? 1 : 0;
}
