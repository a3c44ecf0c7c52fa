/* th_ws — a blocking WebSocket client for integration tests, on plain
 * sockets or BoringSSL, independent of the gateway's own code paths: its
 * frame reader is its own (only the HTTP response parser, the accept key
 * and the client protocol codec come from common/).
 *
 * Every call that waits takes a timeout in milliseconds and polls with a
 * deadline. Frames the client sends are masked unless asked otherwise. */
#ifndef TH_WS_H
#define TH_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cm_client.h"

typedef struct ssl_session_st SSL_SESSION;
typedef struct ssl_st SSL;

struct th_ws_opts {
	int port;                  /* 127.0.0.1:port */
	const char *target;        /* path and query, e.g. "/ws?user=a"; default "/ws" */
	bool tls;
	const char *sni;           /* TLS server name; default "localhost" */
	int tls_version;           /* 0: any; TLS1_2_VERSION or TLS1_3_VERSION: only that */
	bool no_alpn;              /* do not offer ALPN http/1.1 */
	SSL_SESSION *session;      /* offer this session (resumption) */
	int rcvbuf;                /* SO_RCVBUF set before connect (0: default) */
	const char *ws_version;    /* Sec-WebSocket-Version; default "13" */
	const char *extra_headers; /* "Name: v\r\n" lines added to the request */
	int timeout_ms;            /* connect + handshake; default 5000 */
};

struct th_ws_msg {
	uint8_t opcode;            /* CM_WS_TEXT/BINARY (assembled), CLOSE, PING, PONG */
	uint8_t *data;             /* malloc'd, NUL-terminated; free with th_ws_msg_free */
	size_t len;
	uint16_t close_code;       /* CLOSE: the code (1005 when empty) */
};

struct th_push;

struct th_ws {
	int fd;
	SSL *ssl;
	enum cm_fmt fmt;
	int status;                /* HTTP status of the upgrade answer (0: none) */
	bool upgraded;             /* 101 with a correct Sec-WebSocket-Accept */
	bool session_reused;       /* TLS: the offered session was resumed */
	char alpn[32];             /* TLS: negotiated ALPN ("" when none) */
	int tls_version;           /* TLS: SSL_version() */
	char *resp;                /* the whole HTTP response head (+ body on refusal) */
	SSL_SESSION *session;      /* TLS: latest session received (owned) */
	/* input */
	uint8_t *in;
	size_t in_len, in_cap;
	uint8_t *frag;             /* data message being assembled */
	size_t frag_len;
	uint8_t frag_op;
	bool eof;                  /* the peer closed the TCP stream (or an error) */
	bool got_close;            /* a CLOSE frame was read */
	bool close_sent;           /* we sent a CLOSE frame */
	uint16_t close_code;       /* its code */
	char close_reason[128];
	/* pushes read while waiting for a reply */
	struct th_push *pushes, *pushes_tail;
	uint64_t next_id;
	bool auto_pong;            /* answer pings while waiting in helpers (default true) */
	uint64_t pings_seen;
};

/* TCP (+ TLS) connect only, no HTTP. NULL when the connection or the TLS
 * handshake failed (errno-ish reason printed to stderr). */
struct th_ws *th_ws_dial(const struct th_ws_opts *o);

/* Sends the upgrade request for target (and reads the answer); sets status
 * and upgraded. Returns the HTTP status or -1 on a connection failure. */
int th_ws_handshake(struct th_ws *ws, const struct th_ws_opts *o);

/* Reads an HTTP response head (+ body by Content-Length when not 101) into
 * ws->resp and returns the status, -1 on EOF/timeout. */
int th_ws_read_http(struct th_ws *ws, int timeout_ms);

/* dial + handshake. NULL only when the connection failed; check upgraded. */
struct th_ws *th_ws_connect(const struct th_ws_opts *o);

/* Convenience for tests: plain connection to port with target, format set
 * from "format=protobuf" in the target; asserts the upgrade succeeded. */
struct th_ws *th_ws_open(int port, const char *target);

/* Closes the socket and frees everything. NULL is fine. */
void th_ws_free(struct th_ws *ws);

/* Takes a reference to the latest session (for opts.session); NULL if none.
 * Free with SSL_SESSION_free. */
SSL_SESSION *th_ws_take_session(struct th_ws *ws);

/* Raw bytes to the connection (through TLS when on). 0 or -1. */
int th_ws_send_raw(struct th_ws *ws, const void *p, size_t n);

/* One frame: masked with a random key unless !masked; rsv is the 3 RSV bits. */
int th_ws_send_frame_ex(struct th_ws *ws, uint8_t opcode, bool fin, bool masked, uint8_t rsv,
			const void *data, size_t len);
int th_ws_send_frame(struct th_ws *ws, uint8_t opcode, bool fin, const void *data, size_t len);
int th_ws_send_text(struct th_ws *ws, const char *s);
int th_ws_send_binary(struct th_ws *ws, const void *p, size_t n);
/* A CLOSE frame with code (0: empty payload) and reason. */
int th_ws_send_close(struct th_ws *ws, uint16_t code, const char *reason);

/* Reads one frame or assembled message. Returns 1 with *m filled, 0 on
 * timeout, -1 when the connection ended (eof) or a protocol violation by the
 * server (printed). A CLOSE frame is returned (and sets got_close). */
int th_ws_read(struct th_ws *ws, struct th_ws_msg *m, int timeout_ms);
void th_ws_msg_free(struct th_ws_msg *m);

/* Reads until a CLOSE frame arrives (skipping others, answering pings),
 * echoes it unless we sent one, and returns its code; -1 when the connection ended without one, 0 on timeout. */
int th_ws_wait_close(struct th_ws *ws, int timeout_ms);

/* Waits until the TCP stream ends (after a close). true when it did. */
bool th_ws_wait_eof(struct th_ws *ws, int timeout_ms);

/* --- client protocol (ws->fmt) --- */

/* Sends a command with a fresh id and waits for the reply with that id;
 * pushes read meanwhile are queued for th_ws_next_push. Returns the reply
 * code (0 ok, else the error code) and, when reply is not NULL, the decoded
 * reply (release with cm_smsg_release); -1 on timeout or connection end. */
int th_ws_command(struct th_ws *ws, enum cm_cmd_kind kind, const char *stream,
		  const void *data, size_t len, struct cm_smsg *reply, int timeout_ms);

/* The two halves, for pipelining: send a command (returns its id, -1 on a
 * send failure), and wait for the reply with that id (as th_ws_command). */
int64_t th_ws_send_command(struct th_ws *ws, enum cm_cmd_kind kind, const char *stream,
			   const void *data, size_t len);
int th_ws_wait_reply(struct th_ws *ws, uint64_t id, struct cm_smsg *reply, int timeout_ms);

/* Subscribe/unsubscribe/publish and wait (5 s, 10 s for publish): reply code. */
int th_ws_subscribe(struct th_ws *ws, const char *stream);
int th_ws_unsubscribe(struct th_ws *ws, const char *stream);
int th_ws_publish(struct th_ws *ws, const char *stream, const void *data, size_t len);

/* Sends a raw message (text in JSON, binary in protobuf) and waits for the
 * next reply (any id): returns its code and fills *reply. For malformed
 * commands. */
int th_ws_raw_command(struct th_ws *ws, const void *msg, size_t len, struct cm_smsg *reply,
		      int timeout_ms);

/* Next push (queued first, then read). 1 with *m (release with
 * cm_smsg_release), 0 on timeout, -1 on connection end. A reply arriving
 * instead is an error (-2). */
int th_ws_next_push(struct th_ws *ws, struct cm_smsg *m, int timeout_ms);

/* Asserts that the next push (within 5 s) is on stream, with offset and
 * exactly the len bytes at data. */
void th_ws_expect_push(struct th_ws *ws, const char *stream, uint64_t offset, const void *data,
		       size_t len);

/* Asserts that no push arrives within ms. */
void th_ws_expect_no_push(struct th_ws *ws, int ms);

/* Publishes count messages of size bytes on stream through pub (each filled
 * with its own letter and numbered), and asserts that `reader` gets every
 * one of them in order, complete, before the next is published: a client
 * that keeps up while another one on the stream does not. */
void th_ws_flood(struct th_ws *pub, struct th_ws *reader, const char *stream, size_t size,
		 int count);

/* The clients of a flood on stream "flood": nslow (1 or 2) that never read,
 * with 4 KiB receive buffers ("slow", or "slow1" and "slow2"; the last one
 * over TLS on tls_port when tls_port > 0), one that keeps up ("fast") and
 * a publisher ("pub") that is not subscribed. */
void th_ws_flood_clients(int port, int tls_port, int nslow, struct th_ws **slow,
			 struct th_ws **fast, struct th_ws **pub);

/* Next data message as raw bytes (pushes queued by helpers are not
 * included). Skips pings (answering) and pongs. 1/0/-1 as th_ws_read. */
int th_ws_next_data(struct th_ws *ws, struct th_ws_msg *m, int timeout_ms);

/* --- JWT --- */

/* HS256 token for sub expiring at exp (seconds since the epoch); static
 * buffer valid until the next call. */
const char *th_jwt(const char *sub, int64_t exp, const char *secret);

#endif
