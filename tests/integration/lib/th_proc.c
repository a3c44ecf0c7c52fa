/* th_proc — see th_proc.h. */
#include "th_proc.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define CM_ARRAY_LEN_TH(a) (sizeof(a) / sizeof((a)[0]))

static struct th_proc procs[TH_MAX_PROCS];
static int nprocs;
static char tmpdir[256];
static pid_t owner_pid;
static bool atexit_done;

int64_t th_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void th_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void rm_rf(const char *dir)
{
	char *argv[] = { "rm", "-rf", (char *)dir, NULL };
	pid_t pid = fork();
	if (pid == 0) {
		execvp("rm", argv);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

static void kill_all_now(void)
{
	if (getpid() != owner_pid)
		return;
	for (int i = 0; i < nprocs; i++)
		if (procs[i].pid > 0) {
			kill(procs[i].pid, SIGKILL);
			waitpid(procs[i].pid, NULL, 0);
			procs[i].pid = 0;
		}
}

void th_raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

void th_setup(void)
{
	owner_pid = getpid();
	signal(SIGPIPE, SIG_IGN);
	th_raise_nofile();
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/herald-it-XXXXXX");
	if (!mkdtemp(tmpdir))
		cr_assert_fail("mkdtemp: %s", strerror(errno));
	if (!atexit_done) {
		atexit(kill_all_now);
		atexit_done = true;
	}
}

static bool abnormal(const struct th_proc *p)
{
	if (p->status < 0 || p->observed)
		return false;
	if (WIFEXITED(p->status))
		return WEXITSTATUS(p->status) != 0;
	/* killed by a signal we did not send */
	return !p->stopping;
}

void th_teardown(void)
{
	/* SIGTERM everyone, then wait for all together, SIGKILL after 5 s. */
	for (int i = 0; i < nprocs; i++)
		if (procs[i].pid > 0) {
			procs[i].stopping = true;
			kill(procs[i].pid, SIGTERM);
		}
	int64_t dl = th_now_ms() + 5000;
	for (int i = 0; i < nprocs; i++) {
		struct th_proc *p = &procs[i];
		while (p->pid > 0) {
			int st;
			pid_t r = waitpid(p->pid, &st, WNOHANG);
			if (r == p->pid || (r < 0 && errno == ECHILD)) {
				p->status = r == p->pid ? st : -1;
				p->pid = 0;
				break;
			}
			if (th_now_ms() >= dl) {
				fprintf(stderr, "th: %s did not stop within 5 s, SIGKILL\n", p->name);
				kill(p->pid, SIGKILL);
				waitpid(p->pid, &st, 0);
				p->status = -1; /* we killed it: not its fault here */
				p->pid = 0;
				break;
			}
			th_sleep_ms(5);
		}
	}
	bool keep = getenv("HERALD_KEEP_TMP") != NULL;
	for (int i = 0; i < nprocs; i++) {
		struct th_proc *p = &procs[i];
		if (abnormal(p)) {
			keep = true;
			fprintf(stderr, "th: %s ended abnormally (%s %d), log %s:\n", p->name,
				WIFEXITED(p->status) ? "exit" : "signal",
				WIFEXITED(p->status) ? WEXITSTATUS(p->status) : WTERMSIG(p->status),
				p->log);
			th_dump_log(p, 4000);
		}
		for (int j = 0; p->argv[j]; j++)
			free(p->argv[j]);
		for (int j = 0; p->env[j]; j++)
			free(p->env[j]);
	}
	nprocs = 0;
	if (tmpdir[0] && !keep)
		rm_rf(tmpdir);
	else if (tmpdir[0])
		fprintf(stderr, "th: kept %s\n", tmpdir);
}

const char *th_tmpdir(void)
{
	if (!tmpdir[0])
		th_setup();
	return tmpdir;
}

const char *th_build_dir(void)
{
	const char *b = getenv("HERALD_BUILD");
	return b && *b ? b : "build";
}

const char *th_bin(const char *name)
{
	static char path[512];
	snprintf(path, sizeof(path), "%s/%s", th_build_dir(), name);
	return path;
}

int th_free_port(void)
{
	/* never hand out the same port twice in one test process */
	static int given[256];
	static unsigned ngiven;
	for (int tries = 0; tries < 100; tries++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		cr_assert(fd >= 0, "socket: %s", strerror(errno));
		struct sockaddr_in a = { .sin_family = AF_INET,
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		cr_assert(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "bind: %s", strerror(errno));
		socklen_t al = sizeof(a);
		getsockname(fd, (struct sockaddr *)&a, &al);
		close(fd);
		int port = ntohs(a.sin_port);
		bool dup = false;
		for (unsigned i = 0; i < ngiven && i < CM_ARRAY_LEN_TH(given); i++)
			dup |= given[i] == port;
		if (dup)
			continue;
		given[ngiven++ % CM_ARRAY_LEN_TH(given)] = port;
		return port;
	}
	cr_assert_fail("no free port");
	return -1;
}

static struct th_proc *new_proc(const char *name, char *const argv[], char *const env[])
{
	cr_assert(nprocs < TH_MAX_PROCS, "too many processes");
	struct th_proc *p = &procs[nprocs++];
	memset(p, 0, sizeof(*p));
	p->status = -1;
	/* unique log name per process */
	int same = 0;
	for (int i = 0; i < nprocs - 1; i++)
		if (strncmp(procs[i].name, name, sizeof(procs[i].name)) == 0)
			same++;
	snprintf(p->name, sizeof(p->name), "%s", name);
	if (same)
		snprintf(p->log, sizeof(p->log), "%s/%s.%d.log", th_tmpdir(), name, same);
	else
		snprintf(p->log, sizeof(p->log), "%s/%s.log", th_tmpdir(), name);
	int i;
	for (i = 0; argv[i]; i++) {
		cr_assert(i < TH_MAX_ARGS, "too many args");
		p->argv[i] = strdup(argv[i]);
	}
	p->argv[i] = NULL;
	for (i = 0; env && env[i]; i++) {
		cr_assert(i < 16, "too many env entries");
		p->env[i] = strdup(env[i]);
	}
	p->env[i] = NULL;
	return p;
}

/* Forks and execs p; in_pipe/out_pipe (or NULL) become stdin/stdout. */
static void launch(struct th_proc *p, int *in_fd, int *out_fd)
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 };
	if (in_fd)
		cr_assert(pipe2(in, O_CLOEXEC) == 0);
	if (out_fd)
		cr_assert(pipe2(out, O_CLOEXEC) == 0);
	int logfd = open(p->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	cr_assert(logfd >= 0, "open %s: %s", p->log, strerror(errno));
	pid_t parent = getpid();
	fflush(NULL);
	pid_t pid = fork();
	cr_assert(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		/* die with the test, even when it crashes */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		signal(SIGPIPE, SIG_DFL);
		int devnull = open("/dev/null", O_RDONLY);
		dup2(in_fd ? in[0] : devnull, 0);
		dup2(out_fd ? out[1] : logfd, 1);
		dup2(logfd, 2);
		for (int i = 0; p->env[i]; i++)
			putenv(p->env[i]);
		execve(p->argv[0], p->argv, environ);
		execvp(p->argv[0], p->argv);
		dprintf(2, "exec %s: %s\n", p->argv[0], strerror(errno));
		_exit(127);
	}
	close(logfd);
	if (in_fd) {
		close(in[0]);
		*in_fd = in[1];
	}
	if (out_fd) {
		close(out[1]);
		*out_fd = out[0];
	}
	p->pid = pid;
	p->status = -1;
	p->stopping = false;
	p->observed = false;
}

struct th_proc *th_spawn(const char *name, char *const argv[], char *const env[])
{
	struct th_proc *p = new_proc(name, argv, env);
	launch(p, NULL, NULL);
	return p;
}

struct th_proc *th_spawnl(const char *name, const char *path, ...)
{
	char *argv[TH_MAX_ARGS + 1];
	int n = 0;
	argv[n++] = (char *)path;
	va_list ap;
	va_start(ap, path);
	char *a;
	while ((a = va_arg(ap, char *)) != NULL) {
		cr_assert(n < TH_MAX_ARGS, "too many args");
		argv[n++] = a;
	}
	va_end(ap);
	argv[n] = NULL;
	return th_spawn(name, argv, NULL);
}

struct th_proc *th_spawn_pipes(const char *name, char *const argv[], int *in_fd, int *out_fd)
{
	struct th_proc *p = new_proc(name, argv, NULL);
	launch(p, in_fd, out_fd);
	return p;
}

static int decode_status(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return -1;
}

static bool reap(struct th_proc *p, bool block)
{
	if (p->pid <= 0)
		return true;
	int st;
	pid_t r = waitpid(p->pid, &st, block ? 0 : WNOHANG);
	if (r == p->pid) {
		p->status = st;
		p->pid = 0;
		return true;
	}
	if (r < 0 && errno == ECHILD) {
		p->pid = 0;
		return true;
	}
	return false;
}

bool th_alive(struct th_proc *p)
{
	return !reap(p, false);
}

int th_wait_exit(struct th_proc *p, int timeout_ms)
{
	int64_t dl = th_now_ms() + timeout_ms;
	while (!reap(p, false)) {
		if (th_now_ms() >= dl)
			return -1;
		th_sleep_ms(5);
	}
	p->observed = true;
	return p->status < 0 ? -1 : decode_status(p->status);
}

int th_stop(struct th_proc *p, int timeout_ms)
{
	if (p->pid > 0) {
		p->stopping = true;
		kill(p->pid, SIGTERM);
	}
	int rc = th_wait_exit(p, timeout_ms);
	if (rc == -1 && p->pid > 0) {
		fprintf(stderr, "th: %s ignored SIGTERM for %d ms, SIGKILL\n", p->name, timeout_ms);
		kill(p->pid, SIGKILL);
		reap(p, true);
		rc = p->status < 0 ? -1 : decode_status(p->status);
		p->observed = true;
	}
	return rc;
}

void th_kill9(struct th_proc *p)
{
	if (p->pid > 0) {
		p->stopping = true;
		kill(p->pid, SIGKILL);
		reap(p, true);
	}
}

void th_signal(struct th_proc *p, int sig)
{
	if (p->pid > 0) {
		if (sig == SIGTERM || sig == SIGKILL || sig == SIGINT)
			p->stopping = true;
		kill(p->pid, sig);
	}
}

void th_restart(struct th_proc *p)
{
	if (p->pid > 0)
		th_stop(p, 5000);
	launch(p, NULL, NULL);
}

void th_dump_log(struct th_proc *p, size_t bytes)
{
	FILE *f = fopen(p->log, "r");
	if (!f)
		return;
	fseek(f, 0, SEEK_END);
	long sz = ftell(f);
	if (sz > (long)bytes)
		fseek(f, sz - (long)bytes, SEEK_SET);
	else
		fseek(f, 0, SEEK_SET);
	char buf[4096];
	size_t n;
	fprintf(stderr, "----- %s (%s) -----\n", p->name, p->log);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, n, stderr);
	fprintf(stderr, "----- end %s -----\n", p->name);
	fclose(f);
}

bool th_log_contains(struct th_proc *p, const char *needle)
{
	FILE *f = fopen(p->log, "r");
	if (!f)
		return false;
	fseek(f, 0, SEEK_END);
	long sz = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *buf = malloc((size_t)sz + 1);
	size_t n = fread(buf, 1, (size_t)sz, f);
	buf[n] = 0;
	fclose(f);
	bool r = memmem(buf, n, needle, strlen(needle)) != NULL;
	free(buf);
	return r;
}

/* Connects to 127.0.0.1:port with a deadline; returns the fd (blocking) or -errno. */
static int tcp_connect(int port, int timeout_ms)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS) {
		int e = errno;
		close(fd);
		return -e;
	}
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	if (poll(&pfd, 1, timeout_ms) != 1) {
		close(fd);
		return -ETIMEDOUT;
	}
	int err = 0;
	socklen_t el = sizeof(err);
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
	if (err) {
		close(fd);
		return -err;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return fd;
}

int th_wait_port(int port, int timeout_ms)
{
	int64_t dl = th_now_ms() + timeout_ms;
	for (;;) {
		int fd = tcp_connect(port, 200);
		if (fd >= 0) {
			close(fd);
			return 0;
		}
		if (th_now_ms() >= dl)
			return -ETIMEDOUT;
		th_sleep_ms(10);
	}
}

int th_wait_http_200(int port, const char *path, int timeout_ms)
{
	int64_t dl = th_now_ms() + timeout_ms;
	for (;;) {
		if (th_http_get(port, path, NULL, NULL) == 200)
			return 0;
		if (th_now_ms() >= dl)
			return -ETIMEDOUT;
		th_sleep_ms(10);
	}
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int th_http_raw(int port, const char *req, size_t len, char **resp)
{
	if (resp)
		*resp = NULL;
	int fd = tcp_connect(port, 2000);
	if (fd < 0)
		return fd;
	struct timeval tv = { 5, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	int rc = send_all(fd, req, len);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	long clen = -1;
	size_t head = 0;
	for (;;) {
		if (n + 1 >= cap) {
			cap *= 2;
			buf = realloc(buf, cap);
		}
		ssize_t r = recv(fd, buf + n, cap - n - 1, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		buf[n] = 0;
		if (!head) {
			char *e = strstr(buf, "\r\n\r\n");
			if (e) {
				head = (size_t)(e - buf) + 4;
				char *cl = strcasestr(buf, "\r\ncontent-length:");
				if (cl && cl < e)
					clen = strtol(cl + 17, NULL, 10);
			}
		}
		if (head && clen >= 0 && n >= head + (size_t)clen)
			break;
	}
	close(fd);
	buf[n] = 0;
	int status = -EPROTO;
	if (n >= 12 && strncmp(buf, "HTTP/1.", 7) == 0)
		status = atoi(buf + 9);
	if (resp)
		*resp = buf;
	else
		free(buf);
	return status;
}

int th_http_get(int port, const char *path, char **body, size_t *body_len)
{
	char req[1024];
	int len = snprintf(req, sizeof(req),
			   "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n",
			   path, port);
	char *resp;
	int st = th_http_raw(port, req, (size_t)len, &resp);
	if (body)
		*body = NULL;
	if (body_len)
		*body_len = 0;
	if (st < 0) {
		free(resp);
		return st;
	}
	char *e = strstr(resp, "\r\n\r\n");
	const char *b = e ? e + 4 : "";
	if (body) {
		*body = strdup(b);
		if (body_len)
			*body_len = strlen(b);
	}
	free(resp);
	return st;
}

/* Walks the Prometheus text; calls back with (name, labels-or-empty, value). */
static bool metric_line(const char *line, size_t len, const char **name, size_t *nlen,
			const char **labels, size_t *llen, double *val)
{
	if (len == 0 || line[0] == '#')
		return false;
	size_t i = 0;
	while (i < len && line[i] != '{' && line[i] != ' ')
		i++;
	*name = line;
	*nlen = i;
	*labels = "";
	*llen = 0;
	if (i < len && line[i] == '{') {
		size_t s = i;
		while (i < len && line[i] != '}')
			i++;
		if (i >= len)
			return false;
		i++;
		*labels = line + s;
		*llen = i - s;
	}
	while (i < len && line[i] == ' ')
		i++;
	if (i >= len)
		return false;
	char tmp[64];
	size_t vl = len - i < sizeof(tmp) - 1 ? len - i : sizeof(tmp) - 1;
	memcpy(tmp, line + i, vl);
	tmp[vl] = 0;
	char *end;
	*val = strtod(tmp, &end);
	return end != tmp;
}

bool th_metric(const char *text, const char *series, double *out)
{
	size_t sl = strlen(series);
	for (const char *p = text; p && *p;) {
		const char *e = strchr(p, '\n');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		const char *name, *labels;
		size_t nl, ll;
		double v;
		if (metric_line(p, len, &name, &nl, &labels, &ll, &v) && nl + ll == sl &&
		    memcmp(name, series, nl + ll) == 0) {
			*out = v;
			return true;
		}
		p = e ? e + 1 : NULL;
	}
	return false;
}

double th_metric_sum(const char *text, const char *name, const char *label_sub)
{
	size_t want = strlen(name);
	double sum = 0;
	bool found = false;
	for (const char *p = text; p && *p;) {
		const char *e = strchr(p, '\n');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		const char *n, *labels;
		size_t nl, ll;
		double v;
		if (metric_line(p, len, &n, &nl, &labels, &ll, &v) && nl == want &&
		    memcmp(n, name, nl) == 0) {
			bool match = true;
			if (label_sub) {
				char lb[512];
				size_t c = ll < sizeof(lb) - 1 ? ll : sizeof(lb) - 1;
				memcpy(lb, labels, c);
				lb[c] = 0;
				match = strstr(lb, label_sub) != NULL;
			}
			if (match) {
				sum += v;
				found = true;
			}
		}
		p = e ? e + 1 : NULL;
	}
	return found ? sum : -1;
}

double th_metric_match(const char *text, const char *name_sub, const char *label_sub)
{
	double sum = 0;
	bool found = false;
	for (const char *p = text; p && *p;) {
		const char *e = strchr(p, '\n');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		const char *n, *labels;
		size_t nl, ll;
		double v;
		if (metric_line(p, len, &n, &nl, &labels, &ll, &v) && memmem(n, nl, name_sub, strlen(name_sub)) &&
		    (!label_sub || memmem(labels, ll, label_sub, strlen(label_sub)))) {
			sum += v;
			found = true;
		}
		p = e ? e + 1 : NULL;
	}
	return found ? sum : -1;
}

double th_metrics_get(int port, const char *name, const char *label_sub)
{
	char *body;
	if (th_http_get(port, "/metrics", &body, NULL) != 200) {
		free(body);
		return -1;
	}
	double v = th_metric_sum(body, name, label_sub);
	free(body);
	return v;
}

bool th_wait_until(bool (*pred)(void *arg), void *arg, int timeout_ms)
{
	return TH_WAIT(pred(arg), timeout_ms);
}

const char *th_write_file(const char *name, const void *data, size_t len)
{
	static char path[512];
	if (name[0] == '/')
		snprintf(path, sizeof(path), "%s", name);
	else
		snprintf(path, sizeof(path), "%s/%s", th_tmpdir(), name);
	FILE *f = fopen(path, "w");
	cr_assert(f, "fopen %s: %s", path, strerror(errno));
	cr_assert(fwrite(data, 1, len, f) == len);
	fclose(f);
	return path;
}

char *th_read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	cr_assert(f, "fopen %s: %s", path, strerror(errno));
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	cr_assert(buf);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n, "reading %s", path);
	buf[n] = 0;
	fclose(f);
	return buf;
}

int th_run(const char *name, char *const argv[], int timeout_ms)
{
	struct th_proc *p = th_spawn(name, argv, NULL);
	int rc = th_wait_exit(p, timeout_ms);
	if (rc == -1) {
		th_kill9(p);
		return -1;
	}
	return rc >= 128 ? -1 : rc;
}

void th_make_cert(const char *kind, const char **cert, const char **key)
{
	static char c[2][512], k[2][512];
	int slot = strcmp(kind, "rsa") == 0;
	snprintf(c[slot], sizeof(c[slot]), "%s/%s.crt", th_tmpdir(), kind);
	snprintf(k[slot], sizeof(k[slot]), "%s/%s.key", th_tmpdir(), kind);
	*cert = c[slot];
	*key = k[slot];
	if (access(c[slot], R_OK) == 0 && access(k[slot], R_OK) == 0)
		return;
	char *argv[32];
	int n = 0;
	argv[n++] = "openssl";
	argv[n++] = "req";
	argv[n++] = "-x509";
	argv[n++] = "-newkey";
	if (slot) {
		argv[n++] = "rsa:2048";
	} else {
		argv[n++] = "ec";
		argv[n++] = "-pkeyopt";
		argv[n++] = "ec_paramgen_curve:prime256v1";
	}
	argv[n++] = "-nodes";
	argv[n++] = "-keyout";
	argv[n++] = k[slot];
	argv[n++] = "-out";
	argv[n++] = c[slot];
	argv[n++] = "-days";
	argv[n++] = "2";
	argv[n++] = "-subj";
	argv[n++] = "/CN=localhost";
	argv[n++] = "-addext";
	argv[n++] = "subjectAltName=DNS:localhost,IP:127.0.0.1";
	argv[n] = NULL;
	int rc = th_run(slot ? "openssl-rsa" : "openssl-ec", argv, 30000);
	cr_assert(rc == 0, "openssl req for %s failed (%d)", kind, rc);
}

/* --- Redis --- */

struct th_proc *th_redis_start(void)
{
	int port = th_free_port();
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", port);
	char *argv[] = { "redis-server", "--port", ps, "--bind", "127.0.0.1", "--save", "",
			 "--appendonly", "no", "--dir", (char *)th_tmpdir(), "--daemonize", "no",
			 NULL };
	/* redis-server lives on PATH (/usr/bin); execve of a bare name fails and
	 * falls back to execvp in launch(). */
	struct th_proc *p = th_spawn("redis", argv, NULL);
	p->port = port;
	cr_assert(th_wait_port(port, 5000) == 0, "redis-server did not start on %d", port);
	/* the port accepts before redis is loaded; wait for PING */
	bool ok = false;
	for (int i = 0; i < 200 && !ok; i++) {
		redisReply *r = th_redis_cmd(port, "PING");
		ok = r && r->type == REDIS_REPLY_STATUS;
		if (r)
			freeReplyObject(r);
		if (!ok)
			th_sleep_ms(10);
	}
	cr_assert(ok, "redis-server on %d does not answer PING", port);
	return p;
}

redisReply *th_redis_cmd(int port, const char *fmt, ...)
{
	struct timeval tv = { 2, 0 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	if (!c || c->err) {
		if (c)
			redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = redisvCommand(c, fmt, ap);
	va_end(ap);
	redisFree(c);
	return r;
}

long long th_redis_publish(int port, const char *channel, const void *data, size_t len)
{
	redisReply *r = th_redis_cmd(port, "PUBLISH %s %b", channel, data, len);
	long long n = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
	if (r)
		freeReplyObject(r);
	return n;
}

bool th_redis_hget_ll(int port, const char *key, const char *field, long long *out)
{
	redisReply *r = th_redis_cmd(port, "HGET %s %s", key, field);
	bool ok = false;
	if (r && r->type == REDIS_REPLY_STRING) {
		*out = strtoll(r->str, NULL, 10);
		ok = true;
	} else if (r && r->type == REDIS_REPLY_INTEGER) {
		*out = r->integer;
		ok = true;
	}
	if (r)
		freeReplyObject(r);
	return ok;
}

int th_redis_hgetall(int port, const char *key, char **fields, char **values, int max)
{
	redisReply *r = th_redis_cmd(port, "HGETALL %s", key);
	if (!r || r->type != REDIS_REPLY_ARRAY) {
		if (r)
			freeReplyObject(r);
		return -1;
	}
	int n = (int)(r->elements / 2);
	for (int i = 0; i < n && i < max; i++) {
		fields[i] = strndup(r->element[2 * i]->str, r->element[2 * i]->len);
		values[i] = strndup(r->element[2 * i + 1]->str, r->element[2 * i + 1]->len);
	}
	freeReplyObject(r);
	return n;
}

void th_strv_free(char **v, int n)
{
	for (int i = 0; i < n; i++)
		free(v[i]);
}

int th_fd_count(pid_t pid)
{
	char path[64];
	int n = 0;
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	for (struct dirent *e; (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}
