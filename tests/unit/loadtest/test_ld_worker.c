#include <criterion/criterion.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loadtest/ld_worker.h"

Test(ld_worker, slow_share_matches_the_percentage)
{
	struct ld_opts o = { 0 };
	unsigned n = 0;

	o.slow_pct = 10;
	for (uint64_t g = 0; g < 100000; g++)
		n += ld_client_is_slow(&o, g);
	cr_assert(n > 9500 && n < 10500, "n=%u", n);
	o.slow_pct = 0;
	for (uint64_t g = 0; g < 1000; g++)
		cr_assert_not(ld_client_is_slow(&o, g));
}

Test(ld_worker, slow_clients_spread_over_streams)
{
	struct ld_opts o = { 0 };
	unsigned per_stream[200] = { 0 };

	o.slow_pct = 10;
	for (uint64_t g = 0; g < 20000; g++)
		if (ld_client_is_slow(&o, g))
			per_stream[g % 200]++;
	for (int s = 0; s < 200; s++)
		cr_assert(per_stream[s] < 40, "stream %d has %u slow of 100", s, per_stream[s]);
}

/* --ack-on-read against real loopback sockets: a held socket leaves the
 * data unacknowledged when it arrives (a plain one ACKs it at once), and
 * the flush after a read acknowledges it before the call returns. Loopback
 * delivers within the send; the rare run where softirq work is deferred is
 * retried. */
static void tcp_pair(int *server, int *client)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int one = 1, l = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert(l >= 0 && bind(l, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(l, 1) == 0);
	cr_assert_eq(getsockname(l, (struct sockaddr *)&a, &len), 0);
	*client = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_eq(connect(*client, (struct sockaddr *)&a, sizeof(a)), 0);
	*server = accept(l, NULL, NULL);
	cr_assert(*server >= 0);
	setsockopt(*server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	close(l);
}

static unsigned unacked(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	cr_assert_eq(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len), 0);
	return ti.tcpi_unacked;
}

/* How the client acknowledges after its read. */
enum flush { FLUSH_NONE, FLUSH_CALL, FLUSH_RING };

static struct io_uring test_ring;

/* ld_ack_prep's socket command on test_ring; its result (0, or -errno). */
static int ring_flush(int fd)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&test_ring);
	struct io_uring_cqe *cqe;
	int res;

	cr_assert_not_null(sqe);
	ld_ack_prep(sqe, fd);
	cr_assert_eq(io_uring_submit_and_wait(&test_ring, 1), 1);
	cr_assert_eq(io_uring_peek_cqe(&test_ring, &cqe), 0);
	res = cqe->res;
	io_uring_cqe_seen(&test_ring, cqe);
	return res;
}

/* One message server -> client; returns true when it went as expected:
 * unacknowledged on arrival exactly when held, acknowledged after the
 * client's read (and flush, when held). */
static bool one_message(int server, int client, bool held, enum flush how)
{
	char c = 'x', got;
	bool ok;

	cr_assert_eq(send(server, &c, 1, 0), 1);
	ok = unacked(server) == (held ? 1u : 0u);
	cr_assert_eq(recv(client, &got, 1, 0), 1);
	if (how == FLUSH_CALL) {
		ld_ack_flush(client);
	} else if (how == FLUSH_RING) {
		int res = ring_flush(client);
		if (res == -EOPNOTSUPP || res == -EINVAL)
			cr_skip_test("no setsockopt through io_uring on this kernel (%d)", res);
		cr_assert_eq(res, 0, "setsockopt through io_uring: %d", res);
	}
	return ok && unacked(server) == 0;
}

Test(ld_worker, ack_on_read_holds_the_ack_until_the_read)
{
	bool plain_ok = false, held_ok = false;

	for (int attempt = 0; attempt < 5 && !(plain_ok && held_ok); attempt++) {
		int s1, c1, s2, c2;

		tcp_pair(&s1, &c1);
		tcp_pair(&s2, &c2);
		ld_ack_hold(c2);
		/* the first data on a connection is what Linux ACKs at once */
		plain_ok = plain_ok || one_message(s1, c1, false, FLUSH_NONE);
		held_ok = held_ok || (one_message(s2, c2, true, FLUSH_CALL) &&
				      one_message(s2, c2, true, FLUSH_CALL));
		close(s1), close(c1), close(s2), close(c2);
	}
	cr_assert(plain_ok, "a plain socket did not acknowledge at once");
	cr_assert(held_ok, "a held socket acknowledged on arrival, or the flush did not");
}

/* The worker's flush rides its ring: the socket command must acknowledge
 * exactly as the call does, and leave the socket held for the next one. */
Test(ld_worker, ack_flush_through_the_ring_acknowledges_the_read)
{
	bool held_ok = false;

	cr_assert_eq(io_uring_queue_init(4, &test_ring, 0), 0);
	for (int attempt = 0; attempt < 5 && !held_ok; attempt++) {
		int s, c;

		tcp_pair(&s, &c);
		ld_ack_hold(c);
		held_ok = one_message(s, c, true, FLUSH_RING) && one_message(s, c, true, FLUSH_RING);
		close(s), close(c);
	}
	io_uring_queue_exit(&test_ring);
	cr_assert(held_ok, "a held socket acknowledged on arrival, or the ring's flush did not");
}
