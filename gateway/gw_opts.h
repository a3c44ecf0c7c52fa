/* gw_opts — the gateway's command line: flags, their defaults, and the
 * client-publish policy. Parsing never exits: it returns a status and a
 * one-line error so that main decides (and tests can call it). */
#ifndef GW_OPTS_H
#define GW_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cm_log.h"

#define GW_MAX_THREADS 64
#define GW_HOST_MAX 256

enum gw_pub_policy { GW_PUB_ALL = 0, GW_PUB_NONE, GW_PUB_LIST };

struct gw_opts {
	bool has_listen, has_tls, has_admin, admin_explicit;
	char listen_host[GW_HOST_MAX];
	int listen_port;
	char tls_host[GW_HOST_MAX];
	int tls_port;
	char *cert, *key;
	unsigned threads;
	char id[GW_HOST_MAX];
	bool standalone;            /* --redis none */
	char redis_host[GW_HOST_MAX];
	int redis_port;
	char prefix[128];
	bool auth_jwt;
	uint8_t *jwt_secret;
	size_t jwt_secret_len;
	uint8_t *ticket_secret;     /* --tls-ticket-key-file (NULL: random keys) */
	size_t ticket_secret_len;
	uint32_t ticket_period_ms;  /* ticket key rotation period (default 1 h) */
	char admin_host[GW_HOST_MAX];
	int admin_port;
	uint32_t max_conns;
	uint32_t max_message;       /* bytes */
	uint32_t max_queued;        /* bytes */
	uint64_t max_queued_total;  /* bytes across the gateway's workers, 0: no limit */
	uint32_t sndbuf;            /* SO_SNDBUF of client sockets, 0: kernel autotuning */
	uint32_t ping_ms, idle_ms, handshake_ms, drain_ms;
	enum gw_pub_policy pub;
	char **pub_prefixes;
	unsigned npub_prefixes;
	uint32_t cmd_rate, cmd_burst; /* commands per second per connection */
	uint32_t max_subs;          /* subscriptions per connection */
	uint32_t recv_buffers, recv_buffer_size;
	enum gw_fixed { GW_FIXED_AUTO, GW_FIXED_ON, GW_FIXED_OFF } fixed_files;
	enum cm_log_level log_level;
};

/* Parses argv into o (defaults first). Returns 0 when the gateway should
 * run, 1 when --help was printed to stdout, -1 on a bad flag or value with a
 * one-line message in err. Reads --jwt-secret-file (or HERALD_JWT_SECRET). */
int gw_opts_parse(struct gw_opts *o, int argc, char **argv, char *err, size_t errcap);

/* Frees what gw_opts_parse allocated. */
void gw_opts_free(struct gw_opts *o);

/* True when a client may publish in-band to stream s (per --client-publish).
 * user:* and "*" are never allowed. */
bool gw_opts_may_publish(const struct gw_opts *o, const char *s, size_t n);

#endif
