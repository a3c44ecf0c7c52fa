#include <criterion/criterion.h>

/* The publisher's static reply reader under test: its object is linked
 * into this test too, so its exported names are renamed here. */
#define ld_pub_connect test_ld_pub_connect
#define ld_pub_free test_ld_pub_free
#define ld_pub_step test_ld_pub_step
#define ld_pub_step_max_s test_ld_pub_step_max_s
#include "loadtest/ld_pub.c"

#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

/* The publishers' options: one stream, 1 KiB payloads. */
static const struct ld_opts *test_opts(void)
{
	static struct ld_opts o;

	o.payload = 1024;
	o.streams = 1;
	snprintf(o.redis_prefix, sizeof(o.redis_prefix), "herald");
	snprintf(o.stream_prefix, sizeof(o.stream_prefix), "s");
	return &o;
}

/* A publisher on one end of a socket pair with `outstanding` PUBLISH
 * commands sent; *redis is the end that plays Redis. */
static struct ld_pub *pub_pair(uint64_t outstanding, int *redis)
{
	struct ld_pub *p;
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	p = pub_new(redisConnectFd(sv[0]), test_opts());
	cr_assert(p->rc && !p->rc->err);
	p->outstanding = outstanding;
	*redis = sv[1];
	return p;
}

Test(ld_pub, collects_every_reply_of_the_step)
{
	struct ld_pub_result res = { 0 };
	int redis;
	struct ld_pub *p = pub_pair(3, &redis);

	cr_assert_eq(write(redis, ":1\r\n:2\r\n:0\r\n", 12), 12);
	cr_assert_eq(read_replies(p, &res, 1000), 0);
	cr_assert_eq(res.sent, 3);
	cr_assert_eq(res.receivers, 3);
	cr_assert_eq(res.unanswered, 0);
	cr_assert_eq(p->outstanding, 0);
	close(redis);
	test_ld_pub_free(p);
}

Test(ld_pub, fails_when_replies_are_still_missing_after_the_wait)
{
	struct ld_pub_result res = { 0 };
	int redis;
	struct ld_pub *p = pub_pair(3, &redis);

	/* Redis stalls after one reply: the other two must not be left for
	 * the next step to count as its own */
	cr_assert_eq(write(redis, ":1\r\n", 4), 4);
	cr_assert_eq(read_replies(p, &res, 50), -1);
	cr_assert_eq(res.sent, 1);
	cr_assert_eq(res.unanswered, 2);
	close(redis);
	test_ld_pub_free(p);
}

Test(ld_pub, does_not_wait_between_batches)
{
	struct ld_pub_result res = { 0 };
	int redis;
	struct ld_pub *p = pub_pair(2, &redis);

	cr_assert_eq(write(redis, ":1\r\n", 4), 4);
	cr_assert_eq(read_replies(p, &res, 0), 0);
	cr_assert_eq(res.sent, 1);
	cr_assert_eq(p->outstanding, 1);
	close(redis);
	test_ld_pub_free(p);
}

Test(ld_pub, bounds_a_step_by_its_worst_case)
{
	/* sending: the step's time plus as much again, at least 5 s; a write
	 * blocked up to the 10-s socket timeout; 10 s for the last replies */
	cr_assert_geq(test_ld_pub_step_max_s(10), 10 + 10 + 10 + 10);
	cr_assert_geq(test_ld_pub_step_max_s(1), 1 + 5 + 10 + 10);
}

/* A publisher over loopback TCP (a Unix socket's send timeout starts again
 * at every bit of progress; TCP's bounds the whole call, as with Redis). */
static struct ld_pub *tcp_pub(int *redis)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	struct ld_pub *p;
	int l = socket(AF_INET, SOCK_STREAM, 0), c = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert(l >= 0 && c >= 0 && bind(l, (struct sockaddr *)&a, sizeof(a)) == 0 &&
		  listen(l, 1) == 0 && getsockname(l, (struct sockaddr *)&a, &len) == 0);
	cr_assert_eq(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
	*redis = accept(l, NULL, NULL);
	cr_assert(*redis >= 0);
	close(l);
	p = pub_new(redisConnectFd(c), test_opts());
	cr_assert(p->rc && !p->rc->err);
	return p;
}

/* A Redis that takes a little of every write, never all of it: */
struct trickle {
	int fd;
	volatile int stop;
};

static void *trickle_reader(void *arg)
{
	struct trickle *t = arg;
	char buf[4096];

	while (!t->stop) {
		if (read(t->fd, buf, sizeof(buf)) <= 0)
			break;
		usleep(2000);
	}
	return NULL;
}

/* ... one batch is given up at the step's hard end, however long each
 * write makes a little progress: before, the write loop went on until the
 * whole batch was in (here, minutes), past the bound ld_pub_step_max_s
 * promises and the workers' deadline built on it. */
Test(ld_pub, a_batch_redis_takes_only_a_little_of_is_given_up_at_the_hard_end, .timeout = 20)
{
	struct ld_pub_result res = { 0 };
	uint32_t published[1] = { 0 };
	struct trickle t = { .stop = 0 };
	struct ld_pub *p;
	pthread_t th;
	uint64_t t0;
	int small = 4096;

	p = tcp_pub(&t.fd);
	setsockopt(p->rc->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	redisSetTimeout(p->rc, (struct timeval){ 0, 200000 });
	cr_assert_eq(pthread_create(&th, NULL, trickle_reader, &t), 0);

	t0 = ld_now_ns();
	/* 40000 messages of 1 KiB: about 40 MB at at most 2 MB/s (without the
	 * bound this runs into the test's timeout) */
	cr_assert_eq(publish_batch(p, test_opts(), 0, 40000, t0 + 300000000ULL, published, &res), -1);
	t.stop = 1;
	shutdown(t.fd, SHUT_RDWR);
	pthread_join(th, NULL);
	close(t.fd);
	test_ld_pub_free(p);
}
