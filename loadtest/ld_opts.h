/* ld_opts — herald-load's command line: scenarios, targets, rates. Parsing
 * never exits by itself: it returns an error message the caller prints. */
#ifndef LD_OPTS_H
#define LD_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#define LD_MAX_TARGETS 64
#define LD_MAX_SOURCES 64
#define LD_MAX_STEPS 24
#define LD_MAX_STREAMS 1000000

enum ld_scenario {
	LD_SC_CONNECT,   /* hold N connections for --duration */
	LD_SC_FANOUT,    /* N clients over S streams, publish at each rate */
	LD_SC_BROADCAST, /* fanout with one stream */
	LD_SC_CHURN,     /* hold N, closing and reopening --churn-rate per second */
	LD_SC_SLOW,      /* fanout where --slow-pct of the clients never read */
};

struct ld_target {
	char host[256];
	int port;
	char hostport[272];
	struct sockaddr_storage ss;
	socklen_t sslen;
};

struct ld_opts {
	enum ld_scenario scenario;
	struct ld_target targets[LD_MAX_TARGETS];
	unsigned ntargets;
	struct sockaddr_storage sources[LD_MAX_SOURCES];
	unsigned nsources;
	bool tls, tls_resume;
	unsigned clients, workers;
	double rate;              /* connects per second, total */
	unsigned max_pending;     /* handshakes in flight, total */
	unsigned streams;
	double rates[LD_MAX_STEPS]; /* publish rates, msgs/s, one step each */
	unsigned nrates;
	bool publish;             /* the scenario publishes */
	bool subscribe;           /* clients subscribe at connect (streams=) */
	double duration, drain, settle;
	unsigned payload;
	double slow_pct;
	double churn_rate;
	double connect_timeout, ramp_timeout;
	char redis_host[256];
	int redis_port;
	char redis_prefix[64];
	char stream_prefix[64];
	char user_prefix[64];
	bool protobuf;
	bool jwt;
	char *jwt_secret;         /* malloc'd bytes (no trailing newline) */
	size_t jwt_secret_len;
	bool until_fail;
	double max_p99_ms;
	char out_path[1024];
	char ready_file[1024];    /* created once the ramp is done */
	bool quiet;
	unsigned pipeline;        /* max PUBLISH commands per pipelined batch */
	unsigned batch, batch_us; /* a worker waits for batch completions or batch_us */
	bool ack_on_read;         /* ACK when the client reads, not from softirq */
	bool fixed_files;         /* sockets in the ring's file table (kernel 6.13+) */
	unsigned timeline_ms;     /* the JSON timeline's interval (1000) */
};

/* Fills defaults, parses argv, and checks the combination. Returns 0, 1
 * after printing --help (the caller exits 0), or -1 with a one-line reason
 * in err (the caller prints it and exits 2). */
int ld_opts_parse(struct ld_opts *o, int argc, char **argv, char *err, size_t errcap);

/* The usage text. */
void ld_opts_usage(FILE *out);

const char *ld_scenario_name(enum ld_scenario s);

#endif
