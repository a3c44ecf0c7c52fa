/* gw_server — builds the gateway: the shared tables, the TLS context, one
 * worker per thread (loop, SO_REUSEPORT listeners, provided-buffer ring,
 * timing wheel), the hub and admin server on worker 0; runs the workers'
 * loops on their threads until the drain ends. */
#include "gw.h"
#include "gw_sessions.h"
#include "gw_streams.h"
#include "cm_admin.h"
#include "cm_log.h"
#include "cm_net.h"
#include "cm_packet.h"

#include <errno.h>
#include <limits.h>
#include <liburing.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static uint32_t tick_ms_for(const struct gw_opts *o)
{
	uint32_t m = o->ping_ms;
	if (o->idle_ms < m)
		m = o->idle_ms;
	if (o->handshake_ms < m)
		m = o->handshake_ms;
	m /= 10;
	if (m < 10)
		m = 10;
	if (m > 250)
		m = 250;
	return m;
}

/* Client sockets go into the ring's file table, out of the descriptor
 * table: no descriptor lookup per operation, and nothing that walks
 * /proc/PID/fd (fd-counting exporters, agents) pays per connection. One
 * slot per connection slot, up to what the descriptor limit allows. */
static void fixed_files_init(struct gw *g, struct gw_worker *w)
{
	const struct gw_opts *o = g->o;
	struct rlimit rl;
	uint64_t n = ((uint64_t)g->max_held + GW_CHUNK - 1) / GW_CHUNK * GW_CHUNK;
	int ret;

	if (o->fixed_files == GW_FIXED_OFF ||
	    (o->fixed_files == GW_FIXED_AUTO && !cm_fixed_files_safe()))
		return;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && n > rl.rlim_cur)
		n = rl.rlim_cur;
	if (n > UINT32_MAX / 2)
		n = UINT32_MAX / 2;
	ret = io_uring_register_files_sparse(cm_loop_ring(w->loop), (unsigned)n);
	if (ret < 0) {
		if (w->id == 0)
			cm_warn("fixed files: %s; client sockets stay descriptors", strerror(-ret));
		return;
	}
	w->nfixed = (uint32_t)n;
	if (w->id == 0)
		cm_info("fixed files: on, %u slots per thread", w->nfixed);
}

static struct gw_worker *worker_new(struct gw *g, unsigned id)
{
	struct gw_worker *w;
	int ret;

	if (posix_memalign((void **)&w, 64, sizeof(*w)))
		cm_panic(__FILE__, __LINE__, "out of memory");
	memset(w, 0, sizeof(*w));
	w->gw = g;
	w->id = id;
	w->lfd[0] = w->lfd[1] = -1;
	w->loop = cm_loop_new(4096);
	if ((ret = cm_bufring_init(&w->rbufs, cm_loop_ring(w->loop), 0, g->o->recv_buffers,
				   g->o->recv_buffer_size)) < 0) {
		cm_error("provided buffer ring: %s", strerror(-ret));
		exit(1);
	}
	w->epoch_ms = cm_now_ms();
	w->queued_limit = g->o->max_queued_total ? g->o->max_queued_total / g->nworkers : UINT64_MAX;
	fixed_files_init(g, w);
	gw_wheel_init(&w->wheel, 1024, tick_ms_for(g->o), w->epoch_ms, gw_wheel_link_of, w);
	gw_htab_init(&w->lstreams);
	w->ping = cm_packet_frame(CM_WS_PING, NULL, 0);
	cm_loop_set_kind(w->loop, GW_K_CONN, gw_conn_cqe, w);
	cm_loop_set_kind(w->loop, GW_K_ACCEPT, gw_accept_cqe, w);
	return w;
}

static int open_listener(struct gw *g, unsigned which, const char *host, int *port)
{
	for (unsigned i = 0; i < g->nworkers; i++) {
		int fd = cm_listen_tcp(host, *port, true, 4096);
		if (fd < 0) {
			cm_error("listen %s:%d: %s", host, *port, strerror(-fd));
			return fd;
		}
		if (*port == 0)
			*port = cm_local_port(fd);
		g->w[i]->lfd[which] = fd;
	}
	return 0;
}

static void *worker_main(void *arg)
{
	struct gw_worker *w = arg;
	int ret = cm_loop_run(w->loop);
	if (ret < 0)
		cm_error("worker %u: loop failed: %s", w->id, strerror(-ret));
	return NULL;
}

int gw_run(struct gw_opts *o)
{
	struct gw *g = cm_xcalloc(1, sizeof(*g));
	sigset_t set;
	int port;

	struct rlimit rl;

	/* every connection is a descriptor: take all the kernel allows */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	/* Connections held in any state (handshakes, closings) may exceed the open
	 * ones by an eighth, but never the descriptors left for sockets. */
	g->max_held = (long)o->max_conns + (long)o->max_conns / 8 + 256;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		/* Descriptors that are not client sockets: stdio and logs, per worker
		 * its ring, up to two listeners and the loop's event/signal/timer
		 * descriptors; the admin listener and its clients, the Redis links.
		 * 32 + 8 per thread covers them with room to spare. Beyond that, a
		 * refusal needs a descriptor too: the refused socket lives until its
		 * 503 is sent and the peer closes (up to GW_CLOSE_GRACE_MS once
		 * the 503 is out, GW_CLOSE_FLUSH_MS at most before), so keep
		 * 1% of the limit (at least 32) for connections in handshake or being
		 * refused. Without this, accept fails with EMFILE past the limit and
		 * clients wait in the backlog until their own timeouts. */
		long lim = rl.rlim_cur > (rlim_t)LONG_MAX ? LONG_MAX : (long)rl.rlim_cur;
		long fixed = 32 + 8 * (long)o->threads;
		long headroom = lim / 100 > 32 ? lim / 100 : 32;
		long sockets = lim - fixed;
		long open_max = sockets - headroom;

		if (open_max < 1) {
			cm_error("descriptor limit %ld is too low (need more than %ld)", lim,
				 fixed + headroom);
			return 1;
		}
		if ((long)o->max_conns > open_max) {
			cm_warn("descriptor limit %ld allows %ld open connections: --max-conns %u "
				"lowered to %ld (503 beyond; raise `ulimit -n` for more)",
				lim, open_max, o->max_conns, open_max);
			o->max_conns = (uint32_t)open_max;
		}
		if (g->max_held > sockets)
			g->max_held = sockets;
	}
	signal(SIGPIPE, SIG_IGN);
	/* SIGTERM/SIGINT arrive through worker 0's signalfd */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	g->o = o;
	if (!o->auth_jwt) {
		/* anon-<n> is unique across the cluster: each gateway counts from
		 * its own random base below 2^40 (two gateways that each hand
		 * out a million overlap with odds of about 1 in 500000) */
		uint64_t base = cm_random64() & ((1ULL << 40) - 1);
		atomic_store(&g->anon, (unsigned long)base);
		cm_info("anonymous users: anon-%llu onward", (unsigned long long)base + 1);
	}
	g->nworkers = o->threads;
	g->start_ms = cm_now_ms();
	g->streams = gw_streams_new(o->standalone);
	g->sessions = gw_sessions_new();
	if (o->has_tls) {
		gw_tls_ticket_secret(o->ticket_secret, o->ticket_secret_len, o->ticket_period_ms);
		g->ssl_ctx = gw_tls_ctx_new(o->cert, o->key);
		if (!g->ssl_ctx)
			return 1;
	}
	g->w = cm_xcalloc(g->nworkers, sizeof(*g->w));
	for (unsigned i = 0; i < g->nworkers; i++)
		g->w[i] = worker_new(g, i);
	if (o->has_listen) {
		port = o->listen_port;
		if (open_listener(g, 0, o->listen_host, &port) < 0)
			return 1;
		o->listen_port = port;
	}
	if (o->has_tls) {
		port = o->tls_port;
		if (open_listener(g, 1, o->tls_host, &port) < 0)
			return 1;
		o->tls_port = port;
	}
	gw_hub_init(g);
	for (unsigned i = 0; i < g->nworkers; i++) {
		struct gw_worker *w = g->w[i];
		/* after the hub's hook on worker 0: deliveries queued there go out this turn */
		cm_loop_on_turn(w->loop, gw_worker_turn, w);
		w->tick = cm_timer_start(w->loop, w->wheel.tick_ms, true, gw_worker_tick, w);
		gw_accept_arm(w, 0);
		gw_accept_arm(w, 1);
	}
	if (o->has_admin) {
		int err = 0;
		g->admin = cm_admin_start(g->w[0]->loop, o->admin_host, o->admin_port, &err);
		if (!g->admin) {
			cm_error("admin %s:%d: %s", o->admin_host, o->admin_port, strerror(-err));
			if (o->admin_explicit)
				return 1;
		} else {
			gw_admin_routes(g, g->admin);
			o->admin_port = cm_admin_port(g->admin);
		}
	}
	cm_info("gateway %s: %u threads, %s mode, auth %s%s%s", o->id, g->nworkers,
		o->standalone ? "standalone" : "cluster", o->auth_jwt ? "jwt" : "none",
		o->standalone ? "" : ", redis ", o->standalone ? "" : o->redis_host);
	if (o->has_listen)
		cm_info("listening ws://%s:%d/ws", o->listen_host, o->listen_port);
	if (o->has_tls)
		cm_info("listening wss://%s:%d/ws", o->tls_host, o->tls_port);
	if (g->admin)
		cm_info("admin http://%s:%d/metrics", o->admin_host, o->admin_port);

	for (unsigned i = 0; i < g->nworkers; i++)
		if (pthread_create(&g->w[i]->th, NULL, worker_main, g->w[i])) {
			cm_error("pthread_create failed");
			return 1;
		}
	for (unsigned i = 0; i < g->nworkers; i++)
		pthread_join(g->w[i]->th, NULL);
	cm_info("stopped");
	gw_hub_fini(g);
	for (unsigned i = 0; i < g->nworkers; i++)
		gw_worker_free(g->w[i]);
	free(g->w);
	gw_streams_free(g->streams);
	gw_sessions_free(g->sessions);
	if (g->ssl_ctx)
		SSL_CTX_free(g->ssl_ctx);
	gw_opts_free(o);
	free(g);
	return 0;
}
