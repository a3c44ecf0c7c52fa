/* ld_worker — one herald-load worker process: its share of the clients on
 * its own io_uring loop (cm_loop). Client k of worker w is the global client
 * g = w + k * workers: it connects to target g % targets, subscribes to
 * stream g % streams, and is a slow (never reading) client when the slow
 * share picks g. Connections are started at the worker's share of --rate,
 * with at most its share of --max-pending handshakes in flight.
 *
 * The worker reads its orders from the shared control block (phase, the step
 * to count) and writes only its own stats slot. */
#ifndef LD_WORKER_H
#define LD_WORKER_H

#include "ld_opts.h"
#include "ld_shared.h"

/* Runs worker idx until the control block says stop or the hard deadline
 * passes. Returns the process exit code (0, or 1 when it could not start). */
int ld_worker_run(const struct ld_opts *o, struct ld_shared *sh, unsigned idx);

/* --ack-on-read: the clients ACK when they read (cm_ack_hold, cm_ack_flush
 * in common/cm_net.h). An ACK sent at once from the receive path (Linux
 * does so after a gap longer than the RTO, 200 ms at least, which is every
 * message of a 200-stream fan-out below ~1000 msgs/s) would cost the
 * gateway's core, which loopback makes run that path, a transmit and a
 * receive per delivery that a real client's ACK never costs it. */

/* True when global client g is one of the slow clients (--slow-pct). */
bool ld_client_is_slow(const struct ld_opts *o, uint64_t g);

#endif
