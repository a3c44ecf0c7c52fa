/* cm_admin — a tiny HTTP/1.1 server for the operators' endpoints (/metrics,
 * /healthz, /readyz, /api/gateways, the dashboard page), running on a
 * cm_loop with completion kind CM_K_ADMIN.
 *
 * One request per connection: the head is read (at most CM_HTTP_MAX_HEAD
 * bytes, else 431), routed by exact path (the query is ignored for
 * matching), answered with Connection: close, and the connection closed.
 * GET and HEAD only (405 with Allow otherwise), 404 for unknown paths. At
 * most CM_ADMIN_MAX_CONNS connections at once (more are closed at once);
 * each has a deadline (5 s unless set otherwise) for the whole exchange.
 * Several servers may share a loop. Everything runs on the loop's thread. */
#ifndef CM_ADMIN_H
#define CM_ADMIN_H

#include <stdint.h>

#include "cm_buf.h"
#include "cm_http.h"
#include "cm_loop.h"

#define CM_ADMIN_MAX_CONNS 128
#define CM_ADMIN_TIMEOUT_MS 5000

struct cm_admin;

/* A route handler: appends the response body to `body` (empty on entry),
 * may set *content_type (a string that outlives the call; the default is
 * "text/plain; charset=utf-8") and returns the HTTP status (100..599, else
 * 500 is sent). `req` and its strings are valid during the call only. For
 * HEAD the body is computed but only its length is sent. */
typedef int (*cm_admin_fn)(void *arg, const struct cm_http_req *req, struct cm_buf *body,
			   const char **content_type);

/* Listens on host:port (port 0: any free port; no SO_REUSEPORT) and serves
 * on `loop`. Returns the server, or NULL with *err = -errno when the socket
 * cannot be set up. Call on the loop's thread, or before the loop runs. */
struct cm_admin *cm_admin_start(struct cm_loop *loop, const char *host, int port, int *err);

/* The port the server listens on (the one chosen when started with 0). */
int cm_admin_port(const struct cm_admin *a);

/* Routes requests for exactly `path` (e.g. "/metrics") to fn(arg, ...).
 * Registering a path again replaces its handler. path is copied. */
void cm_admin_route(struct cm_admin *a, const char *path, cm_admin_fn fn, void *arg);

/* Sets the per-connection deadline (from accept to the last byte sent) for
 * connections accepted from now on. ms > 0. */
void cm_admin_set_timeout(struct cm_admin *a, uint64_t ms);

/* Connections open or still being closed (the current one included when
 * called from a handler). */
unsigned cm_admin_nconns(const struct cm_admin *a);

/* Closes the listener and every connection; `a` must not be used after.
 * Memory is freed once the kernel has released every operation, which takes
 * the loop running a turn or two more. */
void cm_admin_stop(struct cm_admin *a);

/* cm_admin_stop(), then done(arg) on the loop once all memory is freed
 * (e.g. a wrapper around cm_loop_stop() for a clean exit). done may be
 * NULL. */
void cm_admin_stop_then(struct cm_admin *a, cm_fn done, void *arg);

#endif
