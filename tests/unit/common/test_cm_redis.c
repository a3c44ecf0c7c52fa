#include <criterion/criterion.h>
#include <hiredis/async.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cm_loop.h"
#include "cm_redis.h"

/* cm_redis against a fake server: it answers PING with +PONG and closes the
 * connection at once. The client must see both, the reply and then the
 * loss of the connection (down()), however the two reach it: in the same
 * turn, or already there when it starts reading (the second test; before,
 * the client read the bytes, found nothing more to read and left the end
 * unread until its next write or TCP keepalive). */
struct fake {
	struct cm_loop *loop;
	int lfd, sfd;
	struct cm_poll *lpoll, *spoll;
	char got[64];
	size_t n;
	bool pong, down, timed_out;
};

static void on_pong(redisAsyncContext *ac, void *reply, void *priv)
{
	struct fake *f = priv;
	redisReply *r = reply;
	(void)ac;

	if (r && r->type == REDIS_REPLY_STATUS && !strcmp(r->str, "PONG"))
		f->pong = true;
}

static void client_up(void *arg, redisAsyncContext *ac)
{
	redisAsyncCommand(ac, on_pong, arg, "PING");
}

static void client_down(void *arg)
{
	struct fake *f = arg;

	f->down = true;
	cm_loop_stop(f->loop);
}

static void server_read(void *arg, int revents)
{
	struct fake *f = arg;
	static const char ping[] = "*1\r\n$4\r\nPING\r\n";
	ssize_t k;
	(void)revents;

	k = read(f->sfd, f->got + f->n, sizeof(f->got) - 1 - f->n);
	if (k > 0)
		f->n += (size_t)k;
	if (f->n < sizeof(ping) - 1)
		return;
	cr_assert_eq(memcmp(f->got, ping, sizeof(ping) - 1), 0, "not a PING: %.*s", (int)f->n,
		     f->got);
	/* the answer and the end together */
	cr_assert_eq(write(f->sfd, "+PONG\r\n", 7), 7);
	cm_poll_stop(f->spoll);
	f->spoll = NULL;
	close(f->sfd);
	f->sfd = -1;
}

static void server_accept(void *arg, int revents)
{
	struct fake *f = arg;
	(void)revents;

	if (f->sfd >= 0)
		return; /* one connection: a reconnect would come after the test */
	f->sfd = accept(f->lfd, NULL, NULL);
	cr_assert(f->sfd >= 0);
	f->spoll = cm_poll_start(f->loop, f->sfd, POLLIN, true, server_read, f);
}

static void give_up(void *arg)
{
	struct fake *f = arg;

	f->timed_out = true;
	cm_loop_stop(f->loop);
}

Test(cm_redis, a_reply_and_the_end_of_the_connection_in_one_event_are_both_seen)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	struct fake f = { .sfd = -1 };
	const struct cm_redis_cbs cbs = { .up = client_up, .down = client_down };
	struct cm_timer *t;
	struct cm_redis *r;

	/* task work only when the loop waits: the two wake-ups make one event */
	f.loop = cm_loop_new_local(64);
	cr_assert(f.loop);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	f.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	cr_assert(f.lfd >= 0 && bind(f.lfd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
		  listen(f.lfd, 4) == 0);
	cr_assert_eq(getsockname(f.lfd, (struct sockaddr *)&a, &len), 0);
	f.lpoll = cm_poll_start(f.loop, f.lfd, POLLIN, true, server_accept, &f);

	r = cm_redis_new(f.loop, "127.0.0.1", ntohs(a.sin_port), "test", &cbs, &f);
	t = cm_timer_start(f.loop, 3000, false, give_up, &f);
	cm_loop_run(f.loop);

	cr_assert(f.pong, "the reply was not read");
	cr_assert(f.down, "the end of the connection went unnoticed for 3 s");
	cr_assert_not(f.timed_out);
	cm_timer_stop(t);
	cm_redis_free(r);
	cm_poll_stop(f.lpoll);
	close(f.lfd);
	cm_loop_free(f.loop);
}

/* The same when the server answered and closed before the client armed its
 * read watcher: the watcher starts on a socket whose bytes and end are
 * already there, and no later wake-up will come. The answer (+PONG) lands
 * as the reply to the client's first command. */
Test(cm_redis, an_answer_and_end_already_there_when_reading_starts_are_both_seen)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	struct fake f = { .sfd = -1 };
	const struct cm_redis_cbs cbs = { .up = client_up, .down = client_down };
	struct pollfd pfd;
	struct cm_timer *t;
	struct cm_redis *r;
	int fd;

	f.loop = cm_loop_new(64);
	cr_assert(f.loop);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	f.lfd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert(f.lfd >= 0 && bind(f.lfd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
		  listen(f.lfd, 4) == 0);
	cr_assert_eq(getsockname(f.lfd, (struct sockaddr *)&a, &len), 0);

	/* the connect starts at once; the server answers before the loop runs */
	r = cm_redis_new(f.loop, "127.0.0.1", ntohs(a.sin_port), "test", &cbs, &f);
	pfd = (struct pollfd){ .fd = f.lfd, .events = POLLIN };
	cr_assert_eq(poll(&pfd, 1, 3000), 1, "the client did not connect");
	fd = accept(f.lfd, NULL, NULL);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, "+PONG\r\n", 7), 7);
	close(fd);

	t = cm_timer_start(f.loop, 3000, false, give_up, &f);
	cm_loop_run(f.loop);

	cr_assert(f.pong, "the answer was not read");
	cr_assert(f.down, "the end of the connection went unnoticed for 3 s");
	cm_timer_stop(t);
	cm_redis_free(r);
	close(f.lfd);
	cm_loop_free(f.loop);
}
