/* `make run` (deploy/local-cluster.sh) on free ports and a private run
 * directory: it comes up, and a stop stops everything it started, even when
 * the signal comes twice (make relays SIGTERM to its child after the one a
 * process-group kill already delivered). */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/integration/lib/th_proc.h"

TestSuite(local_cluster, .init = th_setup, .fini = th_teardown, .timeout = 90);

/* The PIDs the script says it started ("started NAME (pid N): ..."). */
static int started_pids(const char *log_path, int *pids, int max)
{
	char *log = th_read_file(log_path), *p;
	int n = 0;

	if (!log)
		return 0;
	for (p = log; n < max && (p = strstr(p, " (pid ")); p++)
		pids[n++] = atoi(p + 6);
	free(log);
	return n;
}

static bool is_up(void *arg)
{
	return th_log_contains(arg, "herald local cluster is up");
}

static bool any_alive(const int *pids, int n)
{
	for (int i = 0; i < n; i++)
		if (kill(pids[i], 0) == 0)
			return true;
	return false;
}

Test(local_cluster, comes_up_and_a_double_sigterm_stops_everything)
{
	char ws[32], wss[32], admin[32], redis[32], run[600], build[600];
	int pids[16], n, admin_port = th_free_port();

	snprintf(ws, sizeof(ws), "HERALD_WS_PORT=%d", th_free_port());
	snprintf(wss, sizeof(wss), "HERALD_WSS_PORT=%d", th_free_port());
	snprintf(admin, sizeof(admin), "HERALD_ADMIN_PORT=%d", admin_port);
	snprintf(redis, sizeof(redis), "HERALD_REDIS_PORT=%d", th_free_port());
	snprintf(run, sizeof(run), "HERALD_RUN_DIR=%s/run", th_tmpdir());
	snprintf(build, sizeof(build), "HERALD_BUILD=%s", th_build_dir());
	char *env[] = { ws, wss, admin, redis, run, build, NULL };
	char *argv[] = { "/bin/bash", "deploy/local-cluster.sh", NULL };
	struct th_proc *sh = th_spawn("local-cluster", argv, env);

	cr_assert(th_wait_until(is_up, sh, 40000), "the cluster did not come up");
	n = started_pids(sh->log, pids, 16);
	cr_assert_eq(n, 4, "redis, router and two gateways: %d started", n);
	cr_assert_eq(th_wait_http_200(admin_port, "/metrics", 5000), 0);

	th_signal(sh, SIGTERM);
	th_sleep_ms(100);
	th_signal(sh, SIGTERM); /* what make adds when its group is killed */
	cr_assert_geq(th_wait_exit(sh, 60000), 0, "the script did not exit");
	bool left = any_alive(pids, n);
	for (int i = 0; left && i < n; i++)
		kill(pids[i], SIGKILL); /* not ours to leave behind, even failing */
	cr_assert_not(left, "the script exited and left processes running");
	/* and it went through its whole stop (Redis is started first, stopped last) */
	char done[64];
	snprintf(done, sizeof(done), "redis (pid %d) exited with status", pids[0]);
	cr_assert(th_log_contains(sh, done), "no \"%s\" in the script's log", done);
}
