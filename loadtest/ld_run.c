#include "ld_run.h"

#include "cm_log.h"
#include "ld_hist.h"
#include "ld_payload.h"
#include "ld_pub.h"
#include "ld_shared.h"
#include "ld_worker.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* the timeline's points at most (a day at 1 s, 3.3 h at 100 ms) */
#define LD_TIMELINE_MAX 120000
/* how long the workers have to count a step once asked */
#define LD_COUNT_WAIT_S 5

static volatile int stop_flag;   /* SIGINT/SIGTERM: finish early, report */

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

struct ld_tl_point {
	double t;
	uint64_t open, pending, errors;
	double recv_per_s, p99_ms;
};

struct ld_parent {
	const struct ld_opts *o;
	struct ld_shared sh;
	pid_t *pids;
	bool *alive;
	unsigned nalive;
	bool worker_crashed;
	uint64_t t0;
	/* progress: the line every second, the timeline every --timeline-ms,
	 * each with the counts and the latencies it last saw */
	uint64_t last_line_ns, last_tl_ns;
	uint64_t line_recv, line_opened, tl_recv;
	struct ld_hist *line_lat, *tl_lat, *tmp_lat, *diff_lat;
	struct ld_tl_point *tl;
	unsigned ntl, tl_cap;
	uint64_t peak_open;
	const char *phase_name;
	double cur_rate;
};

struct ld_sum {
	uint64_t clients, attempts, open_now, pending, opened, closed, churned, resumed;
	uint64_t err[LD_E_MAX], http_status[6], http_last, close_code[LD_CLOSE_CODES + 1];
	uint64_t recv_msgs, recv_bytes, foreign, pings, nobufs, slow_total, slow_cut;
	uint64_t ack_ring, ack_call;
	uint64_t errors;
};

static void sum_workers(struct ld_parent *P, struct ld_sum *s)
{
	memset(s, 0, sizeof(*s));
	for (unsigned i = 0; i < P->o->workers; i++) {
		const struct ld_wstats *w = &P->sh.w[i];
		s->clients += w->clients;
		s->attempts += w->attempts;
		s->open_now += w->open_now;
		s->pending += w->pending;
		s->opened += w->opened;
		s->closed += w->closed;
		s->churned += w->churned;
		s->resumed += w->resumed;
		for (int e = 0; e < LD_E_MAX; e++)
			s->err[e] += w->err[e];
		for (int k = 0; k < 6; k++)
			s->http_status[k] += w->http_status[k];
		if (w->http_last)
			s->http_last = w->http_last;
		for (int k = 0; k <= LD_CLOSE_CODES; k++)
			s->close_code[k] += w->close_code[k];
		s->recv_msgs += w->recv_msgs;
		s->recv_bytes += w->recv_bytes;
		s->foreign += w->foreign;
		s->pings += w->pings;
		s->nobufs += w->nobufs;
		s->ack_ring += w->ack_ring;
		s->ack_call += w->ack_call;
		s->slow_total += w->slow_total;
		s->slow_cut += w->slow_cut;
	}
	for (int e = 0; e < LD_E_MAX; e++)
		s->errors += s->err[e];
}

static void merge_lat(struct ld_parent *P, struct ld_hist *h)
{
	ld_hist_init(h);
	for (unsigned i = 0; i < P->o->workers; i++)
		ld_hist_merge(h, &P->sh.w[i].lat);
}

static double secs(struct ld_parent *P)
{
	return (double)(ld_now_ns() - P->t0) / 1e9;
}

/* CPU ticks (user + system) a process used so far, 0 when unreadable. */
static uint64_t proc_ticks(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut = 0, st = 0;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (!(f = fopen(path, "r")))
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	/* after "pid (comm) ": state is field 3, utime 14, stime 15 */
	if (!(p = strrchr(buf, ')')))
		return 0;
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return 0;
	return ut + st;
}

/* CPU ticks of the whole load generator: the parent and its live workers. */
static uint64_t load_ticks(struct ld_parent *P)
{
	uint64_t t = proc_ticks(getpid());
	for (unsigned i = 0; i < P->o->workers; i++)
		if (P->alive[i])
			t += proc_ticks(P->pids[i]);
	return t;
}

/* herald-load's CPU during a step, % of one core, from the ticks of
 * load_ticks() at its start and end. A worker that died during the step
 * takes its ticks out of the end figure: never less than 0. */
static double cpu_pct(uint64_t ticks0, uint64_t ticks1, long hz, double wall)
{
	if (ticks1 <= ticks0 || hz <= 0 || wall <= 0)
		return 0;
	return 100.0 * (double)(ticks1 - ticks0) / (double)hz / wall;
}

/* Reaps workers that exited on their own. */
static void reap(struct ld_parent *P)
{
	for (unsigned i = 0; i < P->o->workers; i++) {
		int status;
		if (!P->alive[i])
			continue;
		if (waitpid(P->pids[i], &status, WNOHANG) == P->pids[i]) {
			P->alive[i] = false;
			P->nalive--;
			if (ld_load(&P->sh.ctl->phase) != LD_PH_STOP) {
				P->worker_crashed = true;
				if (WIFSIGNALED(status))
					cm_error("worker %u (pid %d) died of signal %d", i, (int)P->pids[i],
						 WTERMSIG(status));
				else
					cm_error("worker %u (pid %d) exited with %d", i, (int)P->pids[i],
						 WEXITSTATUS(status));
			}
		}
	}
}

static void err_summary(const struct ld_sum *s, char *out, size_t cap)
{
	size_t n = 0;

	out[0] = 0;
	for (int e = 0; e < LD_E_MAX; e++)
		if (s->err[e] && n < cap)
			n += (size_t)snprintf(out + n, cap - n, " %s=%llu", ld_err_names[e],
					      (unsigned long long)s->err[e]);
	if (!n)
		snprintf(out, cap, " none");
}

/* The p99 (ms) of the messages received since `last` was taken; last
 * moves on to now (tmp_lat). */
static double window_p99(struct ld_parent *P, struct ld_hist *last)
{
	ld_hist_diff(P->diff_lat, P->tmp_lat, last);
	*last = *P->tmp_lat;
	return (double)ld_hist_quantile(P->diff_lat, 0.99) / 1000.0;
}

/* A timeline point every --timeline-ms, a progress line every second. */
static void progress(void *arg)
{
	struct ld_parent *P = arg;
	uint64_t now = ld_now_ns();
	bool point = now - P->last_tl_ns >= (uint64_t)P->o->timeline_ms * 1000000ULL;
	bool line = now - P->last_line_ns >= 1000000000ULL;
	struct ld_sum s;
	char errs[512];

	if (!point && !line)
		return;
	reap(P);
	sum_workers(P, &s);
	merge_lat(P, P->tmp_lat);
	if (s.open_now > P->peak_open)
		P->peak_open = s.open_now;
	if (point) {
		double dt = (double)(now - P->last_tl_ns) / 1e9;
		double p99 = window_p99(P, P->tl_lat);

		P->last_tl_ns = now;
		if (P->ntl < P->tl_cap) {
			struct ld_tl_point *pt = &P->tl[P->ntl++];
			pt->t = secs(P);
			pt->open = s.open_now;
			pt->pending = s.pending;
			pt->errors = s.errors;
			pt->recv_per_s = (double)(s.recv_msgs - P->tl_recv) / dt;
			pt->p99_ms = p99;
		}
		P->tl_recv = s.recv_msgs;
	}
	if (line) {
		double dt = (double)(now - P->last_line_ns) / 1e9;
		double p99 = window_p99(P, P->line_lat);

		P->last_line_ns = now;
		if (!P->o->quiet) {
			err_summary(&s, errs, sizeof(errs));
			fprintf(stderr,
				"[%6.1fs] %-9s open %llu/%llu (+%.0f/s, %llu pending) | recv %.0f msg/s p99 %.2f ms",
				secs(P), P->phase_name, (unsigned long long)s.open_now,
				(unsigned long long)s.clients, (double)(s.opened - P->line_opened) / dt,
				(unsigned long long)s.pending, (double)(s.recv_msgs - P->line_recv) / dt, p99);
			if (P->cur_rate > 0)
				fprintf(stderr, " (pub %.0f/s)", P->cur_rate);
			fprintf(stderr, " | errors%s\n", errs);
		}
		P->line_recv = s.recv_msgs;
		P->line_opened = s.opened;
	}
}

/* Sleeps `seconds` in small slices, with progress; ends early on a signal. */
static void wait_for(struct ld_parent *P, double seconds)
{
	uint64_t end = ld_now_ns() + (uint64_t)(seconds * 1e9);

	while (!stop_flag && ld_now_ns() < end) {
		/* a tenth of the shortest timeline interval */
		struct timespec ts = { 0, 10 * 1000000L };
		nanosleep(&ts, NULL);
		progress(P);
	}
}

/* A plain TCP connect to every target (2 s each): a clear error up front
 * instead of N counted failures. */
static int probe_targets(const struct ld_opts *o)
{
	for (unsigned i = 0; i < o->ntargets; i++) {
		const struct ld_target *t = &o->targets[i];
		int fd = socket(t->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		struct pollfd pfd;
		int err = 0;
		socklen_t el = sizeof(err);

		if (fd < 0) {
			cm_error("socket: %s", strerror(errno));
			return -1;
		}
		if (connect(fd, (const struct sockaddr *)&t->ss, t->sslen) < 0 && errno != EINPROGRESS) {
			err = errno;
		} else {
			pfd.fd = fd;
			pfd.events = POLLOUT;
			if (poll(&pfd, 1, 2000) != 1)
				err = ETIMEDOUT;
			else
				getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
		}
		close(fd);
		if (err == ECONNREFUSED) {
			fprintf(stderr, "herald-load: target %s refused the connection (is a gateway listening there?)\n",
				t->hostport);
			return -1;
		}
		if (err) {
			fprintf(stderr, "herald-load: cannot connect to target %s: %s\n", t->hostport,
				strerror(err));
			return -1;
		}
	}
	return 0;
}

static void stop_workers(struct ld_parent *P)
{
	uint64_t deadline;

	ld_store(&P->sh.ctl->phase, LD_PH_STOP);
	deadline = ld_now_ns() + 10ULL * 1000000000ULL;
	while (P->nalive && ld_now_ns() < deadline) {
		struct timespec ts = { 0, 20 * 1000000L };
		reap(P);
		if (P->nalive)
			nanosleep(&ts, NULL);
	}
	for (unsigned i = 0; i < P->o->workers; i++) {
		if (!P->alive[i])
			continue;
		cm_warn("worker %u (pid %d) did not stop: killing it", i, (int)P->pids[i]);
		kill(P->pids[i], SIGKILL);
		waitpid(P->pids[i], NULL, 0);
		P->alive[i] = false;
		P->nalive--;
	}
}

/* The longest the run can take, every phase at its bound: the workers'
 * hard deadline, which only a parent that stopped driving them reaches.
 * A step is bounded by the publisher's worst case (Redis stalling), the
 * drain, the wait for the counts and a second for the rest of the step
 * (its CPU from /proc, its sums); 60 s cover reaping and the JSON. */
static double run_max_s(const struct ld_opts *o)
{
	double total = o->ramp_timeout + o->settle + o->duration + 60;

	if (o->publish)
		total += o->nrates * (ld_pub_step_max_s(o->duration) + o->drain + LD_COUNT_WAIT_S + 1);
	return total;
}

/* How the ramp went. */
struct ld_ramp {
	double s;                  /* how long it ran */
	uint64_t opened;           /* connections opened by its end */
	bool timed_out;            /* --ramp-timeout ended it, clients untried or handshaking */
};

/* Connects per second of the ramp (0 when it did not run). */
static double ramp_rate(const struct ld_ramp *r)
{
	return r->s > 0 ? (double)r->opened / r->s : 0;
}

/* Runs the ramp: until every client was tried and none is still
 * handshaking, --ramp-timeout, a signal, or no worker left. Leaves the
 * workers' sums at its end in s. */
static void ramp(struct ld_parent *P, struct ld_sum *s, struct ld_ramp *r)
{
	uint64_t ramp_end = P->t0 + (uint64_t)(P->o->ramp_timeout * 1e9);

	for (;;) {
		struct timespec ts = { 0, 20 * 1000000L };
		sum_workers(P, s);
		if (s->attempts >= P->o->clients && s->pending == 0)
			break;
		if (stop_flag || !P->nalive)
			break;
		if (ld_now_ns() > ramp_end) {
			r->timed_out = true;
			break;
		}
		nanosleep(&ts, NULL);
		progress(P);
	}
	/* also when cut short: the rate is the one achieved (s is the sum
	 * the loop just took) */
	r->s = secs(P);
	r->opened = s->opened;
	if (r->timed_out)
		cm_warn("ramp did not finish within --ramp-timeout %g s: %llu of %u opened (%.0f/s)",
			P->o->ramp_timeout, (unsigned long long)r->opened, P->o->clients, ramp_rate(r));
}

/* Asks every worker to count step k and waits for them, at most
 * LD_COUNT_WAIT_S. Returns how many did not count it (dead, or too slow):
 * their clients are missing from the step's figures. */
static unsigned count_step(struct ld_parent *P, int k)
{
	uint64_t end = ld_now_ns() + LD_COUNT_WAIT_S * 1000000000ULL;

	ld_store(&P->sh.ctl->snap_req, k);
	for (;;) {
		unsigned missing = 0, waiting = 0;
		struct timespec ts = { 0, 5 * 1000000L };
		reap(P);
		for (unsigned i = 0; i < P->o->workers; i++) {
			if (ld_load(&P->sh.w[i].snap_done) >= k)
				continue;
			missing++;
			if (P->alive[i])
				waiting++;
		}
		if (!waiting || ld_now_ns() > end)
			return missing;
		nanosleep(&ts, NULL);
	}
}

/* The parent's own memory for `workers` workers (the timeline comes once
 * its length is known); parent_release frees it. */
static void parent_alloc(struct ld_parent *P, unsigned workers)
{
	P->line_lat = cm_xmalloc(sizeof(struct ld_hist));
	P->tl_lat = cm_xmalloc(sizeof(struct ld_hist));
	P->tmp_lat = cm_xmalloc(sizeof(struct ld_hist));
	P->diff_lat = cm_xmalloc(sizeof(struct ld_hist));
	ld_hist_init(P->line_lat);
	ld_hist_init(P->tl_lat);
	P->pids = cm_xcalloc(workers, sizeof(*P->pids));
	P->alive = cm_xcalloc(workers, sizeof(*P->alive));
}

/* Unmaps the shared memory and frees what the parent allocated (not P). */
static void parent_release(struct ld_parent *P)
{
	ld_shared_unmap(&P->sh);
	free(P->line_lat);
	free(P->tl_lat);
	free(P->tmp_lat);
	free(P->diff_lat);
	free(P->tl);
	free(P->pids);
	free(P->alive);
}

/* ---------- the JSON result ---------- */

static cJSON *hist_json(const struct ld_hist *h, double div)
{
	cJSON *j = cJSON_CreateObject();
	cJSON_AddNumberToObject(j, "count", (double)h->count);
	cJSON_AddNumberToObject(j, "p50", (double)ld_hist_quantile(h, 0.50) / div);
	cJSON_AddNumberToObject(j, "p90", (double)ld_hist_quantile(h, 0.90) / div);
	cJSON_AddNumberToObject(j, "p99", (double)ld_hist_quantile(h, 0.99) / div);
	cJSON_AddNumberToObject(j, "p999", (double)ld_hist_quantile(h, 0.999) / div);
	cJSON_AddNumberToObject(j, "max", (double)(h->count ? h->max : 0) / div);
	cJSON_AddNumberToObject(j, "mean", ld_hist_mean(h) / div);
	return j;
}

struct ld_step_out {
	double rate, seconds, publish_rate;
	uint64_t published, receivers;
	uint64_t clients, expected, received, all_received, dups, gaps, late, misrouted, dropped;
	double max_behind_ms;
	double load_cpu_pct;       /* herald-load's own CPU during the step, % of one core */
	unsigned workers_missing;  /* workers that did not count the step (dead, or too slow) */
	bool reached;              /* the publisher kept up with the rate (97%) */
	bool ok, done;
};

static void step_collect(struct ld_parent *P, int k, struct ld_step_out *so, struct ld_hist *lat)
{
	ld_hist_init(lat);
	so->clients = so->expected = so->received = so->dups = so->gaps = so->late = so->misrouted = 0;
	so->all_received = so->dropped = 0;
	for (unsigned i = 0; i < P->o->workers; i++) {
		const struct ld_step *s = &P->sh.w[i].steps[k];
		so->clients += s->clients;
		so->dropped += s->dropped;
		so->expected += s->expected;
		so->received += s->received;
		so->all_received += s->all_received;
		so->dups += s->dups;
		so->gaps += s->gaps;
		so->late += s->late;
		so->misrouted += s->misrouted;
		ld_hist_merge(lat, &s->lat);
	}
	/* A rate the publisher could not offer (Redis too slow) was not
	 * sustained: every planned message must have gone out within the
	 * step's time plus a little (one message interval and 0.5 s or 3%, so
	 * that one late message at a low rate does not count as too slow). */
	{
		double d = P->o->duration, slack = d * 0.03 > 0.5 ? d * 0.03 : 0.5;
		uint64_t planned = (uint64_t)(so->rate * d + 0.5);
		so->reached = so->rate > 0 && so->published >= planned &&
			      so->seconds <= d + slack + 1.0 / so->rate;
	}
	/* a worker that did not count the step leaves its clients out of it:
	 * the figures would look complete without them */
	if (P->o->scenario == LD_SC_CHURN)
		/* clients come and go within a step: a gap inside a connection's
		 * life is the loss we can see */
		so->ok = so->all_received > 0 && !so->gaps && !so->dups && !so->misrouted &&
			 !so->workers_missing && so->reached &&
			 (double)ld_hist_quantile(lat, 0.99) / 1000.0 <= P->o->max_p99_ms;
	else
		so->ok = so->expected > 0 && so->received >= so->expected && !so->dups &&
			 !so->misrouted && !so->dropped && !so->workers_missing && so->reached &&
			 (double)ld_hist_quantile(lat, 0.99) / 1000.0 <= P->o->max_p99_ms;
}

/* Deliveries per second of a step: those of the clients counted for the
 * whole step, or, when there were none (churn), of every client. */
static double step_deliveries_per_s(const struct ld_step_out *so)
{
	return so->seconds > 0 ?
		(double)(so->clients ? so->received : so->all_received) / so->seconds : 0;
}

static cJSON *step_json(const struct ld_step_out *so, const struct ld_hist *lat)
{
	cJSON *j = cJSON_CreateObject();
	uint64_t lost = so->expected > so->received ? so->expected - so->received : 0;

	cJSON_AddNumberToObject(j, "rate", so->rate);
	cJSON_AddNumberToObject(j, "seconds", so->seconds);
	cJSON_AddNumberToObject(j, "published", (double)so->published);
	cJSON_AddNumberToObject(j, "publish_rate", so->publish_rate);
	cJSON_AddNumberToObject(j, "publish_max_behind_ms", so->max_behind_ms);
	cJSON_AddNumberToObject(j, "load_cpu_pct", so->load_cpu_pct);
	cJSON_AddNumberToObject(j, "redis_receivers", (double)so->receivers);
	cJSON_AddNumberToObject(j, "clients", (double)so->clients);
	cJSON_AddNumberToObject(j, "expected", (double)so->expected);
	cJSON_AddNumberToObject(j, "received", (double)so->received);
	cJSON_AddNumberToObject(j, "received_all_clients", (double)so->all_received);
	cJSON_AddNumberToObject(j, "lost", (double)lost);
	cJSON_AddNumberToObject(j, "loss_pct", so->expected ? 100.0 * (double)lost / (double)so->expected : 0);
	cJSON_AddNumberToObject(j, "duplicates", (double)so->dups);
	cJSON_AddNumberToObject(j, "gaps", (double)so->gaps);
	cJSON_AddNumberToObject(j, "late", (double)so->late);
	cJSON_AddNumberToObject(j, "misrouted", (double)so->misrouted);
	cJSON_AddNumberToObject(j, "dropped_clients", (double)so->dropped);
	cJSON_AddNumberToObject(j, "workers_missing", so->workers_missing);
	cJSON_AddNumberToObject(j, "deliveries_per_s", step_deliveries_per_s(so));
	cJSON_AddItemToObject(j, "latency_ms", hist_json(lat, 1000.0));
	cJSON_AddBoolToObject(j, "rate_reached", so->reached);
	cJSON_AddBoolToObject(j, "ok", so->ok);
	return j;
}

static int write_result(const struct ld_opts *o, cJSON *root)
{
	char *text = cJSON_Print(root);
	FILE *f = stdout;
	int ret = 0;

	if (!text)
		abort();
	if (o->out_path[0]) {
		f = fopen(o->out_path, "w");
		if (!f) {
			cm_error("cannot write --out %s: %s", o->out_path, strerror(errno));
			free(text);
			return -1;
		}
	}
	fputs(text, f);
	fputc('\n', f);
	if (f != stdout)
		ret = fclose(f) == 0 ? 0 : -1;
	else
		fflush(f);
	free(text);
	return ret;
}

int ld_run(const struct ld_opts *o)
{
	struct ld_parent P0, *P = &P0;
	struct ld_pub *pub = NULL;
	struct ld_step_out *so = cm_xcalloc(LD_MAX_STEPS, sizeof(*so));
	struct ld_hist *lat = cm_xmalloc(sizeof(*lat));
	struct sigaction sa;
	char err[512];
	double hold_start = 0, hold_s = 0;
	struct ld_ramp rp = { .s = -1 };
	const char *fail_reason = NULL;
	int nsteps = 0, ret;
	struct ld_sum s;
	cJSON *root, *j, *arr;

	memset(P, 0, sizeof(*P));
	P->o = o;
	P->phase_name = "ramp";

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (probe_targets(o) < 0)
		return 1;
	if (o->publish && !(pub = ld_pub_connect(o, err, sizeof(err)))) {
		fprintf(stderr, "herald-load: %s\n", err);
		return 1;
	}
	if ((ret = ld_shared_map(&P->sh, o->workers, o->streams)) < 0) {
		fprintf(stderr, "herald-load: shared memory: %s\n", strerror(-ret));
		ld_pub_free(pub);
		return 1;
	}
	parent_alloc(P, o->workers);

	{
		double total = run_max_s(o);
		P->sh.ctl->settle_ns = (uint64_t)(o->settle * 1e9);
		P->sh.ctl->hard_deadline_ns = ld_now_ns() + (uint64_t)(total * 1e9);
		/* room for a point every --timeline-ms until the hard deadline */
		P->tl_cap = (unsigned)(total * 1000 / o->timeline_ms) + 16;
		if (P->tl_cap > LD_TIMELINE_MAX)
			P->tl_cap = LD_TIMELINE_MAX;
		P->tl = cm_xcalloc(P->tl_cap, sizeof(*P->tl));
	}

	P->t0 = ld_now_ns();
	P->last_line_ns = P->last_tl_ns = P->t0;
	fflush(stdout);
	fflush(stderr);
	for (unsigned i = 0; i < o->workers; i++) {
		pid_t parent = getpid(), pid = fork();
		if (pid < 0) {
			cm_error("fork: %s", strerror(errno));
			fail_reason = "fork failed";
			break;
		}
		if (pid == 0) {
			signal(SIGINT, SIG_IGN); /* the parent decides; it stops us by the shared phase or SIGKILL */
			signal(SIGTERM, SIG_DFL);
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				_exit(1);
			_exit(ld_worker_run(o, &P->sh, i));
		}
		P->pids[i] = pid;
		P->alive[i] = true;
		P->nalive++;
	}

	/* ramp: until every client was tried and none is still handshaking */
	if (!fail_reason) {
		ramp(P, &s, &rp);
		if (s.open_now > P->peak_open)
			P->peak_open = s.open_now;
		if (!s.opened) {
			char errs[512];
			err_summary(&s, errs, sizeof(errs));
			fprintf(stderr, "herald-load: no connection opened (errors:%s)", errs);
			if (s.http_last)
				fprintf(stderr, "; last HTTP status %llu", (unsigned long long)s.http_last);
			fputc('\n', stderr);
			fail_reason = "no connection opened";
		}
	}
	if (o->ready_file[0] && !fail_reason) {
		int fd = open(o->ready_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd >= 0) {
			dprintf(fd, "%llu\n", (unsigned long long)s.open_now);
			close(fd);
		}
	}

	/* hold / publish */
	if (!fail_reason && !stop_flag) {
		ld_store(&P->sh.ctl->phase, LD_PH_HOLD);
		hold_start = secs(P);
		if (o->scenario == LD_SC_CHURN)
			ld_store(&P->sh.ctl->churn_on, 1);
		if (!o->publish) {
			P->phase_name = o->scenario == LD_SC_CHURN ? "churn" : "hold";
			wait_for(P, o->duration);
		} else {
			P->phase_name = "settle";
			wait_for(P, o->settle);
			for (unsigned k = 0; k < o->nrates && !stop_flag; k++) {
				struct ld_pub_result pr;
				uint32_t *pubk = P->sh.published + (size_t)k * o->streams;
				char name[32], missing[64] = "";

				snprintf(name, sizeof(name), "step%u", k);
				P->phase_name = name;
				P->cur_rate = o->rates[k];
				uint64_t ticks0 = load_ticks(P);
				P->sh.ctl->step_start_ns[k] = ld_now_ns();
				ret = ld_pub_step(pub, o, k, o->rates[k], o->duration, pubk, progress, P,
						  &stop_flag, &pr);
				P->sh.ctl->step_end_ns[k] = ld_now_ns();
				so[k].load_cpu_pct = cpu_pct(ticks0, load_ticks(P), sysconf(_SC_CLK_TCK),
							     (double)(P->sh.ctl->step_end_ns[k] -
								      P->sh.ctl->step_start_ns[k]) / 1e9);
				P->cur_rate = 0;
				so[k].rate = o->rates[k];
				so[k].seconds = pr.seconds;
				so[k].published = pr.sent;
				so[k].receivers = pr.receivers;
				so[k].publish_rate = pr.seconds > 0 ? (double)pr.sent / pr.seconds : 0;
				so[k].max_behind_ms = pr.max_behind_ms;
				nsteps = (int)k + 1;
				if (ret < 0) {
					fail_reason = pr.unanswered ?
						"Redis did not answer a step's PUBLISH commands within 10 s" :
						"Redis failed while publishing";
					break;
				}
				if (pr.sent && !pr.receivers)
					cm_warn("step %u: no Redis subscriber got the messages (is the router running with --redis-prefix %s?)",
						k, o->redis_prefix);
				snprintf(name, sizeof(name), "drain%u", k);
				wait_for(P, o->drain);
				so[k].workers_missing = count_step(P, (int)k);
				if (so[k].workers_missing)
					cm_warn("step %u: %u of %u workers did not count it (dead, or no count within %d s)",
						k, so[k].workers_missing, o->workers, LD_COUNT_WAIT_S);
				step_collect(P, (int)k, &so[k], lat);
				so[k].done = true;
				if (so[k].workers_missing)
					snprintf(missing, sizeof(missing), ", %u of %u workers missing",
						 so[k].workers_missing, o->workers);
				if (!o->quiet)
					fprintf(stderr,
						"step %u: %.0f msgs/s -> %llu/%llu delivered, lost %llu, dups %llu, p50 %.2f p99 %.2f p999 %.2f ms, load cpu %.0f%%%s%s\n",
						k, so[k].rate, (unsigned long long)so[k].received,
						(unsigned long long)so[k].expected,
						(unsigned long long)(so[k].expected > so[k].received ?
								     so[k].expected - so[k].received : 0),
						(unsigned long long)so[k].dups,
						(double)ld_hist_quantile(lat, 0.5) / 1000,
						(double)ld_hist_quantile(lat, 0.99) / 1000,
						(double)ld_hist_quantile(lat, 0.999) / 1000,
						so[k].load_cpu_pct,
						missing,
						so[k].ok ? "" : "  (FAILED)");
				if (o->until_fail && !so[k].ok)
					break;
			}
		}
		hold_s = secs(P) - hold_start;
		ld_store(&P->sh.ctl->churn_on, 0);
	}

	sum_workers(P, &s);
	if (s.open_now > P->peak_open)
		P->peak_open = s.open_now;
	stop_workers(P);
	sum_workers(P, &s); /* slow_cut is counted on the way out */

	/* result */
	root = cJSON_CreateObject();
	cJSON_AddStringToObject(root, "scenario", ld_scenario_name(o->scenario));
	cJSON_AddBoolToObject(root, "tls", o->tls);
	cJSON_AddBoolToObject(root, "tls_resume", o->tls_resume);
	cJSON_AddStringToObject(root, "format", o->protobuf ? "protobuf" : "json");
	cJSON_AddNumberToObject(root, "clients", o->clients);
	cJSON_AddNumberToObject(root, "workers", o->workers);
	cJSON_AddNumberToObject(root, "streams", o->subscribe ? o->streams : 0);
	cJSON_AddNumberToObject(root, "payload", o->payload);
	arr = cJSON_AddArrayToObject(root, "targets");
	for (unsigned i = 0; i < o->ntargets; i++)
		cJSON_AddItemToArray(arr, cJSON_CreateString(o->targets[i].hostport));
	cJSON_AddNumberToObject(root, "elapsed_s", secs(P));

	j = cJSON_AddObjectToObject(root, "connect");
	cJSON_AddNumberToObject(j, "attempts", (double)s.attempts);
	cJSON_AddNumberToObject(j, "opened", (double)s.opened);
	cJSON_AddNumberToObject(j, "peak_open", (double)P->peak_open);
	cJSON_AddNumberToObject(j, "open_at_end", (double)s.open_now);
	cJSON_AddNumberToObject(j, "ramp_s", rp.s);
	cJSON_AddBoolToObject(j, "ramp_timed_out", rp.timed_out);
	cJSON_AddNumberToObject(j, "opened_in_ramp", (double)rp.opened);
	cJSON_AddNumberToObject(j, "connects_per_s", ramp_rate(&rp));
	cJSON_AddNumberToObject(j, "hold_s", hold_s);
	cJSON_AddNumberToObject(j, "tls_resumed", (double)s.resumed);
	{
		struct ld_hist *hs = cm_xmalloc(sizeof(*hs));
		ld_hist_init(hs);
		for (unsigned i = 0; i < o->workers; i++)
			ld_hist_merge(hs, &P->sh.w[i].hs);
		cJSON_AddItemToObject(j, "handshake_ms", hist_json(hs, 1000.0));
		free(hs);
	}
	j = cJSON_AddObjectToObject(root, "errors");
	for (int e = 0; e < LD_E_MAX; e++)
		cJSON_AddNumberToObject(j, ld_err_names[e], (double)s.err[e]);
	cJSON_AddNumberToObject(j, "total", (double)s.errors);
	j = cJSON_AddObjectToObject(root, "http_status");
	{
		static const char *cls[6] = { "1xx", "2xx", "3xx", "4xx", "5xx", "bad" };
		for (int k = 0; k < 6; k++)
			if (s.http_status[k])
				cJSON_AddNumberToObject(j, cls[k], (double)s.http_status[k]);
		if (s.http_last)
			cJSON_AddNumberToObject(j, "last", (double)s.http_last);
	}
	j = cJSON_AddObjectToObject(root, "close_codes");
	for (int k = 0; k <= LD_CLOSE_CODES; k++) {
		char name[16];
		if (!s.close_code[k])
			continue;
		if (k < LD_CLOSE_CODES)
			snprintf(name, sizeof(name), "%d", 1000 + k);
		else
			snprintf(name, sizeof(name), "other");
		cJSON_AddNumberToObject(j, name, (double)s.close_code[k]);
	}
	j = cJSON_AddObjectToObject(root, "recv");
	cJSON_AddNumberToObject(j, "messages", (double)s.recv_msgs);
	cJSON_AddNumberToObject(j, "bytes", (double)s.recv_bytes);
	cJSON_AddNumberToObject(j, "foreign", (double)s.foreign);
	cJSON_AddNumberToObject(j, "pings", (double)s.pings);
	cJSON_AddNumberToObject(j, "buffer_ring_empty", (double)s.nobufs);
	merge_lat(P, lat);
	cJSON_AddItemToObject(j, "latency_ms", hist_json(lat, 1000.0));
	if (o->ack_on_read) {
		/* which way the ACKs went: a kernel before 6.7 has no socket commands */
		j = cJSON_AddObjectToObject(root, "ack_flushes");
		cJSON_AddNumberToObject(j, "io_uring", (double)s.ack_ring);
		cJSON_AddNumberToObject(j, "setsockopt", (double)s.ack_call);
	}
	if (o->slow_pct > 0) {
		j = cJSON_AddObjectToObject(root, "slow");
		cJSON_AddNumberToObject(j, "clients", (double)s.slow_total);
		cJSON_AddNumberToObject(j, "cut_by_server", (double)s.slow_cut);
	}
	if (o->scenario == LD_SC_CHURN) {
		j = cJSON_AddObjectToObject(root, "churn");
		cJSON_AddNumberToObject(j, "closed", (double)s.churned);
		cJSON_AddNumberToObject(j, "per_s", hold_s > 0 ? (double)s.churned / hold_s : 0);
	}
	if (o->publish) {
		int best = -1;
		arr = cJSON_AddArrayToObject(root, "steps");
		for (int k = 0; k < nsteps; k++) {
			if (!so[k].done)
				continue;
			step_collect(P, k, &so[k], lat); /* late arrivals included in the histogram */
			cJSON_AddItemToArray(arr, step_json(&so[k], lat));
			if (so[k].ok && (best < 0 || so[k].rate > so[best].rate))
				best = k;
		}
		if (best >= 0) {
			j = cJSON_AddObjectToObject(root, "best_ok_step");
			step_collect(P, best, &so[best], lat);
			cJSON_AddNumberToObject(j, "rate", so[best].rate);
			cJSON_AddNumberToObject(j, "publish_rate", so[best].publish_rate);
			cJSON_AddNumberToObject(j, "deliveries_per_s", step_deliveries_per_s(&so[best]));
			cJSON_AddNumberToObject(j, "p99_ms", (double)ld_hist_quantile(lat, 0.99) / 1000);
		} else {
			cJSON_AddNullToObject(root, "best_ok_step");
		}
	}
	cJSON_AddNumberToObject(root, "timeline_ms", o->timeline_ms);
	arr = cJSON_AddArrayToObject(root, "timeline");
	for (unsigned i = 0; i < P->ntl; i++) {
		cJSON *pt = cJSON_CreateObject();
		cJSON_AddNumberToObject(pt, "t", (double)(int64_t)(P->tl[i].t * 1000) / 1000);
		cJSON_AddNumberToObject(pt, "open", (double)P->tl[i].open);
		cJSON_AddNumberToObject(pt, "pending", (double)P->tl[i].pending);
		cJSON_AddNumberToObject(pt, "errors", (double)P->tl[i].errors);
		cJSON_AddNumberToObject(pt, "recv_per_s", (double)(int64_t)P->tl[i].recv_per_s);
		cJSON_AddNumberToObject(pt, "p99_ms", P->tl[i].p99_ms);
		cJSON_AddItemToArray(arr, pt);
	}
	if (P->worker_crashed && !fail_reason)
		fail_reason = "a worker process died";
	cJSON_AddBoolToObject(root, "interrupted", stop_flag != 0);
	if (fail_reason)
		cJSON_AddStringToObject(root, "error", fail_reason);
	else
		cJSON_AddNullToObject(root, "error");
	ret = write_result(o, root) < 0 || fail_reason ? 1 : 0;
	if (!o->quiet) {
		char errs[512];
		err_summary(&s, errs, sizeof(errs));
		fprintf(stderr, "herald-load: %s: opened %llu of %llu (peak %llu open) in %.1f s, errors:%s%s%s\n",
			ld_scenario_name(o->scenario), (unsigned long long)s.opened,
			(unsigned long long)o->clients, (unsigned long long)P->peak_open, secs(P), errs,
			o->out_path[0] ? "; result in " : "", o->out_path);
	}

	cJSON_Delete(root);
	ld_pub_free(pub);
	parent_release(P);
	free(so);
	free(lat);
	return ret;
}
