#include <criterion/criterion.h>

/* The publisher's static reply reader under test: its object is linked
 * into this test too, so its exported names are renamed here. */
#define ld_pub_connect test_ld_pub_connect
#define ld_pub_free test_ld_pub_free
#define ld_pub_step test_ld_pub_step
#define ld_pub_step_max_s test_ld_pub_step_max_s
#include "loadtest/ld_pub.c"

#include <sys/socket.h>
#include <unistd.h>

/* A publisher on one end of a socket pair with `outstanding` PUBLISH
 * commands sent; *redis is the end that plays Redis. */
static struct ld_pub *pub_pair(uint64_t outstanding, int *redis)
{
	struct ld_pub *p = cm_xcalloc(1, sizeof(*p));
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	p->rc = redisConnectFd(sv[0]);
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
