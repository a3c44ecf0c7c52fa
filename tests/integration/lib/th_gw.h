/* th_gw — starting a real herald-gateway for a test.
 *
 * th_gw_start picks free ports, runs $HERALD_BUILD/herald-gateway with
 * --listen/--admin on loopback (and --tls-listen with a generated cert when
 * asked), standalone (--redis none) unless a Redis port is given, and waits
 * until the listener accepts and /readyz answers 200. */
#ifndef TH_GW_H
#define TH_GW_H

#include <stdbool.h>

#include "th_proc.h"

struct th_gw_opts {
	int redis_port;            /* 0: --redis none (standalone) */
	const char *auth;          /* "none" (default) or "jwt" */
	const char *jwt_secret;    /* written to a file for --jwt-secret-file */
	const char *tls_cert_kind; /* NULL: no TLS listener; "ec" or "rsa" */
	int threads;               /* default 2 */
	const char *id;            /* --id */
	int port;                  /* plain listener port (0: a free one) */
	const char *extra[24];     /* more flags, NULL-terminated */
	int nofile;                /* >0: run under `prlimit --nofile=N:N` */
};

struct th_gw {
	struct th_proc *proc;
	int port;                  /* plain listener */
	int tls_port;              /* 0 without TLS */
	int admin_port;
};

/* Starts a gateway; asserts it came up within 15 s (prints its log if not). */
void th_gw_start(struct th_gw *gw, const struct th_gw_opts *o);

/* SIGTERM and wait; returns the exit code (0 after a clean drain; under
 * ASan a leak or error makes it non-zero). */
int th_gw_stop(struct th_gw *gw, int timeout_ms);

/* A metric from the gateway's /metrics summed over labels containing
 * label_sub (NULL: all); -1 when absent. */
double th_gw_metric(const struct th_gw *gw, const char *name, const char *label_sub);

#endif
