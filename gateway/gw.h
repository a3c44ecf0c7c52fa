/* gw — the gateway's internal types shared by its files: the process-wide
 * state (struct gw), a worker (one thread, one cm_loop, one io_uring ring,
 * its own listeners, provided-buffer ring and connection slab) and a
 * connection. Only gw_*.c include this; main.c drives it through gw_run().
 *
 * user_data of a connection's operation (kind GW_K_CONN):
 *   payload bits  0..31  slot index in the worker's slab
 *                32..51  generation of the slot (20 bits)
 *                52..55  operation (GW_OP_*)
 * A slot is reused only once no operation of its previous owner can still
 * complete (inflight == 0), and its generation is bumped on reuse; the tag
 * catches any stale completion anyway. */
#ifndef GW_H
#define GW_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "cm_bufring.h"
#include "cm_loop.h"
#include "cm_ws.h"
#include "gw_htab.h"
#include "gw_opts.h"
#include "gw_wheel.h"

struct cm_packet;
struct cm_admin;
struct cm_buf;
struct gw_cluster;
struct gw_streams;
struct gw_sessions;
struct gw_hub;
typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

enum {
	GW_K_CONN = CM_K_USER,
	GW_K_ACCEPT,          /* payload: listener (0 plain, 1 tls) */
};

enum { GW_OP_RECV = 1, GW_OP_SEND = 2, GW_OP_SHUT = 3 };

#define GW_GEN_MASK 0xfffffu
#define GW_CHUNK_SHIFT 10
#define GW_CHUNK (1u << GW_CHUNK_SHIFT)
#define GW_IOV_MAX 64
#define GW_TLS_CHUNK 16384      /* plaintext per SSL_write (one record) */
#define GW_TLS_BATCH (64 * 1024) /* plaintext per flush in TLS mode */
/* First capacity of a connection's TLS output, doubled as records are
 * appended. A broadcast gives every subscriber one ~160-byte record at the
 * same moment: sized to it, 100k such buffers are 25 MiB of shared small
 * pages rather than 100k fresh 4 KiB pages, each a page fault to map. */
#define GW_TLS_OUT_MIN 256
#define GW_CLOSE_FLUSH_MS 5000  /* closing: for our last bytes to reach the socket */
#define GW_CLOSE_GRACE_MS 1000  /* after our FIN: wait for the peer's */

static inline uint64_t gw_ud(uint32_t idx, uint32_t gen, unsigned op)
{
	return cm_ud(GW_K_CONN, (uint64_t)idx | (uint64_t)(gen & GW_GEN_MASK) << 32 |
					(uint64_t)op << 52);
}

enum gw_state {
	GW_S_FREE = 0,
	GW_S_TLS,      /* TLS handshake */
	GW_S_HTTP,     /* reading the upgrade request */
	GW_S_OPEN,     /* WebSocket */
	GW_S_CLOSING,  /* our last bytes are queued; then FIN, then wait for the peer's */
	GW_S_DEAD,     /* shut down; freed once no operation is in flight */
};

enum {
	GW_F_TLS = 1 << 0,
	GW_F_RECV = 1 << 1,     /* multishot receive armed */
	GW_F_SEND = 1 << 2,     /* a send in flight */
	GW_F_DIRTY = 1 << 3,    /* on the worker's flush list */
	GW_F_REARM = 1 << 4,    /* on the worker's re-arm list (ENOBUFS) */
	GW_F_COUNTED = 1 << 5,  /* counted in ccu (open) */
	GW_F_SESSION = 1 << 6,  /* registered in the session table */
	GW_F_SHUTWR = 1 << 7,   /* FIN sent */
	GW_F_CLOSED_COUNTED = 1 << 8,
	GW_F_DEAD_LISTED = 1 << 9,
	GW_F_FIXED = 1 << 10,   /* fd is a slot of the ring's file table (= idx) */
};

/* Close reasons (metrics label, counted once per connection). */
enum gw_reason {
	GW_R_CLIENT_CLOSE = 0, GW_R_EOF, GW_R_IO_ERROR, GW_R_PROTOCOL, GW_R_BAD_UTF8,
	GW_R_TOO_BIG, GW_R_UNSUPPORTED, GW_R_IDLE, GW_R_SLOW, GW_R_DRAIN, GW_R_TOKEN,
	GW_R_HANDSHAKE_TIMEOUT, GW_R_TLS_FAILED, GW_R_HTTP_REFUSED, GW_R_INTERNAL,
	GW_R_CLOSED_BY_PEER_TLS, GW_R_OVERLOADED, GW_R_MAX,
};
extern const char *const gw_reason_names[GW_R_MAX];

/* HTTP refusal statuses counted in metrics. */
enum { GW_H_400, GW_H_401, GW_H_404, GW_H_405, GW_H_426, GW_H_431, GW_H_503, GW_H_505, GW_H_MAX };
extern const int gw_http_statuses[GW_H_MAX];

/* Per-worker counters: written by their worker only (plain stores through
 * relaxed atomics), summed by /metrics. */
struct gw_metrics {
	atomic_ulong accepted, bytes_in, bytes_out, msgs_in, msgs_out, cmds, pushes;
	atomic_ulong closed[GW_R_MAX];
	atomic_ulong refused[GW_H_MAX];
	atomic_ulong tls_full, tls_resumed, tls_failed;
	atomic_ulong slow;
	atomic_ulong rate_limited, enobufs;
	atomic_ulong accept_err[3];    /* failed accepts: EMFILE, ENFILE, other */
	atomic_long open, conns, subs; /* gauges */
	atomic_long queued;            /* gauge: bytes in write queues, per turn */
};

#define GW_INC(wk, field, v) \
	atomic_store_explicit(&(wk)->m.field, \
		atomic_load_explicit(&(wk)->m.field, memory_order_relaxed) + (v), memory_order_relaxed)

/* The sendmsg of a plain connection with more than one packet queued. */
struct gw_sendv {
	struct msghdr msg;
	struct iovec iov[GW_IOV_MAX];
};

/* A write queue, allocated while the connection has something to send. It
 * stays small (a broadcast gives every subscriber one at the same moment);
 * the iovec array comes only when a plain connection has a backlog. */
struct gw_wq {
	uint32_t n, cap;        /* queued packets */
	uint32_t nflight;       /* packets [0, nflight) are in the send in flight */
	uint32_t head_off;      /* bytes of packets[0] already sent */
	struct cm_packet **p;
	struct gw_sendv *sv;    /* NULL until a send takes two packets or more */
};

/* TLS output: records being built (out) and records being sent (fly). */
struct gw_tlsout {
	uint8_t *out;
	uint32_t out_len, out_cap;
	uint8_t *fly;
	uint32_t fly_len, fly_off;
};

struct gw_lsub;

struct gw_conn {
	int fd;                  /* a descriptor, or with GW_F_FIXED a file-table slot */
	uint32_t idx;            /* slot index */
	uint32_t gen;
	uint8_t state;
	uint8_t fmt;
	uint16_t flags;
	uint16_t inflight;       /* operations the kernel may still complete */
	uint16_t hs_len;         /* bytes in hs */
	struct gw_wlink wl;      /* timing wheel */
	uint32_t last_rx;        /* ms since the worker's epoch */
	uint32_t last_ping;
	uint32_t exp_s;          /* token expiry (epoch seconds), 0 = none */
	uint32_t tok_ms;         /* token bucket: last refill */
	uint32_t tokens;         /* token bucket, in thousandths */
	uint32_t queued;         /* bytes queued (not yet sent), in w->queued too */
	SSL *ssl;
	char *hs;                /* request head being assembled (GW_S_HTTP) */
	struct gw_wq *wq;
	struct gw_tlsout *tout;
	char *uid;
	struct gw_lsub *subs;    /* this connection's subscriptions */
	struct cm_ws_reader rd;
};

/* A worker's local stream: its subscribers, per format. */
struct gw_lstream {
	struct gw_hnode h;
	struct gw_lsub **subs[2];
	uint32_t n[2], cap[2];
	char name[];
};

struct gw_lsub {
	struct gw_lsub *next;    /* in the connection's list */
	struct gw_lstream *ls;
	uint32_t conn;           /* slot index */
	uint32_t pos;            /* index in ls->subs[fmt] */
	uint8_t fmt;
};

struct gw_worker {
	struct gw *gw;
	unsigned id;
	struct cm_loop *loop;
	pthread_t th;
	int lfd[2];               /* listeners: plain, tls (-1 when none) */
	bool accepting[2];
	struct cm_timer *accept_retry;
	uint32_t accept_fails;    /* failed accepts in the current burst (0: none) */
	struct cm_bufring rbufs;  /* provided buffers of the multishot receives */
	/* connection slab */
	struct gw_conn **chunks;
	uint32_t nchunks, nslots;
	uint32_t *freel;
	uint32_t nfree, capfree;
	uint32_t nconns;          /* slots in use */
	uint64_t epoch_ms;
	/* Bytes in the write queues of all its connections (the sum of their
	 * `queued`), and this worker's share of --max-queued-total (UINT64_MAX:
	 * no limit). TLS records already encrypted, at most about two batches
	 * per connection, are outside both. */
	uint64_t queued, queued_limit;
	/* Slots of the ring's registered file table (0: none). A connection in
	 * a slot below it has no descriptor: see gw_fixed_files_ok(). */
	uint32_t nfixed;
	/* end-of-turn work */
	uint32_t *dirty, ndirty, capdirty;
	uint32_t *rearm, nrearm, caprearm;
	uint32_t *dead, ndead, capdead;     /* closed: forget, then free when idle */
	struct cm_packet *ping;             /* shared empty ping frame */
	struct gw_wheel wheel;
	struct cm_timer *tick;
	struct gw_htab lstreams;
	bool draining, drain_reported;
	struct gw_metrics m;
	/* worker 0 only */
	struct gw_hub *hub;
	char scratch[GW_TLS_BATCH];
};

struct gw {
	struct gw_opts *o;
	unsigned nworkers;
	struct gw_worker **w;
	struct gw_streams *streams;
	struct gw_sessions *sessions;
	SSL_CTX *ssl_ctx;
	struct cm_admin *admin;
	atomic_bool draining;
	atomic_bool stopping;
	atomic_bool cluster_up;    /* worker 0's view of the link, every 500 ms */
	atomic_long open;          /* open WebSocket connections (ccu) */
	atomic_long conns;         /* every accepted connection still held */
	long max_held;             /* cap on conns (descriptors permitting) */
	atomic_ulong anon;
	uint64_t start_ms;
};

/* ---- gw_conn.c ---- */
void gw_conn_cqe(void *ctx, struct io_uring_cqe *cqe);
void gw_accept_cqe(void *ctx, struct io_uring_cqe *cqe);
void gw_accept_arm(struct gw_worker *w, int which);
/* End of turn: flush dirty connections, re-arm receives. */
void gw_worker_turn(void *arg);
/* Timing wheel tick, and the wheel's link lookup. */
void gw_worker_tick(void *arg);
struct gw_wlink *gw_wheel_link_of(void *ctx, uint32_t id);
/* Queues a packet (takes a reference) on an open connection; may close it
 * as a slow consumer. */
void gw_conn_push(struct gw_worker *w, struct gw_conn *c, struct cm_packet *p);
/* Sends close code/reason and closes gracefully. */
void gw_conn_close(struct gw_worker *w, struct gw_conn *c, uint16_t code, const char *reason,
		   enum gw_reason why);
struct gw_conn *gw_conn_get(struct gw_worker *w, uint32_t idx, uint32_t gen);
/* Starts the drain of this worker (listeners closed, close 1001 to all). */
void gw_worker_drain(struct gw_worker *w);
/* Frees the worker, its connections and its loop (after the loop stopped). */
void gw_worker_free(struct gw_worker *w);
/* Every open connection of the worker, for deliver_all. */
void gw_worker_each_open(struct gw_worker *w, void (*fn)(struct gw_worker *, struct gw_conn *, void *),
			 void *arg);

static inline struct gw_conn *gw_slot(struct gw_worker *w, uint32_t idx)
{
	return &w->chunks[idx >> GW_CHUNK_SHIFT][idx & (GW_CHUNK - 1)];
}

/* ---- gw_subs.c: local subscriptions and the cluster glue ---- */
/* Subscribes c to stream; reply says whether an ok (with id) is sent. */
void gw_sub_add(struct gw_worker *w, struct gw_conn *c, uint32_t idx, const char *s, size_t n,
		uint64_t id, bool reply);
/* Unsubscribes c from stream (no-op when not held). */
void gw_sub_del(struct gw_worker *w, struct gw_conn *c, const char *s, size_t n);
/* Drops every subscription and the session of a closing connection. */
void gw_conn_forget(struct gw_worker *w, struct gw_conn *c, uint32_t idx);
/* Registers the session of a newly opened connection. */
void gw_session_add(struct gw_worker *w, struct gw_conn *c, uint32_t idx);
/* A client's in-band publish. */
void gw_publish(struct gw_worker *w, const char *s, size_t n, const uint8_t *data, size_t len);

/* ---- gw_hub.c: worker 0's side (cluster link, deliveries) ---- */
void gw_hub_init(struct gw *g);
void gw_hub_fini(struct gw *g);
bool gw_hub_ready(struct gw *g);
void gw_hub_stats(struct gw *g, struct cm_buf *b);
/* Posted to worker 0 from any worker. */
void gw_hub_post_reconcile(struct gw_worker *from, bool is_user, const char *name, size_t n);
void gw_hub_post_publish(struct gw_worker *from, const char *s, size_t n, const uint8_t *d,
			 size_t len);
void gw_hub_post_drained(struct gw_worker *from);
/* Answers subscribes that waited for the interest in stream `name` (ok or
 * "subscription failed"), each on its connection's worker; takes the list. */
struct gw_waiter;
void gw_hub_post_waiters(struct gw_worker *from, const char *name, size_t n,
			 struct gw_waiter *list, bool ok);
/* Starts the drain as SIGTERM does (a second call stops at once). */
void gw_hub_signal(struct gw *g);

/* ---- gw_tls.c ---- */
/* Creates the shared SSL_CTX from --cert/--key. Returns NULL (logged) on error. */
SSL_CTX *gw_tls_ctx_new(const char *cert, const char *key);
/* A server SSL for connection c, its BIO writing into c's TLS output. */
SSL *gw_tls_new(SSL_CTX *ctx, struct gw_conn *c);
/* Current input for the BIO read callback (one connection at a time per
 * thread). */
void gw_tls_set_input(const uint8_t *p, size_t n);
/* Session-ticket keys: with a secret (copied; at most 4096 bytes), derived
 * from it for each wall-clock period of period_ms (0: 1 h), the same in every
 * process with that secret; without one (NULL), random per process and
 * rotated every period_ms. Called before the first handshake. */
void gw_tls_ticket_secret(const uint8_t *secret, size_t n, uint32_t period_ms);

/* ---- gw_metrics.c ---- */
void gw_admin_routes(struct gw *g, struct cm_admin *a);

/* ---- gw_main.c ---- */
/* Runs the gateway until drained or stopped. Returns the exit status. */
int gw_run(struct gw_opts *o);

#endif
