/* herald-ceiling — what one core can send over loopback, without herald.
 *
 * The issue's yardstick: "a bare io_uring loop that only sends a 134-byte
 * frame to 9000 loopback connections". This program is that loop, so the
 * benchmark suite can measure it on the machine and in the run where it
 * measures herald, and report herald's fan-out as a share of it.
 *
 * The parent listens on 127.0.0.1, forks a receiver that opens --conns
 * connections from the --source-ips and reads them all (multishot receive
 * into a provided buffer ring, waking for 32 completions or 200 us, as
 * herald-load does), accepts them, then keeps --inflight sends of one
 * WebSocket text frame in flight, round-robin over the connections, for
 * --seconds after a one-second warm-up, and counts the completed ones.
 * Nothing else runs in it: no receive armed on the sending side, no
 * per-connection state, no message to route. The result goes to stdout (or
 * --out) as one JSON object. Every wait is bounded; the receiver is stopped
 * by PID. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <stdbool.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cm_bufring.h"
#include "cm_flags.h"
#include "cm_net.h"

#define MAX_SOURCES 64
#define RECV_BUFS 4096
#define RECV_BUFSZ 4096
#define BGID 1

struct opts {
	unsigned conns, frame, inflight;
	unsigned rates[32];     /* sends per second, total, one step each */
	unsigned nrates;        /* 0: one step, as fast as it can */
	double seconds;
	int send_cpu, recv_cpu;
	struct in_addr sources[MAX_SOURCES];
	unsigned nsources;
	const char *out;
	bool ack_on_read;       /* receiver: delayed ACKs, flushed after each read */
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "herald-ceiling: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void pin(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		die("sched_setaffinity");
}

static void usage(FILE *f)
{
	fputs("usage: herald-ceiling [options]\n"
	      "Sends one WebSocket frame round-robin to many loopback connections from\n"
	      "one io_uring loop and reports the sends per second: the ceiling herald's\n"
	      "fan-out is compared with.\n"
	      "  --conns N         connections (9000; at most the descriptor limit - 64)\n"
	      "  --frame B         frame bytes, 4-byte header included (134)\n"
	      "  --seconds S       measured time after a 1 s warm-up (5)\n"
	      "  --inflight K      sends kept in flight (1024)\n"
	      "  --rate R1,R2      paced steps of R frames per second in all (one --seconds\n"
	      "                    step each), sent in 1-ms batches, instead of as many\n"
	      "                    as it can: each connection then gets one every\n"
	      "                    conns/R s; a step reports what it sent and how busy\n"
	      "                    the sending core was (busy_pct, with --send-cpu)\n"
	      "  --source-ips A,B  receiver addresses, round-robin (127.0.0.2-5)\n"
	      "  --send-cpu C      pin the sender to core C (not pinned)\n"
	      "  --recv-cpu C      pin the receiver to core C (not pinned)\n"
	      "  --ack-on-read     the receiver acknowledges when it reads, from its own\n"
	      "                    core, as herald-load --ack-on-read does\n"
	      "  --out FILE        write the JSON result there instead of stdout\n",
	      f);
}

static int parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
	uint64_t v;

	if (cm_parse_uint(s, lo, hi, &v))
		return -1;
	*out = (unsigned)v;
	return 0;
}

/* One issuer, task work run only when it waits (as herald-load's workers),
 * falling back to a plain ring on an older kernel. */
static void ring_init(struct io_uring *ring, unsigned cq_entries)
{
	struct io_uring_params p;

	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
	p.cq_entries = cq_entries;
	if (io_uring_queue_init_params(4096, ring, &p) == 0)
		return;
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = cq_entries;
	if (io_uring_queue_init_params(4096, ring, &p) < 0)
		die("io_uring_queue_init");
}

static int parse_sources(struct opts *o, const char *s)
{
	char buf[1024], *save = NULL, *tok;

	snprintf(buf, sizeof(buf), "%s", s);
	o->nsources = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (o->nsources == MAX_SOURCES || inet_pton(AF_INET, tok, &o->sources[o->nsources]) != 1)
			return -1;
		o->nsources++;
	}
	return o->nsources ? 0 : -1;
}

static void parse(struct opts *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "conns", required_argument, NULL, 'n' },
		{ "frame", required_argument, NULL, 'f' },
		{ "seconds", required_argument, NULL, 's' },
		{ "inflight", required_argument, NULL, 'k' },
		{ "rate", required_argument, NULL, 'r' },
		{ "source-ips", required_argument, NULL, 'i' },
		{ "send-cpu", required_argument, NULL, 'S' },
		{ "recv-cpu", required_argument, NULL, 'R' },
		{ "out", required_argument, NULL, 'o' },
		{ "ack-on-read", no_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct rlimit rl;
	unsigned u;
	int c;

	memset(o, 0, sizeof(*o));
	o->conns = 9000;
	o->frame = 134;
	o->seconds = 5;
	o->inflight = 1024;
	o->send_cpu = o->recv_cpu = -1;
	parse_sources(o, "127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5");
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (parse_uint(optarg, 1, 1000000, &o->conns) < 0)
				goto bad;
			break;
		case 'f':
			if (parse_uint(optarg, 4, 65535 + 4, &o->frame) < 0)
				goto bad;
			break;
		case 's':
			if (parse_uint(optarg, 1, 600, &u) < 0)
				goto bad;
			o->seconds = u;
			break;
		case 'r': {
			char buf[512], *save = NULL, *tok;
			snprintf(buf, sizeof(buf), "%s", optarg);
			o->nrates = 0;
			for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
				if (o->nrates == 32 || parse_uint(tok, 1, 10000000, &o->rates[o->nrates]) < 0)
					goto bad;
				o->nrates++;
			}
			if (!o->nrates)
				goto bad;
			break;
		}
		case 'k':
			if (parse_uint(optarg, 1, 4096, &o->inflight) < 0)
				goto bad;
			break;
		case 'i':
			if (parse_sources(o, optarg) < 0)
				goto bad;
			break;
		case 'S':
		case 'R':
			if (parse_uint(optarg, 0, CPU_SETSIZE - 1, &u) < 0)
				goto bad;
			*(c == 'S' ? &o->send_cpu : &o->recv_cpu) = (int)u;
			break;
		case 'o':
			o->out = optarg;
			break;
		case 'a':
			o->ack_on_read = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
		bad:
			fprintf(stderr, "herald-ceiling: bad or unknown option '%s'\n", argv[optind - 1]);
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "herald-ceiling: unexpected argument '%s'\n", argv[optind]);
		exit(2);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    (rlim_t)o->conns + 64 > rl.rlim_cur) {
		fprintf(stderr, "herald-ceiling: --conns %u needs %u descriptors; the limit is %llu\n",
			o->conns, o->conns + 64, (unsigned long long)rl.rlim_cur);
		exit(2);
	}
}

/* ---------- the receiver (child) ---------- */

static void arm_recv(struct io_uring *ring, int fd, unsigned idx)
{
	struct io_uring_sqe *sqe;

	while (!(sqe = io_uring_get_sqe(ring)))
		io_uring_submit(ring);
	io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BGID;
	io_uring_sqe_set_data64(sqe, idx);
}

/* --ack-on-read's flushes (cm_ack_flush): only a failed one completes */
#define ACK_UD UINT64_MAX

/* Connects, says so on `ready`, reads until every connection is closed or
 * the deadline passes, then writes the bytes it read to `ready`. */
static int receiver(const struct opts *o, int port, int ready, double deadline)
{
	struct io_uring ring;
	struct cm_bufring rb;
	struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 200000 };
	uint64_t bytes = 0;
	unsigned open_conns;
	struct cm_ack_flusher ack;
	int *fds = calloc(o->conns, sizeof(int));

	pin(o->recv_cpu);
	if (!fds)
		die("out of memory");
	for (unsigned i = 0; i < o->conns; i++) {
		struct sockaddr_in src = { .sin_family = AF_INET, .sin_addr = o->sources[i % o->nsources] };
		struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
		dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fds[i] < 0)
			die("socket");
		if (o->ack_on_read)
			cm_ack_hold(fds[i]);
		if (bind(fds[i], (struct sockaddr *)&src, sizeof(src)) < 0)
			die("bind to a source address");
		if (connect(fds[i], (struct sockaddr *)&dst, sizeof(dst)) < 0)
			die("connect");
	}
	if (write(ready, "c", 1) != 1)
		die("write to parent");

	ring_init(&ring, 65536);
	cm_ack_flusher_init(&ack);
	if ((errno = -cm_bufring_init(&rb, &ring, BGID, RECV_BUFS, RECV_BUFSZ)))
		die("provided buffer ring");
	for (unsigned i = 0; i < o->conns; i++)
		arm_recv(&ring, fds[i], i);
	io_uring_submit(&ring);

	open_conns = o->conns;
	while (open_conns && now_s() < deadline) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;

		io_uring_submit_and_wait_timeout(&ring, &cqe, 32, &ts, NULL);
		io_uring_for_each_cqe(&ring, head, cqe) {
			unsigned idx = (unsigned)cqe->user_data;
			n++;
			if (cqe->flags & IORING_CQE_F_BUFFER) {
				cm_bufring_recycle(&rb, cqe->flags >> IORING_CQE_BUFFER_SHIFT);
			}
			if (cqe->user_data == ACK_UD) {
				cm_ack_flush_failed(&ack, cqe->res);
				continue;
			}
			if (cqe->res > 0) {
				bytes += (uint64_t)cqe->res;
				if (o->ack_on_read)
					cm_ack_flush(&ack, io_uring_get_sqe(&ring), fds[idx], ACK_UD);
			}
			if (cqe->flags & IORING_CQE_F_MORE)
				continue;
			if (cqe->res > 0 || cqe->res == -ENOBUFS)
				arm_recv(&ring, fds[idx], idx);
			else
				open_conns--; /* EOF or error: the sender closed it */
		}
		io_uring_cq_advance(&ring, n);
	}
	if (write(ready, &bytes, sizeof(bytes)) != (ssize_t)sizeof(bytes))
		die("write to parent");
	return open_conns ? 1 : 0;
}

/* ---------- the sender (parent) ---------- */

/* Busy and total jiffies of one core from /proc/stat (idle and iowait are
 * not busy: a task waiting in io_uring_enter counts as iowait). */
static int cpu_ticks(int cpu, unsigned long long *busy, unsigned long long *total)
{
	char line[512], want[32];
	FILE *f = fopen("/proc/stat", "r");
	int found = -1;

	if (!f)
		return -1;
	snprintf(want, sizeof(want), "cpu%d ", cpu);
	while (fgets(line, sizeof(line), f)) {
		unsigned long long v[10] = { 0 };
		if (strncmp(line, want, strlen(want)))
			continue;
		if (sscanf(line + strlen(want), "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
			   &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]) < 8)
			break;
		*total = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
		*busy = *total - v[3] - v[4];
		found = 0;
		break;
	}
	fclose(f);
	return found;
}

static int read_timed(int fd, void *buf, size_t len, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	size_t got = 0;

	while (got < len) {
		ssize_t n;
		if (poll(&pfd, 1, timeout_ms) <= 0)
			return -1;
		n = read(fd, (char *)buf + got, len - got);
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

struct sender {
	struct io_uring ring;
	const struct opts *o;
	int *fds;
	const char *frame;
	unsigned inflight, next;
	uint64_t ok, errors;     /* completed sends, all steps */
};

struct step {
	unsigned rate;           /* 0: unpaced */
	double seconds, busy_pct;
	uint64_t sends;
};

static void reap(struct sender *s)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	io_uring_for_each_cqe(&s->ring, head, cqe) {
		n++;
		if (cqe->res == (int)s->o->frame)
			s->ok++;
		else
			s->errors++;
	}
	io_uring_cq_advance(&s->ring, n);
	s->inflight -= n;
}

/* One step: a one-second settle at the step's rate, then `seconds` measured. */
static void run_step(struct sender *s, unsigned rate, struct step *st)
{
	const struct opts *o = s->o;
	double t_start = now_s(), t_measure = 0, t_end = t_start + 1 + o->seconds;
	unsigned long long busy0 = 0, total0 = 0, busy1 = 0, total1 = 0;
	uint64_t issued = 0, ok_at_start = 0;
	bool measuring = false;

	st->rate = rate;
	st->busy_pct = -1;
	for (;;) {
		double t = now_s();

		if (!measuring && t >= t_start + 1) {
			measuring = true;
			t_measure = t;
			ok_at_start = s->ok;
			if (o->send_cpu >= 0)
				cpu_ticks(o->send_cpu, &busy0, &total0);
		}
		if (t >= t_end)
			break;
		while (s->inflight < o->inflight && (!rate || issued < (uint64_t)((t - t_start) * rate))) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
			if (!sqe)
				break;
			io_uring_prep_send(sqe, s->fds[s->next], s->frame, o->frame, MSG_NOSIGNAL);
			io_uring_sqe_set_data64(sqe, s->next);
			s->next = s->next + 1 == o->conns ? 0 : s->next + 1;
			s->inflight++;
			issued++;
		}
		if (rate) {
			/* paced: what is due goes out in one submit, then sleep to
			 * the next millisecond (batches like an event loop's) */
			double el = now_s() - t_start;
			double wait = (double)((uint64_t)(el * 1000) + 1) / 1000 - el;
			io_uring_submit(&s->ring);
			/* behind (the in-flight cap held sends back): no sleep */
			if (issued >= (uint64_t)(el * rate) && wait > 0) {
				struct timespec ts = { 0, (long)(wait * 1e9) };
				nanosleep(&ts, NULL);
			}
			io_uring_get_events(&s->ring);
		} else {
			io_uring_submit_and_wait(&s->ring, 1);
		}
		reap(s);
	}
	st->seconds = now_s() - t_measure;
	st->sends = s->ok - ok_at_start;
	if (o->send_cpu >= 0 && cpu_ticks(o->send_cpu, &busy1, &total1) == 0 && total1 > total0)
		st->busy_pct = 100.0 * (double)(busy1 - busy0) / (double)(total1 - total0);
}

int main(int argc, char **argv)
{
	struct opts o;
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	struct sender snd;
	struct step steps[32];
	unsigned nsteps;
	int lfd, one = 1, pipefd[2], status;
	int *fds;
	char *frame;
	pid_t child;
	uint64_t got = 0;
	double t_start;
	FILE *out = stdout;

	parse(&o, argc, argv);
	signal(SIGPIPE, SIG_IGN);
	fds = calloc(o.conns, sizeof(int));
	frame = malloc(o.frame);
	if (!fds || !frame)
		die("out of memory");
	/* a text frame: FIN+text, then the length (7-bit or 16-bit form) */
	memset(frame, 'x', o.frame);
	frame[0] = (char)0x81;
	if (o.frame - 2 < 126) {
		frame[1] = (char)(o.frame - 2);
	} else {
		frame[1] = 126;
		frame[2] = (char)((o.frame - 4) >> 8);
		frame[3] = (char)((o.frame - 4) & 0xff);
	}

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 4096) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen) < 0)
		die("listen on 127.0.0.1");
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		die("pipe");
	t_start = now_s();
	child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		close(pipefd[0]);
		close(lfd);
		_exit(receiver(&o, ntohs(a.sin_port), pipefd[1],
			       t_start + (o.nrates ? o.nrates : 1) * (1 + o.seconds) + 120));
	}
	close(pipefd[1]);
	pin(o.send_cpu);

	for (unsigned i = 0; i < o.conns; i++) {
		struct pollfd pfd = { .fd = lfd, .events = POLLIN };
		if (poll(&pfd, 1, 30000) <= 0) {
			fprintf(stderr, "herald-ceiling: only %u of %u connections arrived in 30 s\n", i, o.conns);
			kill(child, SIGKILL);
			waitpid(child, NULL, 0);
			return 1;
		}
		fds[i] = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fds[i] < 0)
			die("accept");
		setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	{
		char c;
		if (read_timed(pipefd[0], &c, 1, 30000) < 0) {
			fprintf(stderr, "herald-ceiling: the receiver did not finish connecting\n");
			kill(child, SIGKILL);
			waitpid(child, NULL, 0);
			return 1;
		}
	}

	memset(&snd, 0, sizeof(snd));
	snd.o = &o;
	snd.fds = fds;
	snd.frame = frame;
	ring_init(&snd.ring, 16384);
	nsteps = o.nrates ? o.nrates : 1;
	for (unsigned i = 0; i < nsteps; i++)
		run_step(&snd, o.nrates ? o.rates[i] : 0, &steps[i]);
	/* Let what is in flight finish, then close: the receiver sees EOF. */
	while (snd.inflight) {
		struct io_uring_cqe *cqe;
		if (io_uring_wait_cqe(&snd.ring, &cqe) < 0)
			break;
		reap(&snd);
	}
	for (unsigned i = 0; i < o.conns; i++)
		close(fds[i]);
	if (read_timed(pipefd[0], &got, sizeof(got), 30000) < 0)
		got = 0;
	kill(child, SIGKILL);
	waitpid(child, &status, 0);

	if (o.out && !(out = fopen(o.out, "w")))
		die(o.out);
	/* The top level is the first step (the only one when unpaced). */
	fprintf(out,
		"{\"conns\":%u,\"frame\":%u,\"inflight\":%u,\"seconds\":%.3f,\"sends\":%llu,"
		"\"sends_per_s\":%.1f,\"us_per_send\":%.3f,\"busy_pct\":%.1f,\"errors\":%llu,"
		"\"sent_bytes\":%llu,\"received_bytes\":%llu,\"send_cpu\":%d,\"recv_cpu\":%d,\"ack_on_read\":%s,\"steps\":[",
		o.conns, o.frame, o.inflight, steps[0].seconds, (unsigned long long)steps[0].sends,
		(double)steps[0].sends / steps[0].seconds,
		steps[0].sends ? steps[0].seconds * 1e6 / (double)steps[0].sends : 0.0, steps[0].busy_pct,
		(unsigned long long)snd.errors, (unsigned long long)(snd.ok * o.frame), (unsigned long long)got,
		o.send_cpu, o.recv_cpu, o.ack_on_read ? "true" : "false");
	for (unsigned i = 0; i < nsteps; i++) {
		const struct step *st = &steps[i];
		double sps = (double)st->sends / st->seconds;
		fprintf(out, "%s{\"rate\":%u,\"sends_per_s\":%.1f,\"kept_up\":%s,\"busy_pct\":%.1f,"
			"\"busy_us_per_send\":%.3f}",
			i ? "," : "", st->rate, sps, !st->rate || sps >= 0.99 * st->rate ? "true" : "false",
			st->busy_pct, st->busy_pct >= 0 && st->sends ? st->busy_pct * 1e4 / sps : -1.0);
	}
	fprintf(out, "]}\n");
	if (out != stdout)
		fclose(out);
	if (snd.errors || !snd.ok) {
		fprintf(stderr, "herald-ceiling: %llu sends failed or were short\n", (unsigned long long)snd.errors);
		return 1;
	}
	if (got != snd.ok * o.frame) {
		fprintf(stderr, "herald-ceiling: the receiver read %llu bytes of %llu sent\n",
			(unsigned long long)got, (unsigned long long)(snd.ok * o.frame));
		return 1;
	}
	return 0;
}
