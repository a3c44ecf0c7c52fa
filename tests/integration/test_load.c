/* build/herald-load end to end: against a real cluster (Redis, the router,
 * two gateways) its counts must add up exactly, and a bad target or flag
 * must fail with the documented exit codes. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_net.h"
#include "tests/integration/lib/th_cluster.h"
#include "tests/integration/lib/th_gw.h"
#include "tests/integration/lib/th_proc.h"

TestSuite(load, .init = th_setup, .fini = th_teardown, .timeout = 180);

static cJSON *read_json(const char *path)
{
	char *buf = th_read_file(path);
	cJSON *j = cJSON_Parse(buf);

	cr_assert_not_null(j, "%s is not JSON: %s", path, buf);
	free(buf);
	return j;
}

static double num(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	cr_assert(cJSON_IsNumber(v), "no number '%s'", key);
	return v->valuedouble;
}

static bool yes(const cJSON *o, const char *key)
{
	return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, key));
}

/* The timeline has a point every timeline_ms (at least half of those the
 * run had time for, never more), and its rates are per second whatever the
 * interval: over the points they add up to the messages received. */
static void timeline_adds_up(const cJSON *j, double timeline_ms)
{
	const cJSON *tl = cJSON_GetObjectItemCaseSensitive(j, "timeline"), *pt;
	double elapsed = num(j, "elapsed_s"), prev = 0, sum = 0;
	double msgs = num(cJSON_GetObjectItemCaseSensitive(j, "recv"), "messages");
	int n = cJSON_GetArraySize(tl);

	cr_assert_eq(num(j, "timeline_ms"), timeline_ms);
	cr_assert(n >= elapsed * 1000 / timeline_ms / 2 && n <= elapsed * 1000 / timeline_ms + 1,
		  "%d timeline points in %g s at %g ms", n, elapsed, timeline_ms);
	cJSON_ArrayForEach(pt, tl) {
		sum += num(pt, "recv_per_s") * (num(pt, "t") - prev);
		prev = num(pt, "t");
	}
	cr_assert(sum >= msgs * 0.9 && sum <= msgs * 1.02 + 10,
		  "the timeline's rates add up to %g messages, %g received", sum, msgs);
}

/* extra: one more herald-load flag, or NULL */
static void fanout_exact(const char *extra)
{
	struct th_proc *redis = th_redis_start();
	struct th_router router;
	struct th_gw gw[2];
	char rport[32], targets[64], out[512];

	th_router_start(&router, redis->port, NULL);
	for (int i = 0; i < 2; i++) {
		struct th_gw_opts o = { .redis_port = redis->port, .threads = 1, .id = i ? "load-b" : "load-a" };
		th_gw_start(&gw[i], &o);
	}
	cr_assert(TH_WAIT(th_router_gateways(&router, NULL, 0) == 2, 5000));
	snprintf(rport, sizeof(rport), "127.0.0.1:%d", redis->port);
	snprintf(targets, sizeof(targets), "127.0.0.1:%d,127.0.0.1:%d", gw[0].port, gw[1].port);
	snprintf(out, sizeof(out), "%s/fanout.json", th_tmpdir());
	char *argv[] = { (char *)th_bin("herald-load"), "--scenario", "fanout", "--target", targets,
			 "--clients", "200", "--streams", "4", "--workers", "2", "--rate", "2000",
			 "--source-ips", "127.0.0.2,127.0.0.3", "--redis", rport, "--rate-msgs", "40,400",
			 "--duration", "1", "--drain", "1", "--settle", "0.5", "--payload", "200",
			 "--out", out, "--quiet", (char *)extra, NULL };
	cr_assert_eq(th_run("load", argv, 90000), 0, "herald-load failed (see its log)");

	cJSON *j = read_json(out);
	const cJSON *conn = cJSON_GetObjectItemCaseSensitive(j, "connect");
	const cJSON *acks = cJSON_GetObjectItemCaseSensitive(j, "ack_flushes");
	cr_assert_eq(num(conn, "opened"), 200);
	if (extra && !strcmp(extra, "--ack-on-read")) {
		/* a flush after every read that carried data, one way or the
		 * other: at most one per message plus the upgrade's response,
		 * at least one per ten messages (reads coalesce a few) */
		double flushes = num(acks, "io_uring") + num(acks, "setsockopt");
		double msgs = num(cJSON_GetObjectItemCaseSensitive(j, "recv"), "messages");
		cr_assert(flushes >= msgs / 10 && flushes <= msgs + 2 * num(conn, "opened"),
			  "%g ACK flushes for %g messages", flushes, msgs);
	} else {
		cr_assert_null(acks);
	}
	cr_assert_eq(num(cJSON_GetObjectItemCaseSensitive(j, "errors"), "total"), 0);
	timeline_adds_up(j, extra && !strncmp(extra, "--timeline-ms=", 14) ? atof(extra + 14) : 1000);
	const cJSON *steps = cJSON_GetObjectItemCaseSensitive(j, "steps");
	cr_assert_eq(cJSON_GetArraySize(steps), 2);
	for (int i = 0; i < 2; i++) {
		const cJSON *s = cJSON_GetArrayItem(steps, i);
		double published = num(s, "published");
		cr_assert_eq(published, i ? 400 : 40, "step %d published %g", i, published);
		/* 200 clients over 4 streams: 50 subscribers each */
		cr_assert_eq(num(s, "expected"), published * 50, "step %d", i);
		cr_assert_eq(num(s, "received"), num(s, "expected"), "step %d", i);
		cr_assert_eq(num(s, "lost"), 0);
		cr_assert_eq(num(s, "duplicates"), 0);
		cr_assert_eq(num(s, "misrouted"), 0);
		cr_assert_eq(num(s, "dropped_clients"), 0);
		/* every PUBLISH answered, each reaching the router's subscription */
		cr_assert_eq(num(s, "redis_receivers"), published, "step %d: %g receivers", i,
			     num(s, "redis_receivers"));
		cr_assert(yes(s, "rate_reached"), "step %d", i);
		cr_assert(yes(s, "ok"), "step %d", i);
		const cJSON *lat = cJSON_GetObjectItemCaseSensitive(s, "latency_ms");
		cr_assert_eq(num(lat, "count"), num(s, "received"));
		cr_assert(num(lat, "p50") > 0 && num(lat, "p50") <= num(lat, "p99"));
	}
	cJSON_Delete(j);
	for (int i = 0; i < 2; i++)
		cr_assert_eq(th_gw_stop(&gw[i], 15000), 0);
}

/* A cluster of Redis, the router and two gateways for run_load. */
struct load_cluster {
	struct th_proc *redis;
	struct th_router router;
	struct th_gw gw[2];
	char rport[32], targets[64];
};

static void cluster_up(struct load_cluster *lc)
{
	lc->redis = th_redis_start();
	th_router_start(&lc->router, lc->redis->port, NULL);
	for (int i = 0; i < 2; i++) {
		struct th_gw_opts o = { .redis_port = lc->redis->port, .threads = 1,
					.id = i ? "load-b" : "load-a" };
		th_gw_start(&lc->gw[i], &o);
	}
	cr_assert(TH_WAIT(th_router_gateways(&lc->router, NULL, 0) == 2, 5000));
	snprintf(lc->rport, sizeof(lc->rport), "127.0.0.1:%d", lc->redis->port);
	snprintf(lc->targets, sizeof(lc->targets), "127.0.0.1:%d,127.0.0.1:%d", lc->gw[0].port,
		 lc->gw[1].port);
}

static void cluster_down(struct load_cluster *lc)
{
	for (int i = 0; i < 2; i++)
		cr_assert_eq(th_gw_stop(&lc->gw[i], 15000), 0);
}

/* Runs herald-load against the cluster with the flags in `args` (NULL-
 * terminated) after the common ones; its JSON result, exit code 0. */
static cJSON *run_load(struct load_cluster *lc, const char *name, const char *const *args)
{
	char out[512];
	char *argv[64];
	int n = 0;

	snprintf(out, sizeof(out), "%s/%s.json", th_tmpdir(), name);
	argv[n++] = (char *)th_bin("herald-load");
	argv[n++] = "--target";
	argv[n++] = lc->targets;
	argv[n++] = "--redis";
	argv[n++] = lc->rport;
	argv[n++] = "--out";
	argv[n++] = out;
	argv[n++] = "--quiet";
	for (int i = 0; args[i]; i++)
		argv[n++] = (char *)args[i];
	argv[n] = NULL;
	cr_assert_eq(th_run(name, argv, 120000), 0, "herald-load failed (see its log)");
	return read_json(out);
}

/* A publisher that keeps its schedule is not behind it: message i is due
 * at i/rate, so at 4 msgs/s each batch goes out when its message is due,
 * not a whole interval (250 ms) after the one before. */
Test(load, a_publisher_on_schedule_is_not_reported_behind)
{
	struct load_cluster lc;
	const char *args[] = { "--scenario", "fanout", "--clients", "4", "--streams", "2",
			       "--workers", "1", "--rate-msgs", "4", "--duration", "2", "--drain",
			       "0.5", "--settle", "0.2", NULL };

	cluster_up(&lc);
	cJSON *j = run_load(&lc, "behind", args);
	const cJSON *s = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "steps"), 0);
	cr_assert_eq(num(s, "published"), 8);
	cr_assert(yes(s, "rate_reached"));
	/* the bug reported a whole interval, 250 ms; a loaded machine may
	 * delay a batch by some tens of ms */
	cr_assert(num(s, "publish_max_behind_ms") < 200, "publish_max_behind_ms %g at 4 msgs/s",
		  num(s, "publish_max_behind_ms"));
	cJSON_Delete(j);
	cluster_down(&lc);
}

/* Under churn no client stays for a whole step, so a step's deliveries are
 * those of every client (received_all_clients); best_ok_step reports the
 * same figure as the step it names. */
Test(load, churn_best_ok_step_reports_the_steps_deliveries)
{
	struct load_cluster lc;
	const char *args[] = { "--scenario", "churn", "--clients", "100", "--streams", "2",
			       "--workers", "1", "--rate", "2000", "--churn-rate", "200",
			       "--rate-msgs", "50", "--duration", "1.5", "--drain", "0.5", "--settle",
			       "0.2", NULL };

	cluster_up(&lc);
	cJSON *j = run_load(&lc, "churn-best", args);
	const cJSON *s = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "steps"), 0);
	const cJSON *best = cJSON_GetObjectItemCaseSensitive(j, "best_ok_step");
	/* (churn replaces every client twice a second, so none is counted for
	 * the whole step: the case where the step's figure comes from every
	 * client; where a slow machine kept one, the figures must agree all
	 * the same) */
	if (num(s, "clients") != 0)
		cr_log_warn("churn left %g clients for the whole step", num(s, "clients"));
	cr_assert(yes(s, "ok"), "the churn step failed");
	cr_assert(num(s, "deliveries_per_s") > 0);
	cr_assert(cJSON_IsObject(best));
	cr_assert_eq(num(best, "deliveries_per_s"), num(s, "deliveries_per_s"),
		     "best_ok_step says %g deliveries/s, its step %g", num(best, "deliveries_per_s"),
		     num(s, "deliveries_per_s"));
	cJSON_Delete(j);
	cluster_down(&lc);
}

/* A client lost during a step (here: its gateway killed in the middle of
 * it) fails the step even though the clients left received everything:
 * the step reports it as dropped_clients. */
Test(load, clients_lost_during_a_step_fail_it)
{
	struct load_cluster lc;
	char out[512], ready[512];
	struct stat sb;

	cluster_up(&lc);
	snprintf(out, sizeof(out), "%s/dropped.json", th_tmpdir());
	snprintf(ready, sizeof(ready), "%s/dropped.ready", th_tmpdir());
	char *argv[] = { (char *)th_bin("herald-load"), "--scenario", "fanout", "--target",
			 lc.targets, "--redis", lc.rport, "--clients", "100", "--streams", "4",
			 "--workers", "1", "--rate-msgs", "20", "--duration", "4", "--drain",
			 "0.5", "--settle", "0.3", "--ready-file", ready, "--out", out, "--quiet",
			 NULL };
	struct th_proc *p = th_spawn("dropped", argv, NULL);
	cr_assert(TH_WAIT(stat(ready, &sb) == 0, 20000), "the ramp did not finish");
	th_sleep_ms(1500); /* into the step */
	th_kill9(lc.gw[1].proc);
	cr_assert_eq(th_wait_exit(p, 60000), 0, "herald-load failed (see its log)");
	cJSON *j = read_json(out);
	const cJSON *s = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "steps"), 0);
	cr_assert(num(s, "dropped_clients") > 0, "no client counted as dropped");
	cr_assert_not(yes(s, "ok"), "a step that lost %g clients passed",
		      num(s, "dropped_clients"));
	cJSON_Delete(j);
	cr_assert_eq(th_gw_stop(&lc.gw[0], 15000), 0);
}

Test(load, fanout_counts_every_delivery_exactly)
{
	fanout_exact(NULL);
}

/* --timeline-ms 100: ten points a second, rates still per second */
Test(load, a_finer_timeline_keeps_its_rates_per_second)
{
	fanout_exact("--timeline-ms=100");
}

/* clients that ACK when they read (cm_ack_hold/cm_ack_flush) still get
 * every message: no ACK is lost, the gateways never stall on a window */
Test(load, fanout_with_ack_on_read_counts_every_delivery_exactly)
{
	fanout_exact("--ack-on-read");
}

Test(load, a_refused_target_exits_1)
{
	char target[32], out[512];
	snprintf(target, sizeof(target), "127.0.0.1:%d", th_free_port());
	snprintf(out, sizeof(out), "%s/refused.json", th_tmpdir());
	char *argv[] = { (char *)th_bin("herald-load"), "--target", target, "--clients", "5",
			 "--duration", "1", "--connect-timeout", "2", "--out", out, "--quiet", NULL };
	cr_assert_eq(th_run("load-refused", argv, 30000), 1);
}

Test(load, connections_a_gateway_turns_away_are_counted_by_kind)
{
	struct th_gw gw;
	struct th_gw_opts o = { .threads = 1, .extra = { "--max-conns", "10", NULL } };
	char target[32], out[512];

	th_gw_start(&gw, &o);
	snprintf(target, sizeof(target), "127.0.0.1:%d", gw.port);
	snprintf(out, sizeof(out), "%s/full.json", th_tmpdir());
	char *argv[] = { (char *)th_bin("herald-load"), "--target", target, "--clients", "30",
			 "--rate", "1000", "--duration", "1", "--out", out, "--quiet", NULL };
	int rc = th_run("load-full", argv, 60000);
	cJSON *j = read_json(out);
	const cJSON *errs = cJSON_GetObjectItemCaseSensitive(j, "errors");
	cr_assert_eq(num(cJSON_GetObjectItemCaseSensitive(j, "connect"), "opened"), 10, "exit %d", rc);
	cr_assert_eq(num(errs, "http_status"), 20);
	cr_assert_eq(num(errs, "total"), 20);
	const cJSON *hs = cJSON_GetObjectItemCaseSensitive(j, "http_status");
	cr_assert_eq(num(hs, "5xx"), 20);
	cr_assert_eq(num(hs, "last"), 503);
	cJSON_Delete(j);
	cr_assert_eq(th_gw_stop(&gw, 15000), 0);
}

/* Descriptors held by pid and its children (herald-load's workers). */
static int tree_fds(pid_t pid)
{
	DIR *proc = opendir("/proc");
	int total = 0;

	cr_assert(proc);
	for (struct dirent *e; (e = readdir(proc));) {
		char path[300], line[256];
		int ppid = -1, me = atoi(e->d_name), n;
		if (me <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/status", me);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "PPid: %d", &ppid) == 1)
				break;
		fclose(f);
		if ((me == pid || ppid == pid) && (n = th_fd_count(me)) > 0)
			total += n;
	}
	closedir(proc);
	return total;
}

/* By default (kernel 6.13+) the clients' sockets live in the workers'
 * io_uring file tables: holding 300 clients adds no descriptors, so
 * whatever walks /proc/PID/fd does not pay per client; --no-fixed-files
 * keeps one descriptor per client. The clients work the same either way. */
static void held_descriptors(bool fixed)
{
	struct th_gw gw;
	struct th_gw_opts o = { .threads = 1 };
	char target[32], out[512], ready[512];
	struct stat sb;
	enum { N = 300 };

	th_gw_start(&gw, &o);
	snprintf(target, sizeof(target), "127.0.0.1:%d", gw.port);
	snprintf(out, sizeof(out), "%s/held-%d.json", th_tmpdir(), fixed);
	snprintf(ready, sizeof(ready), "%s/held-%d.ready", th_tmpdir(), fixed);
	char *argv[] = { (char *)th_bin("herald-load"), "--target", target, "--clients", "300",
			 "--workers", "2", "--rate", "2000", "--duration", "3", "--ready-file", ready,
			 "--out", out, "--quiet", fixed ? NULL : "--no-fixed-files", NULL };
	struct th_proc *p = th_spawn(fixed ? "held-fixed" : "held-fds", argv, NULL);
	cr_assert(TH_WAIT(stat(ready, &sb) == 0, 20000), "the ramp did not finish");
	cr_assert_eq(th_gw_metric(&gw, "herald_gateway_ccu", NULL), N);
	int fds = tree_fds(p->pid);
	if (fixed)
		cr_assert(fds < 60, "%d descriptors for %d clients with fixed files", fds, N);
	else
		cr_assert(fds >= N, "%d descriptors for %d clients without fixed files", fds, N);
	cr_assert_eq(th_wait_exit(p, 60000), 0, "herald-load failed (see its log)");
	cJSON *j = read_json(out);
	cr_assert_eq(num(cJSON_GetObjectItemCaseSensitive(j, "connect"), "opened"), N);
	cr_assert_eq(num(cJSON_GetObjectItemCaseSensitive(j, "errors"), "total"), 0);
	cJSON_Delete(j);
	/* and they all went when it exited */
	cr_assert(TH_WAIT(th_gw_metric(&gw, "herald_gateway_connections", NULL) == 0, 5000));
	cr_assert_eq(th_gw_stop(&gw, 15000), 0);
}

Test(load, clients_hold_no_descriptors_with_fixed_files)
{
	/* before Linux 6.13 herald-load keeps descriptors (see cm_net.h) */
	if (cm_fixed_files_safe())
		held_descriptors(true);
	held_descriptors(false);
}

Test(load, a_bad_flag_exits_2)
{
	char *argv[] = { (char *)th_bin("herald-load"), "--target", "127.0.0.1:1", "--batch", "0", NULL };
	cr_assert_eq(th_run("load-badflag", argv, 10000), 2);
	char *argv2[] = { (char *)th_bin("herald-load"), "--bogus", NULL };
	cr_assert_eq(th_run("load-bogus", argv2, 10000), 2);
}
