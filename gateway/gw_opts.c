#include "gw_opts.h"
#include "cm_flags.h"
#include "cm_net.h"

#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
	"usage: herald-gateway [flags]\n"
	"  --listen HOST:PORT         plain ws listener (default 0.0.0.0:8080 when no\n"
	"                             listener is given)\n"
	"  --tls-listen HOST:PORT     wss listener (needs --cert and --key)\n"
	"  --cert FILE, --key FILE    PEM certificate chain and key (ECDSA or RSA)\n"
	"  --tls-ticket-key-file F    secret (>= 32 bytes) shared by a cluster's gateways:\n"
	"                             session-ticket keys derived from it per period, so\n"
	"                             a session resumes on any of them (default: random\n"
	"                             keys per process)\n"
	"  --tls-ticket-period D      ticket key rotation period (default 1h; the\n"
	"                             previous period's key still resumes)\n"
	"  --threads N                worker threads (default: the cores it may run on)\n"
	"  --id ID                    gateway id (default hostname:pid)\n"
	"  --redis HOST:PORT|none     Redis (default 127.0.0.1:6379); none = standalone\n"
	"  --redis-prefix P           channel prefix (default herald)\n"
	"  --auth none|jwt            client authentication (default jwt)\n"
	"  --jwt-secret-file F        HS256 secret (else env HERALD_JWT_SECRET)\n"
	"  --admin HOST:PORT|none     /metrics /healthz /readyz (default 127.0.0.1:9101)\n"
	"  --max-conns N              open connections (default 100000; 503 beyond)\n"
	"  --max-message-bytes N      client message limit (default 64KiB; 1009 beyond)\n"
	"  --max-queued-bytes N       queued bytes per connection (default 1MiB; 1008)\n"
	"  --max-queued-total N       queued bytes across the gateway (default 1GiB;\n"
	"                             0: none); beyond it, a client whose backlog is\n"
	"                             above its fair share is closed with 1013\n"
	"  --sndbuf N                 SO_SNDBUF per client socket (default 0: kernel\n"
	"                             autotuning); small bounds kernel memory per slow\n"
	"                             client, at the cost of throughput to far clients\n"
	"  --ping-interval D          server ping interval (default 25s)\n"
	"  --idle-timeout D           close (1001) after D without a client frame (60s)\n"
	"  --handshake-timeout D      TLS + HTTP upgrade deadline (default 10s)\n"
	"  --drain-timeout D          SIGTERM drain deadline (default 10s)\n"
	"  --client-publish P         all | none | comma list of stream prefixes\n"
	"                             (default all; user:* and * never)\n"
	"  --cmd-rate N, --cmd-burst N  commands per second per connection (100, 200)\n"
	"  --max-subscriptions N      streams per connection (default 1000; 413 beyond)\n"
	"  --recv-buffers N           provided receive buffers per thread (128)\n"
	"  --recv-buffer-size N       bytes each (4096)\n"
	"  --fixed-files auto|on|off  client sockets in io_uring's file table, not\n"
	"                             the descriptor table (auto: on kernels 6.13+)\n"
	"  --log-level L              debug|info|warn|error (default info)\n"
	"  --help                     this text\n"
	"Durations: seconds, or with a suffix ms/s/m (500ms). Sizes: bytes or k/KiB/m/MiB/g/GiB.\n";

enum {
	O_LISTEN = 256, O_TLS, O_CERT, O_KEY, O_THREADS, O_ID, O_REDIS, O_PREFIX, O_AUTH,
	O_SECRET, O_ADMIN, O_MAXCONNS, O_MAXMSG, O_MAXQ, O_MAXQT, O_SNDBUF, O_PING, O_IDLE, O_HS, O_DRAIN,
	O_PUB, O_RATE, O_BURST, O_MAXSUBS, O_RBUFS, O_RBUFSZ, O_LOG, O_HELP,
	O_TKFILE, O_TKPERIOD, O_FIXED,
};

static const struct option longopts[] = {
	{ "listen", required_argument, NULL, O_LISTEN },
	{ "tls-listen", required_argument, NULL, O_TLS },
	{ "cert", required_argument, NULL, O_CERT },
	{ "key", required_argument, NULL, O_KEY },
	{ "threads", required_argument, NULL, O_THREADS },
	{ "id", required_argument, NULL, O_ID },
	{ "redis", required_argument, NULL, O_REDIS },
	{ "redis-prefix", required_argument, NULL, O_PREFIX },
	{ "auth", required_argument, NULL, O_AUTH },
	{ "jwt-secret-file", required_argument, NULL, O_SECRET },
	{ "admin", required_argument, NULL, O_ADMIN },
	{ "max-conns", required_argument, NULL, O_MAXCONNS },
	{ "max-message-bytes", required_argument, NULL, O_MAXMSG },
	{ "max-queued-bytes", required_argument, NULL, O_MAXQ },
	{ "max-queued-total", required_argument, NULL, O_MAXQT },
	{ "fixed-files", required_argument, NULL, O_FIXED },
	{ "sndbuf", required_argument, NULL, O_SNDBUF },
	{ "ping-interval", required_argument, NULL, O_PING },
	{ "idle-timeout", required_argument, NULL, O_IDLE },
	{ "handshake-timeout", required_argument, NULL, O_HS },
	{ "drain-timeout", required_argument, NULL, O_DRAIN },
	{ "client-publish", required_argument, NULL, O_PUB },
	{ "cmd-rate", required_argument, NULL, O_RATE },
	{ "cmd-burst", required_argument, NULL, O_BURST },
	{ "max-subscriptions", required_argument, NULL, O_MAXSUBS },
	{ "recv-buffers", required_argument, NULL, O_RBUFS },
	{ "recv-buffer-size", required_argument, NULL, O_RBUFSZ },
	{ "log-level", required_argument, NULL, O_LOG },
	{ "help", no_argument, NULL, O_HELP },
	{ "tls-ticket-key-file", required_argument, NULL, O_TKFILE },
	{ "tls-ticket-period", required_argument, NULL, O_TKPERIOD },
	{ NULL, 0, NULL, 0 },
};

/* Reads a secret file for `flag` into *out (replacing what was there); at
 * least min bytes. Secrets are never logged, only their reading errors. */
static int read_secret(const char *flag, const char *path, size_t min, uint8_t **out,
		       size_t *out_len, char *err, size_t cap)
{
	char why[256];
	size_t n;
	uint8_t *p = cm_read_secret_file(path, &n, why, sizeof(why));

	if (!p)
		return cm_flag_fail(err, cap, "%s %s", flag, why);
	if (n < min) {
		free(p);
		return cm_flag_fail(err, cap, "%s %s: %zu bytes, want at least %zu", flag, path, n, min);
	}
	free(*out);
	*out = p;
	*out_len = n;
	return 0;
}

static int parse_pub(struct gw_opts *o, const char *s, char *err, size_t cap)
{
	const char *p = s;

	for (unsigned i = 0; i < o->npub_prefixes; i++)
		free(o->pub_prefixes[i]);
	free(o->pub_prefixes);
	o->pub_prefixes = NULL;
	o->npub_prefixes = 0;
	if (!strcmp(s, "all")) {
		o->pub = GW_PUB_ALL;
		return 0;
	}
	if (!strcmp(s, "none")) {
		o->pub = GW_PUB_NONE;
		return 0;
	}
	o->pub = GW_PUB_LIST;
	while (*p) {
		const char *c = strchr(p, ',');
		size_t n = c ? (size_t)(c - p) : strlen(p);
		if (n == 0 || n > 128)
			return cm_flag_fail(err, cap, "--client-publish: bad prefix list '%s'", s);
		for (size_t i = 0; i < n; i++) {
			char ch = p[i];
			if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			      (ch >= '0' && ch <= '9') || ch == '_' || ch == ':' || ch == '.' ||
			      ch == '-'))
				return cm_flag_fail(err, cap, "--client-publish: bad prefix list '%s'", s);
		}
		o->pub_prefixes = cm_xrealloc(o->pub_prefixes,
					      (o->npub_prefixes + 1) * sizeof(char *));
		o->pub_prefixes[o->npub_prefixes++] = cm_xstrndup(p, n);
		p += n;
		if (*p == ',')
			p++;
	}
	if (!o->npub_prefixes)
		return cm_flag_fail(err, cap, "--client-publish: empty list");
	return 0;
}

bool gw_opts_may_publish(const struct gw_opts *o, const char *s, size_t n)
{
	if ((n == 1 && s[0] == '*') || (n >= 5 && !memcmp(s, "user:", 5)))
		return false;
	switch (o->pub) {
	case GW_PUB_ALL:
		return true;
	case GW_PUB_NONE:
		return false;
	case GW_PUB_LIST:
		for (unsigned i = 0; i < o->npub_prefixes; i++) {
			size_t pl = strlen(o->pub_prefixes[i]);
			if (pl <= n && !memcmp(s, o->pub_prefixes[i], pl))
				return true;
		}
		return false;
	}
	return false;
}

static int hostport(const char *flag, const char *v, char *host, int *port, char *err, size_t cap)
{
	if (cm_parse_hostport(v, host, GW_HOST_MAX, port) < 0)
		return cm_flag_fail(err, cap, "%s: bad HOST:PORT '%s'", flag, v);
	return 0;
}

int gw_opts_parse(struct gw_opts *o, int argc, char **argv, char *err, size_t errcap)
{
	const char *secret_file = NULL, *ticket_file = NULL;
	char host[200];
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	cpu_set_t cpus;
	int c;

	memset(o, 0, sizeof(*o));
	/* the cores this process may run on (a cpuset or taskset counts) */
	if (sched_getaffinity(0, sizeof(cpus), &cpus) == 0 && CPU_COUNT(&cpus) > 0)
		ncpu = CPU_COUNT(&cpus);
	o->threads = ncpu > 0 ? (unsigned)(ncpu > GW_MAX_THREADS ? GW_MAX_THREADS : ncpu) : 1;
	if (gethostname(host, sizeof(host) - 1) < 0)
		strcpy(host, "gateway");
	host[sizeof(host) - 1] = 0;
	snprintf(o->id, sizeof(o->id), "%s:%d", host, (int)getpid());
	strcpy(o->redis_host, "127.0.0.1");
	o->redis_port = 6379;
	strcpy(o->prefix, "herald");
	o->auth_jwt = true;
	o->has_admin = true;
	strcpy(o->admin_host, "127.0.0.1");
	o->admin_port = 9101;
	o->max_conns = 100000;
	o->max_message = 64 * 1024;
	o->max_queued = 1024 * 1024;
	o->max_queued_total = 1024ull * 1024 * 1024;
	o->ping_ms = 25000;
	o->idle_ms = 60000;
	o->handshake_ms = 10000;
	o->drain_ms = 10000;
	o->pub = GW_PUB_ALL;
	o->cmd_rate = 100;
	o->cmd_burst = 200;
	o->max_subs = 1000;
	o->recv_buffers = 128;
	o->fixed_files = GW_FIXED_AUTO;
	o->recv_buffer_size = 4096;
	o->log_level = CM_LOG_INFO;
	o->ticket_period_ms = 3600 * 1000;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
		const char *v = optarg;
		uint32_t u;
		switch (c) {
		case O_HELP:
			fputs(usage, stdout);
			return 1;
		case O_LISTEN:
			if (hostport("--listen", v, o->listen_host, &o->listen_port, err, errcap))
				return -1;
			o->has_listen = true;
			break;
		case O_TLS:
			if (hostport("--tls-listen", v, o->tls_host, &o->tls_port, err, errcap))
				return -1;
			o->has_tls = true;
			break;
		case O_CERT:
			free(o->cert);
			o->cert = strdup(v);
			break;
		case O_KEY:
			free(o->key);
			o->key = strdup(v);
			break;
		case O_THREADS:
			if (cm_parse_u32(v, 1, GW_MAX_THREADS, &u))
				return cm_flag_fail(err, errcap, "--threads: want 1..%d, got '%s'",
					    GW_MAX_THREADS, v);
			o->threads = u;
			break;
		case O_ID:
			if (!*v || strlen(v) >= sizeof(o->id))
				return cm_flag_fail(err, errcap, "--id: bad id '%s'", v);
			strcpy(o->id, v);
			break;
		case O_REDIS:
			if (!strcmp(v, "none")) {
				o->standalone = true;
				break;
			}
			o->standalone = false;
			if (hostport("--redis", v, o->redis_host, &o->redis_port, err, errcap))
				return -1;
			break;
		case O_PREFIX:
			if (!*v || strlen(v) >= sizeof(o->prefix))
				return cm_flag_fail(err, errcap, "--redis-prefix: bad prefix '%s'", v);
			strcpy(o->prefix, v);
			break;
		case O_AUTH:
			if (!strcmp(v, "none"))
				o->auth_jwt = false;
			else if (!strcmp(v, "jwt"))
				o->auth_jwt = true;
			else
				return cm_flag_fail(err, errcap, "--auth: want none or jwt, got '%s'", v);
			break;
		case O_SECRET:
			secret_file = v;
			break;
		case O_TKFILE:
			ticket_file = v;
			break;
		case O_TKPERIOD:
			if (cm_parse_duration_ms(v, &o->ticket_period_ms) || o->ticket_period_ms < 1000)
				return cm_flag_fail(err, errcap, "--tls-ticket-period: bad duration '%s' (>= 1s)", v);
			break;
		case O_ADMIN:
			o->admin_explicit = true;
			if (!strcmp(v, "none")) {
				o->has_admin = false;
				break;
			}
			o->has_admin = true;
			if (hostport("--admin", v, o->admin_host, &o->admin_port, err, errcap))
				return -1;
			break;
		case O_MAXCONNS:
			if (cm_parse_u32(v, 1, 10000000, &o->max_conns))
				return cm_flag_fail(err, errcap, "--max-conns: bad number '%s'", v);
			break;
		case O_MAXMSG:
			if (cm_parse_size(v, &o->max_message) || o->max_message < 16 ||
			    o->max_message > 64u * 1024 * 1024)
				return cm_flag_fail(err, errcap, "--max-message-bytes: bad size '%s'", v);
			break;
		case O_MAXQ:
			if (cm_parse_size(v, &o->max_queued) || o->max_queued < 1024)
				return cm_flag_fail(err, errcap, "--max-queued-bytes: bad size '%s'", v);
			break;
		case O_FIXED: {
			static const char *const modes[] = { [GW_FIXED_AUTO] = "auto",
							     [GW_FIXED_ON] = "on",
							     [GW_FIXED_OFF] = "off" };
			int m = cm_parse_choice(v, modes, 3);
			if (m < 0)
				return cm_flag_fail(err, errcap, "--fixed-files: auto, on or off, not '%s'", v);
			o->fixed_files = (enum gw_fixed)m;
			break;
		}
		case O_MAXQT:
			if (cm_parse_size64(v, &o->max_queued_total) ||
			    (o->max_queued_total && o->max_queued_total < 1024))
				return cm_flag_fail(err, errcap, "--max-queued-total: bad size '%s'", v);
			break;
		case O_SNDBUF:
			if (cm_parse_size(v, &o->sndbuf) || o->sndbuf > 64u * 1024 * 1024)
				return cm_flag_fail(err, errcap, "--sndbuf: bad size '%s'", v);
			break;
		case O_PING:
			if (cm_parse_duration_ms(v, &o->ping_ms) || o->ping_ms < 10)
				return cm_flag_fail(err, errcap, "--ping-interval: bad duration '%s'", v);
			break;
		case O_IDLE:
			if (cm_parse_duration_ms(v, &o->idle_ms) || o->idle_ms < 10)
				return cm_flag_fail(err, errcap, "--idle-timeout: bad duration '%s'", v);
			break;
		case O_HS:
			if (cm_parse_duration_ms(v, &o->handshake_ms) || o->handshake_ms < 10)
				return cm_flag_fail(err, errcap, "--handshake-timeout: bad duration '%s'", v);
			break;
		case O_DRAIN:
			if (cm_parse_duration_ms(v, &o->drain_ms))
				return cm_flag_fail(err, errcap, "--drain-timeout: bad duration '%s'", v);
			break;
		case O_PUB:
			if (parse_pub(o, v, err, errcap))
				return -1;
			break;
		case O_RATE:
			if (cm_parse_u32(v, 1, 1000000, &o->cmd_rate))
				return cm_flag_fail(err, errcap, "--cmd-rate: bad number '%s'", v);
			break;
		case O_BURST:
			if (cm_parse_u32(v, 1, 1000000, &o->cmd_burst))
				return cm_flag_fail(err, errcap, "--cmd-burst: bad number '%s'", v);
			break;
		case O_MAXSUBS:
			if (cm_parse_u32(v, 1, 1000000, &o->max_subs))
				return cm_flag_fail(err, errcap, "--max-subscriptions: bad number '%s'", v);
			break;
		case O_RBUFS:
			if (cm_parse_u32(v, 8, 32768, &u) || (u & (u - 1)))
				return cm_flag_fail(err, errcap, "--recv-buffers: want a power of two 8..32768, got '%s'", v);
			o->recv_buffers = u;
			break;
		case O_RBUFSZ:
			if (cm_parse_size(v, &u) || u < 512 || u > 1024 * 1024)
				return cm_flag_fail(err, errcap, "--recv-buffer-size: bad size '%s'", v);
			o->recv_buffer_size = u;
			break;
		case O_LOG: {
			int l = cm_parse_choice(v, cm_log_level_names, 4);
			if (l < 0)
				return cm_flag_fail(err, errcap, "--log-level: bad level '%s'", v);
			o->log_level = (enum cm_log_level)l;
			break;
		}
		case ':':
			return cm_flag_fail(err, errcap, "%s needs a value", argv[optind - 1]);
		default:
			return cm_flag_fail(err, errcap, "unknown flag '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cm_flag_fail(err, errcap, "unexpected argument '%s'", argv[optind]);
	if (o->has_tls && (!o->cert || !o->key))
		return cm_flag_fail(err, errcap, "--tls-listen needs --cert and --key");
	if (ticket_file && read_secret("--tls-ticket-key-file", ticket_file, 32, &o->ticket_secret,
					&o->ticket_secret_len, err, errcap))
		return -1;
	if (!o->has_listen && !o->has_tls) {
		strcpy(o->listen_host, "0.0.0.0");
		o->listen_port = 8080;
		o->has_listen = true;
	}
	if (o->auth_jwt) {
		const char *env = getenv("HERALD_JWT_SECRET");
		if (secret_file) {
			if (read_secret("--jwt-secret-file", secret_file, 1, &o->jwt_secret,
					&o->jwt_secret_len, err, errcap))
				return -1;
		} else if (env && *env) {
			o->jwt_secret_len = strlen(env);
			o->jwt_secret = cm_xmalloc(o->jwt_secret_len);
			memcpy(o->jwt_secret, env, o->jwt_secret_len);
		} else {
			return cm_flag_fail(err, errcap,
				    "--auth jwt needs --jwt-secret-file or HERALD_JWT_SECRET");
		}
	}
	return 0;
}

void gw_opts_free(struct gw_opts *o)
{
	free(o->cert);
	free(o->key);
	free(o->jwt_secret);
	free(o->ticket_secret);
	for (unsigned i = 0; i < o->npub_prefixes; i++)
		free(o->pub_prefixes[i]);
	free(o->pub_prefixes);
	memset(o, 0, sizeof(*o));
}
