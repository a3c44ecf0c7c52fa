#include "cm_redis.h"
#include "cm_log.h"
#include "cm_loop.h"

#include <errno.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/sds.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

/* How many 16 KiB hiredis reads one readiness event may run before the rest
 * is left to a level-triggered one-shot poll (fairness to other work). */
#define CM_REDIS_READS_PER_EVENT 64
#define CM_REDIS_BACKOFF_MIN 100
#define CM_REDIS_BACKOFF_MAX 1000
/* A connect(2) that neither succeeds nor fails (a silent host) is given up. */
#define CM_REDIS_CONNECT_TIMEOUT 2000

/* ------------------------------------------------------------------ adapter */

struct cm_redis_ev {
	struct cm_loop *loop;
	redisAsyncContext *ac;
	int fd;
	struct cm_poll *rpoll;  /* multishot POLLIN while hiredis wants reads */
	struct cm_poll *wpoll;  /* one-shot POLLOUT, NULL once fired */
	struct cm_poll *kick;   /* one-shot POLLIN when a read event left data */
	bool dead;              /* hiredis cleaned up; memory goes after the turn */
	bool noreply;           /* CLIENT REPLY OFF: whatever arrives is dropped */
	bool warned;            /* the first dropped reply was logged */
	uint64_t *dropped;      /* the client's count of dropped bytes, or NULL */
	const char *name;       /* the client's name, for the log */
};

static void ev_on_read(void *arg, int revents);

static void ev_on_kick(void *arg, int revents)
{
	struct cm_redis_ev *ev = arg;
	ev->kick = NULL; /* one-shot: finished */
	if (!ev->dead)
		ev_on_read(ev, revents);
}

/* A reply-off connection expects nothing but its end. A server that
 * answers anyway (one without CLIENT REPLY) must not reach hiredis, which
 * holds no callback for it and would abort: the bytes are dropped here, and
 * hiredis sees only the end of the connection. */
static bool ev_drop_input(struct cm_redis_ev *ev)
{
	char buf[4096];

	for (int i = 0; i < CM_REDIS_READS_PER_EVENT; i++) {
		ssize_t n = recv(ev->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n > 0) {
			if (!ev->warned) {
				ev->warned = true;
				int m = 0; /* its first line, at most 80 bytes */
				while (m < n && m < 80 && buf[m] != '\r' && buf[m] != '\n')
					m++;
				cm_warn("redis %s: a reply on a connection with replies off (no CLIENT "
					"REPLY on this server?): %.*s", ev->name ? ev->name : "", m, buf);
			}
			if (ev->dropped)
				*ev->dropped += (uint64_t)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return true;
		return false; /* the end, or an error: hiredis reads it and disconnects */
	}
	if (!ev->kick)
		ev->kick = cm_poll_start(ev->loop, ev->fd, POLLIN, false, ev_on_kick, ev);
	return true;
}

static void ev_on_read(void *arg, int revents)
{
	struct cm_redis_ev *ev = arg;
	(void)revents;

	if (ev->noreply && ev_drop_input(ev))
		return;

	/* io_uring's multishot poll reports new readiness, not a level: hiredis
	 * reads at most 16 KiB per call, so keep reading while bytes wait, and
	 * also when the end of the stream (or an error) waits behind them: it
	 * may have come with the bytes in one event, or before the watcher was
	 * armed, and no later event would tell. A one-byte peek tells the
	 * three apart (FIONREAD says 0 for both "nothing" and "the end"). */
	for (int i = 0; i < CM_REDIS_READS_PER_EVENT; i++) {
		char b;
		redisAsyncHandleRead(ev->ac);
		if (ev->dead || !ev->rpoll)
			return;
		if (recv(ev->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) < 0 &&
		    (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
	}
	if (!ev->kick)
		ev->kick = cm_poll_start(ev->loop, ev->fd, POLLIN, false, ev_on_kick, ev);
}

static void ev_on_write(void *arg, int revents)
{
	struct cm_redis_ev *ev = arg;
	(void)revents;
	ev->wpoll = NULL; /* one-shot: finished, hiredis may re-arm below */
	if (!ev->dead)
		redisAsyncHandleWrite(ev->ac);
}

static void ev_add_read(void *privdata)
{
	struct cm_redis_ev *ev = privdata;
	if (!ev->rpoll && !ev->dead)
		ev->rpoll = cm_poll_start(ev->loop, ev->fd, POLLIN, true, ev_on_read, ev);
}

static void ev_del_read(void *privdata)
{
	struct cm_redis_ev *ev = privdata;
	if (ev->rpoll) {
		cm_poll_stop(ev->rpoll);
		ev->rpoll = NULL;
	}
	if (ev->kick) {
		cm_poll_stop(ev->kick);
		ev->kick = NULL;
	}
}

static void ev_add_write(void *privdata)
{
	struct cm_redis_ev *ev = privdata;
	if (!ev->wpoll && !ev->dead)
		ev->wpoll = cm_poll_start(ev->loop, ev->fd, POLLOUT, false, ev_on_write, ev);
}

static void ev_del_write(void *privdata)
{
	struct cm_redis_ev *ev = privdata;
	if (ev->wpoll) {
		cm_poll_stop(ev->wpoll);
		ev->wpoll = NULL;
	}
}

static void ev_cleanup(void *privdata)
{
	struct cm_redis_ev *ev = privdata;
	ev_del_read(ev);
	ev_del_write(ev);
	/* We may be inside one of our own poll callbacks: free after the turn. */
	ev->dead = true;
	ev->ac = NULL;
	cm_loop_defer(ev->loop, free, ev);
}

int cm_redis_attach(struct cm_loop *loop, redisAsyncContext *ac)
{
	struct cm_redis_ev *ev;

	if (ac->ev.data)
		return -EEXIST;
	ev = cm_xcalloc(1, sizeof(*ev));
	ev->loop = loop;
	ev->ac = ac;
	ev->fd = ac->c.fd;
	ac->ev.addRead = ev_add_read;
	ac->ev.delRead = ev_del_read;
	ac->ev.addWrite = ev_add_write;
	ac->ev.delWrite = ev_del_write;
	ac->ev.cleanup = ev_cleanup;
	ac->ev.data = ev;
	return 0;
}

/* ------------------------------------------------------------------- client */

struct cm_redis {
	struct cm_loop *loop;
	char *host, *name;
	int port;
	struct cm_redis_cbs cbs;
	void *arg;
	redisAsyncContext *ac;  /* connecting or connected */
	bool up, freeing, failing;
	unsigned backoff;
	struct cm_timer *retry, *ctimer;
	uint64_t connects;
	uint64_t dropped;       /* reply bytes dropped on reply-off connections */
};

static void cl_connect(struct cm_redis *r);

static void cl_retry_fire(void *arg)
{
	struct cm_redis *r = arg;
	r->retry = NULL; /* one-shot timer: finished */
	cl_connect(r);
}

static void cl_schedule(struct cm_redis *r)
{
	if (r->freeing || r->retry)
		return;
	r->retry = cm_timer_start(r->loop, r->backoff, false, cl_retry_fire, r);
	r->backoff *= 2;
	if (r->backoff > CM_REDIS_BACKOFF_MAX)
		r->backoff = CM_REDIS_BACKOFF_MAX;
}

static void cl_fail(struct cm_redis *r, const char *why)
{
	/* Log the first failure of a run, not every retry. */
	if (!r->failing)
		cm_warn("redis %s %s:%d: %s; retrying", r->name, r->host, r->port, why);
	r->failing = true;
	cl_schedule(r);
}

static void cl_connect_timeout(void *arg)
{
	struct cm_redis *r = arg;
	redisAsyncContext *ac = r->ac;

	r->ctimer = NULL; /* one-shot: finished */
	if (!ac || r->up)
		return;
	r->ac = NULL;
	redisAsyncFree(ac); /* not connected: no disconnect callback */
	cl_fail(r, "connect timed out");
}

static void cl_on_connect(const redisAsyncContext *ac, int status)
{
	struct cm_redis *r = ac->data;

	if (r->ctimer) {
		cm_timer_stop(r->ctimer);
		r->ctimer = NULL;
	}

	if (status != REDIS_OK) {
		/* hiredis frees the context after this returns. */
		r->ac = NULL;
		cl_fail(r, ac->errstr[0] ? ac->errstr : "connect failed");
		return;
	}
	/* Half-open connections (a vanished Redis host) end within a minute. */
	redisEnableKeepAlive((redisContext *)&ac->c);
	r->up = true;
	r->failing = false;
	r->backoff = CM_REDIS_BACKOFF_MIN;
	if (r->connects++)
		cm_info("redis %s %s:%d: reconnected", r->name, r->host, r->port);
	r->cbs.up(r->arg, r->ac);
}

static void cl_on_disconnect(const redisAsyncContext *ac, int status)
{
	struct cm_redis *r = ac->data;
	bool was_up = r->up;

	r->ac = NULL;
	r->up = false;
	if (r->freeing)
		return;
	if (status != REDIS_OK)
		cl_fail(r, ac->errstr[0] ? ac->errstr : "connection lost");
	else
		cl_schedule(r);
	if (was_up && r->cbs.down)
		r->cbs.down(r->arg);
}

static void cl_connect(struct cm_redis *r)
{
	redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
	struct cm_redis_ev *ev;

	if (!ac) {
		cl_fail(r, "out of memory");
		return;
	}
	if (ac->err) {
		char why[128];
		snprintf(why, sizeof(why), "%s", ac->errstr);
		redisAsyncFree(ac);
		cl_fail(r, why);
		return;
	}
	ac->data = r;
	CM_ASSERT(cm_redis_attach(r->loop, ac) == 0);
	ev = ac->ev.data;
	ev->dropped = &r->dropped;
	ev->name = r->name;
	redisAsyncSetConnectCallback(ac, cl_on_connect);
	redisAsyncSetDisconnectCallback(ac, cl_on_disconnect);
	r->ac = ac;
	/* hiredis 0.14 learns that connect(2) finished on the first write
	 * event: wait for writability now. */
	ac->ev.addWrite(ac->ev.data);
	r->ctimer = cm_timer_start(r->loop, CM_REDIS_CONNECT_TIMEOUT, false, cl_connect_timeout, r);
}

struct cm_redis *cm_redis_new(struct cm_loop *loop, const char *host, int port,
			      const char *name, const struct cm_redis_cbs *cbs, void *arg)
{
	struct cm_redis *r = cm_xcalloc(1, sizeof(*r));

	r->loop = loop;
	r->host = cm_xstrndup(host, strlen(host));
	r->name = cm_xstrndup(name, strlen(name));
	r->port = port;
	r->cbs = *cbs;
	r->arg = arg;
	r->backoff = CM_REDIS_BACKOFF_MIN;
	cl_connect(r);
	return r;
}

void cm_redis_free(struct cm_redis *r)
{
	if (!r)
		return;
	r->freeing = true;
	if (r->retry)
		cm_timer_stop(r->retry);
	if (r->ctimer)
		cm_timer_stop(r->ctimer);
	if (r->ac)
		redisAsyncFree(r->ac);
	free(r->host);
	free(r->name);
	free(r);
}

struct redisAsyncContext *cm_redis_ctx(const struct cm_redis *r)
{
	return r->up ? r->ac : NULL;
}

bool cm_redis_up(const struct cm_redis *r)
{
	return r->up;
}

uint64_t cm_redis_reconnects(const struct cm_redis *r)
{
	return r->connects ? r->connects - 1 : 0;
}

size_t cm_redis_pending(const struct redisAsyncContext *ac)
{
	return ac->c.obuf ? sdslen(ac->c.obuf) : 0;
}

int cm_redis_send_noreply(redisAsyncContext *ac, const char *cmd, size_t len)
{
	if (ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING))
		return -ENOTCONN;
	if (redisAppendFormattedCommand(&ac->c, cmd, len) != REDIS_OK)
		return -ENOMEM;
	/* what redisAsyncFormattedCommand does after queueing its callback */
	if (ac->ev.addWrite)
		ac->ev.addWrite(ac->ev.data);
	return 0;
}

int cm_redis_reply_off(redisAsyncContext *ac)
{
	static const char cmd[] = "*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$3\r\nOFF\r\n";
	struct cm_redis_ev *ev = ac->ev.data;

	if (!ev || ac->ev.addRead != ev_add_read)
		return -EINVAL; /* not on a cm_loop */
	ev->noreply = true;
	return cm_redis_send_noreply(ac, cmd, sizeof(cmd) - 1);
}

uint64_t cm_redis_dropped(const struct cm_redis *r)
{
	return r->dropped;
}
