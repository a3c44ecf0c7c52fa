/* ld_shared — what the parent and its worker processes share: one
 * MAP_SHARED mapping made before fork(). The parent writes the control block
 * (phase, step start times, per-step publish counts); each worker writes only
 * its own stats slot. Counters are plain 64-bit words (never torn on x86-64);
 * flags go through __atomic with acquire/release so that a worker's step
 * results are complete before it says they are. */
#ifndef LD_SHARED_H
#define LD_SHARED_H

#include <stddef.h>
#include <stdint.h>

#include "ld_hist.h"
#include "ld_opts.h"

/* Why a connection failed or ended (the JSON "errors" object). */
enum ld_err {
	LD_E_REFUSED,    /* connect: ECONNREFUSED */
	LD_E_TIMEOUT,    /* TCP connect not done within --connect-timeout */
	LD_E_HS_TIMEOUT, /* connected, but TLS + upgrade not done within --connect-timeout */
	LD_E_ADDR,       /* socket/bind/connect: no descriptor, address or port left */
	LD_E_TLS,        /* TLS handshake failed */
	LD_E_HTTP,       /* upgrade answered with a status other than 101, or bad head */
	LD_E_HS_EOF,     /* peer closed or reset during the handshake */
	LD_E_WS_CLOSE,   /* open connection ended by a close frame from the server */
	LD_E_EOF,        /* open connection ended by FIN without a close frame */
	LD_E_RESET,      /* open connection reset */
	LD_E_PROTOCOL,   /* bad WebSocket frame from the server, TLS error when open */
	LD_E_OTHER,
	LD_E_MAX,
};

static const char *const ld_err_names[LD_E_MAX] = {
	"refused", "timeout", "handshake_timeout", "address", "tls", "http_status", "handshake_eof",
	"ws_close", "server_eof", "reset", "protocol", "other",
};

enum ld_phase { LD_PH_RAMP = 0, LD_PH_HOLD, LD_PH_STOP };

struct ld_ctl {
	int phase;                 /* enum ld_phase */
	int snap_req;              /* step to count (-1 none) */
	int churn_on;
	int pad;
	uint64_t settle_ns;
	uint64_t hard_deadline_ns; /* workers exit by then whatever happens */
	uint64_t step_start_ns[LD_MAX_STEPS];
	uint64_t step_end_ns[LD_MAX_STEPS];
};

struct ld_step {
	uint64_t clients;          /* eligible: open, reading, subscribed before the step */
	uint64_t expected;         /* messages those clients should have received */
	uint64_t received;         /* unique messages of the step they received by the count */
	uint64_t all_received;     /* unique messages of the step received by any client */
	uint64_t dups;
	uint64_t gaps;             /* messages a client missed: skipped between two it
	                            * received, or not received after its last by the count */
	uint64_t late;             /* arrived after the step was counted */
	uint64_t misrouted;        /* a payload of another stream */
	uint64_t dropped;          /* eligible clients that ended before the count */
	struct ld_hist lat;        /* publish -> receive, microseconds */
};

#define LD_CLOSE_CODES 16      /* close codes 1000..1015; others in the last */

struct ld_wstats {
	int state;                 /* 0 starting, 1 running, 2 done */
	int snap_done;             /* last step counted (-1 none) */
	uint64_t clients;          /* assigned to this worker */
	uint64_t attempts;         /* connects started */
	uint64_t open_now;         /* WebSocket open right now */
	uint64_t pending;          /* handshakes in flight */
	uint64_t opened;           /* ever opened */
	uint64_t closed;           /* open connections that ended (any reason) */
	uint64_t churned;          /* closed by us for churn */
	uint64_t resumed;          /* TLS sessions resumed */
	uint64_t err[LD_E_MAX];
	uint64_t http_status[6];   /* by class: 1xx(not 101) 2xx 3xx 4xx 5xx other */
	uint64_t http_last;        /* last status that was not 101 */
	uint64_t close_code[LD_CLOSE_CODES + 1];
	uint64_t recv_msgs, recv_bytes, foreign, pings;
	uint64_t nobufs;           /* receive buffer ring ran dry */
	uint64_t ack_ring, ack_call; /* --ack-on-read flushes: socket commands, setsockopt calls */
	uint64_t slow_total, slow_cut;
	struct ld_hist hs;         /* connect -> open, microseconds */
	struct ld_hist lat;        /* all latencies, microseconds */
	struct ld_step steps[LD_MAX_STEPS];
};

/* The mapping: ctl, then one ld_wstats per worker, then the publish counts
 * published[step * streams + stream] (uint32). */
struct ld_shared {
	struct ld_ctl *ctl;
	struct ld_wstats *w;
	uint32_t *published;
	void *base;
	size_t size;
};

/* Maps the shared region for `workers` and `streams`. Returns 0 or -errno. */
int ld_shared_map(struct ld_shared *sh, unsigned workers, unsigned streams);
void ld_shared_unmap(struct ld_shared *sh);

#define ld_load(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define ld_store(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)

#endif
