/* th_proc — processes, ports, Redis, HTTP and polling for integration tests.
 *
 * Every test runs in its own Criterion worker process. Declare the suite with
 *   TestSuite(name, .init = th_setup, .fini = th_teardown, .timeout = 60);
 * th_setup makes a per-test temp dir and raises the fd limit; every process
 * started through th_spawn is registered and stopped in th_teardown (SIGTERM,
 * then SIGKILL), on exit (atexit), and killed by the kernel if the test
 * process dies (PR_SET_PDEATHSIG), so nothing outlives its test. A process
 * that ends abnormally (non-zero exit, or a signal we did not send) without
 * the test having looked at its status gets its log tail printed at
 * teardown and the temp dir is kept.
 *
 * Binaries come from $HERALD_BUILD (default "build"): th_bin("herald-gateway").
 * Timeouts are in milliseconds; waits poll with a deadline, never sleep as an
 * assertion. */
#ifndef TH_PROC_H
#define TH_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct redisReply;

#define TH_MAX_PROCS 64
#define TH_MAX_ARGS 64

struct th_proc {
	pid_t pid;             /* 0 once reaped */
	char name[48];
	char log[512];         /* stdout+stderr of the process */
	char *argv[TH_MAX_ARGS + 1];
	char *env[16 + 1];     /* extra NAME=VALUE added to the inherited env */
	int status;            /* raw waitpid status once reaped, else -1 */
	bool stopping;         /* we sent the signal that ended it */
	bool observed;         /* the test was handed its exit status */
	int port;              /* main port, informational (redis) */
};

/* Per-test setup/teardown for TestSuite(.init/.fini). */
void th_setup(void);
void th_teardown(void);

/* The per-test temp dir (created by th_setup, removed by th_teardown unless
 * HERALD_KEEP_TMP is set). */
const char *th_tmpdir(void);

/* $HERALD_BUILD or "build". th_bin returns a static "<build>/<name>". */
const char *th_build_dir(void);
const char *th_bin(const char *name);

/* A loopback TCP port that was free a moment ago (bind 0, read, close). */
int th_free_port(void);

/* Starts argv[0] (a path) with argv, the current environment plus env
 * (NULL-terminated NAME=VALUE list, may be NULL), stdout and stderr appended
 * to <tmpdir>/<name>.log. Returns the registered process; aborts the test
 * when fork/exec fails. */
struct th_proc *th_spawn(const char *name, char *const argv[], char *const env[]);

/* Same, with argv given as a NULL-terminated variadic list of strings. */
struct th_proc *th_spawnl(const char *name, const char *path, ...) __attribute__((sentinel));

/* Starts a process with pipes: *in_fd writes to its stdin, *out_fd reads its
 * stdout (stderr goes to the log). Registered like th_spawn. */
struct th_proc *th_spawn_pipes(const char *name, char *const argv[], int *in_fd, int *out_fd);

/* Runs argv to completion (stdout/stderr to the log of `name`), up to
 * timeout_ms. Returns the exit code, or -1 on timeout/signal. */
int th_run(const char *name, char *const argv[], int timeout_ms);

/* True while the process has not exited (reaps it when it has). */
bool th_alive(struct th_proc *p);

/* Waits up to timeout_ms for the process to exit on its own. Returns its
 * exit code (0..255), 128+signal when killed, or -1 when still running. */
int th_wait_exit(struct th_proc *p, int timeout_ms);

/* SIGTERM, then SIGKILL after timeout_ms; reaps. Returns as th_wait_exit
 * (the exit code of a clean exit, 128+sig otherwise). */
int th_stop(struct th_proc *p, int timeout_ms);

/* SIGKILL and reap. */
void th_kill9(struct th_proc *p);

/* Sends sig without waiting. */
void th_signal(struct th_proc *p, int sig);

/* Starts the same argv again (after th_stop/th_kill9). */
void th_restart(struct th_proc *p);

/* Prints the last `bytes` bytes of the process log to stderr. */
void th_dump_log(struct th_proc *p, size_t bytes);

/* True when the log file contains needle. */
bool th_log_contains(struct th_proc *p, const char *needle);

/* Entries of /proc/PID/fd (the descriptors pid holds), or -1 when it is
 * unreadable (the process is gone). */
int th_fd_count(pid_t pid);

/* Waits until 127.0.0.1:port accepts a TCP connection. 0 or -ETIMEDOUT. */
int th_wait_port(int port, int timeout_ms);

/* Waits until GET path on 127.0.0.1:port answers 200. 0 or -ETIMEDOUT. */
int th_wait_http_200(int port, const char *path, int timeout_ms);

/* GET path from 127.0.0.1:port (HTTP/1.1, Connection: close). Returns the
 * status (> 0) and a malloc'd NUL-terminated body in *body (may be NULL to
 * discard), or -errno. */
int th_http_get(int port, const char *path, char **body, size_t *body_len);

/* Sends raw bytes as a request to 127.0.0.1:port and returns the response
 * status, the whole response (head + body) in *resp (malloc'd) if not NULL. */
int th_http_raw(int port, const char *req, size_t len, char **resp);

/* Prometheus text: the value of the series `series` (exact name, or
 * name{labels} exactly as printed). Returns true and sets *out when found. */
bool th_metric(const char *text, const char *series, double *out);

/* Sum of every series of metric `name` (any labels) whose label text
 * contains `label_sub` (NULL: all). Returns -1 when the metric is absent. */
double th_metric_sum(const char *text, const char *name, const char *label_sub);

/* Sum of every series whose metric name contains name_sub and whose label
 * text contains label_sub (NULL: any); -1 when none. */
double th_metric_match(const char *text, const char *name_sub, const char *label_sub);

/* GET /metrics from port and th_metric_sum on it (-1 when absent/unreachable). */
double th_metrics_get(int port, const char *name, const char *label_sub);

/* Polls pred(arg) every few ms until true or timeout_ms: true when it held. */
bool th_wait_until(bool (*pred)(void *arg), void *arg, int timeout_ms);

/* The same for an expression: TH_WAIT(expr, timeout_ms) evaluates to true
 * as soon as expr holds, false when the deadline passed first. */
#define TH_WAIT(expr, timeout_ms)                                           \
	({                                                                      \
		int64_t th_dl_ = th_now_ms() + (timeout_ms);                        \
		bool th_ok_ = false;                                                \
		for (unsigned th_i_ = 0;; th_i_++) {                                \
			if (expr) { th_ok_ = true; break; }                             \
			if (th_now_ms() >= th_dl_) break;                               \
			th_sleep_ms(th_i_ < 20 ? 2 : 20);                               \
		}                                                                   \
		th_ok_;                                                             \
	})

int64_t th_now_ms(void);
void th_sleep_ms(int ms);

/* Writes a file (path relative to the temp dir unless absolute); returns
 * the static full path (valid until the next call). */
const char *th_write_file(const char *name, const void *data, size_t len);

/* Reads a whole file, NUL-terminated (malloc'd); asserts it can be read. */
char *th_read_file(const char *path);

/* Generates a self-signed certificate for CN=localhost, SAN localhost and
 * 127.0.0.1, with the openssl CLI into the temp dir: kind "ec" (P-256) or
 * "rsa" (2048). Writes the paths (static) into *cert and *key. */
void th_make_cert(const char *kind, const char **cert, const char **key);

/* --- Redis --- */

/* Starts a private redis-server on a free port (no persistence, dir = the
 * temp dir) and waits for it to accept. */
struct th_proc *th_redis_start(void);

/* Runs a command on 127.0.0.1:port (synchronous hiredis, fresh connection).
 * Returns the reply (free with freeReplyObject) or NULL on error. */
struct redisReply *th_redis_cmd(int port, const char *fmt, ...);

/* PUBLISH channel payload; returns the receiver count or -1. */
long long th_redis_publish(int port, const char *channel, const void *data, size_t len);

/* HGET key field as an integer; returns false when absent. */
bool th_redis_hget_ll(int port, const char *key, const char *field, long long *out);

/* HGETALL key: number of fields (or -1), fields/values copied into the
 * arrays (up to max, malloc'd strings the caller frees with th_strv_free). */
int th_redis_hgetall(int port, const char *key, char **fields, char **values, int max);
void th_strv_free(char **v, int n);

/* Raises RLIMIT_NOFILE's soft limit to the hard limit (children inherit). */
void th_raise_nofile(void);

#endif
