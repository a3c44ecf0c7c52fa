#include "cm_flags.h"
#include "ld_opts.h"

#include "cm_net.h"
#include "ld_payload.h"

#define LD_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static const char *const scenario_names[] = {
	[LD_SC_CONNECT] = "connect", [LD_SC_FANOUT] = "fanout", [LD_SC_BROADCAST] = "broadcast",
	[LD_SC_CHURN] = "churn", [LD_SC_SLOW] = "slow",
};

const char *ld_scenario_name(enum ld_scenario s)
{
	return scenario_names[s];
}

void ld_opts_usage(FILE *out)
{
	fputs(
"usage: herald-load [options]\n"
"Opens many WebSocket clients to herald gateways, publishes through Redis,\n"
"and measures connections, delivery latency, loss and duplicates.\n"
"\n"
"  --scenario S        connect | fanout | broadcast | churn | slow (connect)\n"
"  --target HOST:PORT  gateway address; repeat or comma-separate (required)\n"
"  --tls               wss instead of ws;  --tls-resume: reuse TLS sessions\n"
"  --clients N         connections to open (1000)\n"
"  --workers W         worker processes (ceil(N/15000)); each stays under\n"
"                      the descriptor limit\n"
"  --rate R            connects per second, total (2000)\n"
"  --max-pending P     handshakes in flight, total (1000)\n"
"  --source-ips A,B    local addresses to connect from, round-robin\n"
"                      (e.g. 127.0.0.2,127.0.0.3: ~28k ports each)\n"
"  --connect-timeout S a connect plus handshake must finish in S s (10)\n"
"  --ramp-timeout S    give up waiting for the ramp after S s (N/R*2+30)\n"
"  --streams S         streams the clients spread over (fanout: N/100)\n"
"  --rate-msgs R1,R2   publish rates in msgs/s, one step each (100)\n"
"  --duration S        hold time (connect, churn) or time per rate (10)\n"
"  --drain S           wait after each step before counting loss (2)\n"
"  --settle S          wait between the ramp and the first publish (1)\n"
"  --payload B         payload bytes (128; at least the 68-byte header)\n"
"  --slow-pct P        share of clients that never read (slow: 10)\n"
"  --churn-rate R      closes+reopens per second (churn: N/10)\n"
"  --until-fail        stop stepping after a step with loss or p99 over\n"
"                      --max-p99-ms (100)\n"
"  --redis HOST:PORT   Redis to publish through (127.0.0.1:6379)\n"
"  --redis-prefix P    channel prefix (herald)\n"
"  --pipeline N        PUBLISH commands per pipelined batch, at most (256)\n"
"  --stream-prefix P   stream names P.0, P.1, ... (ld)\n"
"  --format F          json | protobuf (json)\n"
"  --auth A            none (user=ID) | jwt (token=, secret from\n"
"                      --jwt-secret-file F or HERALD_JWT_SECRET)\n"
"  --out FILE          write the JSON result there instead of stdout\n"
"  --ready-file FILE   create FILE when the ramp is done (for scripts that\n"
"                      measure the gateways while the clients are held)\n"
"  --batch N           a worker sleeps until N completions or --batch-us\n"
"                      have passed (32); 1: woken by every arriving message,\n"
"                      a wake-up the kernel charges to the sender's core on\n"
"                      loopback\n"
"  --batch-us U        the longest such sleep, microseconds (200); after a\n"
"                      sleep that ends with nothing, an idle worker sleeps\n"
"                      until the next completion\n"
"  --ack-on-read       clients acknowledge data when they read it (delayed\n"
"                      ACK mode, then TCP_QUICKACK after each read, sent as\n"
"                      an io_uring socket command on Linux 6.7 and later)\n"
"                      instead of at once from the kernel's receive path,\n"
"                      which on loopback runs on the sender's core\n"
"  --no-fixed-files    keep the client sockets in the descriptor table (by\n"
"                      default, on Linux 6.13 and later, they live in each\n"
"                      worker's io_uring file table; clients of the slow\n"
"                      scenario keep descriptors either way)\n"
"  --timeline-ms MS    the JSON timeline's interval, 100..60000 (1000): each\n"
"                      point has the p99 of the messages received in it;\n"
"                      100 shows latency spikes a second's p99 blurs\n"
"  --quiet             no progress line\n"
"  --help\n"
"A progress line goes to stderr every second; the JSON result to stdout.\n"
"Exit: 0 done, 1 the run failed (no connection, bad target), 2 bad flag.\n",
	      out);
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static int add_target(struct ld_opts *o, const char *s, char *err, size_t cap)
{
	struct ld_target *t;

	if (o->ntargets == LD_MAX_TARGETS)
		return cm_flag_fail(err, cap, "too many --target (max %d)", LD_MAX_TARGETS);
	t = &o->targets[o->ntargets];
	if (cm_parse_hostport(s, t->host, sizeof(t->host), &t->port) < 0 || t->port == 0)
		return cm_flag_fail(err, cap, "bad --target '%s': want HOST:PORT", s);
	if (cm_sockaddr(t->host, t->port, &t->ss, &t->sslen) < 0)
		return cm_flag_fail(err, cap, "bad --target '%s': host must be an IP address or localhost", s);
	{
		char host[256], hp[sizeof(t->hostport)];
		memcpy(host, t->host, sizeof(host));
		snprintf(hp, sizeof(hp), strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, t->port);
		memcpy(t->hostport, hp, sizeof(hp));
	}
	o->ntargets++;
	return 0;
}

static int add_source(struct ld_opts *o, const char *s, char *err, size_t cap)
{
	socklen_t len;

	if (o->nsources == LD_MAX_SOURCES)
		return cm_flag_fail(err, cap, "too many --source-ips (max %d)", LD_MAX_SOURCES);
	if (cm_sockaddr(s, 0, &o->sources[o->nsources], &len) < 0)
		return cm_flag_fail(err, cap, "bad --source-ips address '%s'", s);
	o->nsources++;
	return 0;
}

/* Calls fn for each element of a comma-separated list. */
static int each_item(const char *list, int (*fn)(struct ld_opts *, const char *, char *, size_t),
		     struct ld_opts *o, char *err, size_t cap)
{
	char *dup = strdup(list), *save = NULL, *tok;
	int ret = 0;

	if (!dup)
		abort();
	for (tok = strtok_r(dup, ",", &save); tok && !ret; tok = strtok_r(NULL, ",", &save))
		ret = fn(o, tok, err, cap);
	free(dup);
	return ret;
}

static int add_rate(struct ld_opts *o, const char *s, char *err, size_t cap)
{
	if (o->nrates == LD_MAX_STEPS)
		return cm_flag_fail(err, cap, "too many --rate-msgs steps (max %d)", LD_MAX_STEPS);
	if (parse_double(s, 0.001, 10e6, &o->rates[o->nrates]) < 0)
		return cm_flag_fail(err, cap, "bad --rate-msgs value '%s'", s);
	o->nrates++;
	return 0;
}

static int read_secret(struct ld_opts *o, const char *path, char *err, size_t cap)
{
	char why[256];
	size_t n;
	uint8_t *p = cm_read_secret_file(path, &n, why, sizeof(why));

	if (!p)
		return cm_flag_fail(err, cap, "--jwt-secret-file %s", why);
	free(o->jwt_secret);
	o->jwt_secret = (char *)p;
	o->jwt_secret_len = n;
	return 0;
}

enum {
	O_SCENARIO = 256, O_TARGET, O_TLS, O_TLS_RESUME, O_CLIENTS, O_WORKERS, O_RATE,
	O_MAX_PENDING, O_SOURCES, O_CONNECT_TIMEOUT, O_RAMP_TIMEOUT, O_STREAMS, O_RATE_MSGS,
	O_DURATION, O_DRAIN, O_SETTLE, O_PAYLOAD, O_SLOW_PCT, O_CHURN_RATE, O_UNTIL_FAIL,
	O_MAX_P99, O_REDIS, O_REDIS_PREFIX, O_STREAM_PREFIX, O_FORMAT, O_AUTH, O_JWT_FILE,
	O_OUT, O_QUIET, O_HELP, O_PIPELINE, O_USER_PREFIX, O_READY, O_BATCH, O_BATCH_US,
	O_ACK_ON_READ, O_TIMELINE_MS, O_NO_FIXED,
};

static const struct option longopts[] = {
	{ "scenario", required_argument, NULL, O_SCENARIO },
	{ "target", required_argument, NULL, O_TARGET },
	{ "tls", no_argument, NULL, O_TLS },
	{ "tls-resume", no_argument, NULL, O_TLS_RESUME },
	{ "clients", required_argument, NULL, O_CLIENTS },
	{ "workers", required_argument, NULL, O_WORKERS },
	{ "rate", required_argument, NULL, O_RATE },
	{ "max-pending", required_argument, NULL, O_MAX_PENDING },
	{ "source-ips", required_argument, NULL, O_SOURCES },
	{ "connect-timeout", required_argument, NULL, O_CONNECT_TIMEOUT },
	{ "ramp-timeout", required_argument, NULL, O_RAMP_TIMEOUT },
	{ "streams", required_argument, NULL, O_STREAMS },
	{ "rate-msgs", required_argument, NULL, O_RATE_MSGS },
	{ "duration", required_argument, NULL, O_DURATION },
	{ "drain", required_argument, NULL, O_DRAIN },
	{ "settle", required_argument, NULL, O_SETTLE },
	{ "payload", required_argument, NULL, O_PAYLOAD },
	{ "slow-pct", required_argument, NULL, O_SLOW_PCT },
	{ "churn-rate", required_argument, NULL, O_CHURN_RATE },
	{ "until-fail", no_argument, NULL, O_UNTIL_FAIL },
	{ "max-p99-ms", required_argument, NULL, O_MAX_P99 },
	{ "redis", required_argument, NULL, O_REDIS },
	{ "redis-prefix", required_argument, NULL, O_REDIS_PREFIX },
	{ "stream-prefix", required_argument, NULL, O_STREAM_PREFIX },
	{ "user-prefix", required_argument, NULL, O_USER_PREFIX },
	{ "format", required_argument, NULL, O_FORMAT },
	{ "auth", required_argument, NULL, O_AUTH },
	{ "jwt-secret-file", required_argument, NULL, O_JWT_FILE },
	{ "out", required_argument, NULL, O_OUT },
	{ "quiet", no_argument, NULL, O_QUIET },
	{ "ready-file", required_argument, NULL, O_READY },
	{ "pipeline", required_argument, NULL, O_PIPELINE },
	{ "batch", required_argument, NULL, O_BATCH },
	{ "batch-us", required_argument, NULL, O_BATCH_US },
	{ "ack-on-read", no_argument, NULL, O_ACK_ON_READ },
	{ "no-fixed-files", no_argument, NULL, O_NO_FIXED },
	{ "timeline-ms", required_argument, NULL, O_TIMELINE_MS },
	{ "help", no_argument, NULL, O_HELP },
	{ NULL, 0, NULL, 0 },
};

static bool name_ok(const char *s)
{
	if (!*s || strlen(s) > 40)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == ':' || *s == '.' || *s == '-'))
			return false;
	return true;
}

int ld_opts_parse(struct ld_opts *o, int argc, char **argv, char *err, size_t cap)
{
	bool have_streams = false, have_slow = false, have_churn = false, have_ramp = false;
	struct rlimit rl;
	int c, ret;
	const char *env;

	memset(o, 0, sizeof(*o));
	o->clients = 1000;
	o->rate = 2000;
	o->max_pending = 1000;
	o->duration = 10;
	o->drain = 2;
	o->settle = 1;
	o->payload = 128;
	o->connect_timeout = 10;
	o->max_p99_ms = 100;
	o->pipeline = 256;
	o->batch = 32;
	o->batch_us = 200;
	o->fixed_files = true;
	o->timeline_ms = 1000;
	snprintf(o->redis_host, sizeof(o->redis_host), "127.0.0.1");
	o->redis_port = 6379;
	snprintf(o->redis_prefix, sizeof(o->redis_prefix), "herald");
	snprintf(o->stream_prefix, sizeof(o->stream_prefix), "ld");
	snprintf(o->user_prefix, sizeof(o->user_prefix), "ld");

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		const char *a = optarg;
		switch (c) {
		case O_SCENARIO: {
			int i = cm_parse_choice(a, scenario_names, LD_ARRAY_LEN(scenario_names));
			if (i < 0)
				return cm_flag_fail(err, cap, "bad --scenario '%s': want connect, fanout, broadcast, churn or slow", a);
			o->scenario = (enum ld_scenario)i;
			break;
		}
		case O_TARGET:
			if ((ret = each_item(a, add_target, o, err, cap)))
				return ret;
			break;
		case O_TLS: o->tls = true; break;
		case O_TLS_RESUME: o->tls = o->tls_resume = true; break;
		case O_CLIENTS:
			if (cm_parse_u32(a, 1, 4000000, &o->clients) < 0)
				return cm_flag_fail(err, cap, "bad --clients '%s' (1..4000000)", a);
			break;
		case O_WORKERS:
			if (cm_parse_u32(a, 1, 256, &o->workers) < 0)
				return cm_flag_fail(err, cap, "bad --workers '%s' (1..256)", a);
			break;
		case O_RATE:
			if (parse_double(a, 0.1, 10e6, &o->rate) < 0)
				return cm_flag_fail(err, cap, "bad --rate '%s'", a);
			break;
		case O_MAX_PENDING:
			if (cm_parse_u32(a, 1, 1000000, &o->max_pending) < 0)
				return cm_flag_fail(err, cap, "bad --max-pending '%s'", a);
			break;
		case O_SOURCES:
			if ((ret = each_item(a, add_source, o, err, cap)))
				return ret;
			break;
		case O_CONNECT_TIMEOUT:
			if (parse_double(a, 0.01, 3600, &o->connect_timeout) < 0)
				return cm_flag_fail(err, cap, "bad --connect-timeout '%s'", a);
			break;
		case O_RAMP_TIMEOUT:
			if (parse_double(a, 0.1, 86400, &o->ramp_timeout) < 0)
				return cm_flag_fail(err, cap, "bad --ramp-timeout '%s'", a);
			have_ramp = true;
			break;
		case O_STREAMS:
			if (cm_parse_u32(a, 1, LD_MAX_STREAMS, &o->streams) < 0)
				return cm_flag_fail(err, cap, "bad --streams '%s' (1..%d)", a, LD_MAX_STREAMS);
			have_streams = true;
			break;
		case O_RATE_MSGS:
			o->nrates = 0;
			if ((ret = each_item(a, add_rate, o, err, cap)))
				return ret;
			if (!o->nrates)
				return cm_flag_fail(err, cap, "empty --rate-msgs");
			break;
		case O_DURATION:
			if (parse_double(a, 0.1, 86400, &o->duration) < 0)
				return cm_flag_fail(err, cap, "bad --duration '%s'", a);
			break;
		case O_DRAIN:
			if (parse_double(a, 0, 600, &o->drain) < 0)
				return cm_flag_fail(err, cap, "bad --drain '%s'", a);
			break;
		case O_SETTLE:
			if (parse_double(a, 0, 600, &o->settle) < 0)
				return cm_flag_fail(err, cap, "bad --settle '%s'", a);
			break;
		case O_PAYLOAD:
			if (cm_parse_u32(a, 1, 1 << 20, &o->payload) < 0)
				return cm_flag_fail(err, cap, "bad --payload '%s' (1..1048576)", a);
			break;
		case O_SLOW_PCT:
			if (parse_double(a, 0, 100, &o->slow_pct) < 0)
				return cm_flag_fail(err, cap, "bad --slow-pct '%s' (0..100)", a);
			have_slow = true;
			break;
		case O_CHURN_RATE:
			if (parse_double(a, 0, 10e6, &o->churn_rate) < 0)
				return cm_flag_fail(err, cap, "bad --churn-rate '%s'", a);
			have_churn = true;
			break;
		case O_UNTIL_FAIL: o->until_fail = true; break;
		case O_MAX_P99:
			if (parse_double(a, 0.001, 1e7, &o->max_p99_ms) < 0)
				return cm_flag_fail(err, cap, "bad --max-p99-ms '%s'", a);
			break;
		case O_REDIS:
			if (cm_parse_hostport(a, o->redis_host, sizeof(o->redis_host), &o->redis_port) < 0 ||
			    o->redis_port == 0)
				return cm_flag_fail(err, cap, "bad --redis '%s': want HOST:PORT", a);
			break;
		case O_REDIS_PREFIX:
			if (!name_ok(a))
				return cm_flag_fail(err, cap, "bad --redis-prefix '%s'", a);
			snprintf(o->redis_prefix, sizeof(o->redis_prefix), "%s", a);
			break;
		case O_STREAM_PREFIX:
			if (!name_ok(a))
				return cm_flag_fail(err, cap, "bad --stream-prefix '%s': [A-Za-z0-9_:.-], at most 40", a);
			snprintf(o->stream_prefix, sizeof(o->stream_prefix), "%s", a);
			break;
		case O_USER_PREFIX:
			if (!name_ok(a))
				return cm_flag_fail(err, cap, "bad --user-prefix '%s'", a);
			snprintf(o->user_prefix, sizeof(o->user_prefix), "%s", a);
			break;
		case O_FORMAT:
			if (!strcmp(a, "json"))
				o->protobuf = false;
			else if (!strcmp(a, "protobuf"))
				o->protobuf = true;
			else
				return cm_flag_fail(err, cap, "bad --format '%s': want json or protobuf", a);
			break;
		case O_AUTH:
			if (!strcmp(a, "none"))
				o->jwt = false;
			else if (!strcmp(a, "jwt"))
				o->jwt = true;
			else
				return cm_flag_fail(err, cap, "bad --auth '%s': want none or jwt", a);
			break;
		case O_JWT_FILE:
			if ((ret = read_secret(o, a, err, cap)))
				return ret;
			break;
		case O_OUT:
			snprintf(o->out_path, sizeof(o->out_path), "%s", a);
			break;
		case O_QUIET: o->quiet = true; break;
		case O_READY:
			snprintf(o->ready_file, sizeof(o->ready_file), "%s", a);
			break;
		case O_PIPELINE:
			if (cm_parse_u32(a, 1, 100000, &o->pipeline) < 0)
				return cm_flag_fail(err, cap, "bad --pipeline '%s'", a);
			break;
		case O_BATCH:
			if (cm_parse_u32(a, 1, 4096, &o->batch) < 0)
				return cm_flag_fail(err, cap, "bad --batch '%s' (1..4096)", a);
			break;
		case O_BATCH_US:
			if (cm_parse_u32(a, 1, 100000, &o->batch_us) < 0)
				return cm_flag_fail(err, cap, "bad --batch-us '%s' (1..100000)", a);
			break;
		case O_ACK_ON_READ: o->ack_on_read = true; break;
		case O_NO_FIXED: o->fixed_files = false; break;
		case O_TIMELINE_MS:
			if (cm_parse_u32(a, 100, 60000, &o->timeline_ms) < 0)
				return cm_flag_fail(err, cap, "bad --timeline-ms '%s' (100..60000)", a);
			break;
		case O_HELP:
			return 1;
		default:
			if (optopt && optopt >= 256)
				return cm_flag_fail(err, cap, "option %s needs a value", argv[optind - 1]);
			return cm_flag_fail(err, cap, "unknown option '%s' (see --help)", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cm_flag_fail(err, cap, "unexpected argument '%s' (see --help)", argv[optind]);
	if (!o->ntargets)
		return cm_flag_fail(err, cap, "no --target given (HOST:PORT of a gateway)");

	if (o->jwt && !o->jwt_secret) {
		env = getenv("HERALD_JWT_SECRET");
		if (!env || !*env)
			return cm_flag_fail(err, cap, "--auth jwt needs --jwt-secret-file or HERALD_JWT_SECRET");
		o->jwt_secret_len = strlen(env);
		o->jwt_secret = strdup(env);
	}

	/* scenario defaults */
	o->publish = o->scenario == LD_SC_FANOUT || o->scenario == LD_SC_BROADCAST ||
		     o->scenario == LD_SC_SLOW || (o->scenario == LD_SC_CHURN && o->nrates);
	if (o->scenario == LD_SC_BROADCAST) {
		if (have_streams && o->streams != 1)
			return cm_flag_fail(err, cap, "--scenario broadcast uses one stream (drop --streams)");
		o->streams = 1;
	}
	if (!have_streams)
		o->streams = (o->scenario == LD_SC_FANOUT || o->scenario == LD_SC_SLOW) ?
			     (o->clients >= 200 ? o->clients / 100 : 1) : 1;
	o->subscribe = o->publish || have_streams;
	if (o->streams > o->clients)
		o->streams = o->clients;
	if (o->publish && !o->nrates) {
		o->rates[0] = 100;
		o->nrates = 1;
	}
	if (!o->publish && o->nrates && o->scenario == LD_SC_CONNECT)
		return cm_flag_fail(err, cap, "--rate-msgs needs a publishing scenario (fanout, broadcast, slow, churn)");
	if (o->scenario == LD_SC_SLOW && !have_slow)
		o->slow_pct = 10;
	if (have_slow && o->scenario != LD_SC_SLOW && o->slow_pct > 0 && !o->publish)
		return cm_flag_fail(err, cap, "--slow-pct needs a publishing scenario");
	if (o->scenario == LD_SC_CHURN && !have_churn)
		o->churn_rate = o->clients / 10.0 > 1 ? o->clients / 10.0 : 1;
	if (have_churn && o->scenario != LD_SC_CHURN)
		return cm_flag_fail(err, cap, "--churn-rate belongs to --scenario churn");
	if (o->payload < LD_PAYLOAD_MIN)
		o->payload = LD_PAYLOAD_MIN;

	if (!o->workers)
		o->workers = (o->clients + 14999) / 15000;
	if (o->workers > o->clients)
		o->workers = o->clients;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY) {
		unsigned per = (o->clients + o->workers - 1) / o->workers;
		if ((rlim_t)per + 64 > rl.rlim_max)
			return cm_flag_fail(err, cap,
				    "%u clients per worker exceed the descriptor limit (%lu): use --workers %lu or more",
				    per, (unsigned long)rl.rlim_max,
				    (unsigned long)((o->clients + rl.rlim_max - 65) / (rl.rlim_max - 64)));
	}
	if (!have_ramp)
		o->ramp_timeout = o->clients / o->rate * 2 + o->connect_timeout + 20;
	if (o->max_pending < o->workers)
		o->max_pending = o->workers;
	return 0;
}
