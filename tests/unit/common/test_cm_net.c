#include <criterion/criterion.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cm_net.h"

/* The ACK flush of --ack-on-read, against real loopback sockets: a held
 * socket leaves the data unacknowledged when it arrives (a plain one ACKs
 * it at once), and the flush after a read acknowledges it before the call
 * (or the submit) returns. Loopback delivers within the send; the rare run
 * where softirq work is deferred is retried. */
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

#define ACK_UD 7

static struct io_uring test_ring;

/* The flush on test_ring: a success completes nothing, a failure completes
 * with its result. Returns 0 or the failure. */
static int ring_flush(struct cm_ack_flusher *f, int fd)
{
	struct io_uring_cqe *cqe;
	int res;

	cr_assert(cm_ack_flush(f, io_uring_get_sqe(&test_ring), fd, ACK_UD));
	cr_assert_eq(io_uring_submit(&test_ring), 1);
	if (io_uring_peek_cqe(&test_ring, &cqe) != 0)
		return 0;
	cr_assert_eq(cqe->user_data, ACK_UD);
	res = cqe->res;
	io_uring_cqe_seen(&test_ring, cqe);
	cr_assert_neq(res, 0, "a successful flush completed");
	return res;
}

/* How the client acknowledges after its read. */
enum flush { FLUSH_NONE, FLUSH_CALL, FLUSH_RING };

/* One message server -> client; returns true when it went as expected:
 * unacknowledged on arrival exactly when held, acknowledged after the
 * client's read (and flush, when held). */
static bool one_message(struct cm_ack_flusher *f, int server, int client, bool held, enum flush how)
{
	char c = 'x', got;
	bool ok;

	cr_assert_eq(send(server, &c, 1, 0), 1);
	ok = unacked(server) == (held ? 1u : 0u);
	cr_assert_eq(recv(client, &got, 1, 0), 1);
	if (how == FLUSH_CALL) {
		cr_assert_not(cm_ack_flush(f, NULL, client, ACK_UD));
	} else if (how == FLUSH_RING) {
		int res = ring_flush(f, client);
		if (cm_ack_flush_failed(f, res))
			cr_skip_test("no setsockopt through io_uring on this kernel (%d)", res);
		cr_assert_eq(res, 0, "setsockopt through io_uring: %d", res);
	}
	return ok && unacked(server) == 0;
}

Test(cm_net, ack_hold_keeps_the_ack_until_the_flush)
{
	struct cm_ack_flusher f;
	bool plain_ok = false, held_ok = false;

	cm_ack_flusher_init(&f);
	for (int attempt = 0; attempt < 5 && !(plain_ok && held_ok); attempt++) {
		int s1, c1, s2, c2;

		tcp_pair(&s1, &c1);
		tcp_pair(&s2, &c2);
		cm_ack_hold(c2);
		/* the first data on a connection is what Linux ACKs at once */
		plain_ok = plain_ok || one_message(&f, s1, c1, false, FLUSH_NONE);
		held_ok = held_ok || (one_message(&f, s2, c2, true, FLUSH_CALL) &&
				      one_message(&f, s2, c2, true, FLUSH_CALL));
		close(s1), close(c1), close(s2), close(c2);
	}
	cr_assert(plain_ok, "a plain socket did not acknowledge at once");
	cr_assert(held_ok, "a held socket acknowledged on arrival, or the flush did not");
	cr_assert_eq(f.via_ring, 0);
	cr_assert_geq(f.via_call, 2);
}

/* The socket command must acknowledge exactly as the call does, and leave
 * the socket held for the next message. */
Test(cm_net, ack_flush_through_the_ring_acknowledges_the_read)
{
	struct cm_ack_flusher f;
	bool held_ok = false;

	cm_ack_flusher_init(&f);
	cr_assert_eq(io_uring_queue_init(4, &test_ring, 0), 0);
	for (int attempt = 0; attempt < 5 && !held_ok; attempt++) {
		int s, c;

		tcp_pair(&s, &c);
		cm_ack_hold(c);
		held_ok = one_message(&f, s, c, true, FLUSH_RING) && one_message(&f, s, c, true, FLUSH_RING);
		close(s), close(c);
	}
	io_uring_queue_exit(&test_ring);
	cr_assert(held_ok, "a held socket acknowledged on arrival, or the ring's flush did not");
	cr_assert_geq(f.via_ring, 2);
	cr_assert_eq(f.via_call, 0);
}

/* A kernel without socket commands answers the first flushes with
 * -EOPNOTSUPP (-EINVAL before 5.19): the flusher switches to setsockopt,
 * once, and its flushes still acknowledge. A socket closed under a queued
 * flush (-EBADF, -ENOTCONN) says nothing about the kernel. */
Test(cm_net, ack_flusher_falls_back_to_setsockopt_when_the_ring_refuses)
{
	struct cm_ack_flusher f;
	struct io_uring_sqe sqe, blank;
	bool held_ok = false;

	cm_ack_flusher_init(&f);
	cr_assert_not(cm_ack_flush_failed(&f, -EBADF));
	cr_assert_not(cm_ack_flush_failed(&f, -ENOTCONN));
	cr_assert(f.ring);
	cr_assert(cm_ack_flush_failed(&f, -EOPNOTSUPP));
	cr_assert_not(f.ring);
	cr_assert_not(cm_ack_flush_failed(&f, -EOPNOTSUPP), "the switch was reported twice");
	cr_assert_not(cm_ack_flush_failed(&f, -EINVAL));

	cm_ack_flusher_init(&f);
	cr_assert(cm_ack_flush_failed(&f, -EINVAL));

	memset(&sqe, 0, sizeof(sqe));
	memset(&blank, 0, sizeof(blank));
	for (int attempt = 0; attempt < 5 && !held_ok; attempt++) {
		char x = 'x', got;
		int s, c;

		tcp_pair(&s, &c);
		cm_ack_hold(c);
		cr_assert_eq(send(s, &x, 1, 0), 1);
		held_ok = unacked(s) == 1;
		cr_assert_eq(recv(c, &got, 1, 0), 1);
		cr_assert_not(cm_ack_flush(&f, &sqe, c, ACK_UD), "the flush went to the ring after the switch");
		held_ok = held_ok && unacked(s) == 0;
		close(s), close(c);
	}
	cr_assert(held_ok, "after the switch a flush did not acknowledge");
	cr_assert_eq(memcmp(&sqe, &blank, sizeof(sqe)), 0, "the flush wrote the SQE it did not use");
	cr_assert_eq(f.via_ring, 0);
	cr_assert_geq(f.via_call, 1);
}
