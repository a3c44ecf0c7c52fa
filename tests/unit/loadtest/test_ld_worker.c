#include <criterion/criterion.h>
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

/* One message server -> client; returns true when it went as expected:
 * unacknowledged on arrival exactly when held, acknowledged after the
 * client's read (and flush, when held). */
static bool one_message(int server, int client, bool held)
{
	char c = 'x', got;
	bool ok;

	cr_assert_eq(send(server, &c, 1, 0), 1);
	ok = unacked(server) == (held ? 1u : 0u);
	cr_assert_eq(recv(client, &got, 1, 0), 1);
	if (held)
		ld_ack_flush(client);
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
		plain_ok = plain_ok || one_message(s1, c1, false);
		held_ok = held_ok || (one_message(s2, c2, true) && one_message(s2, c2, true));
		close(s1), close(c1), close(s2), close(c2);
	}
	cr_assert(plain_ok, "a plain socket did not acknowledge at once");
	cr_assert(held_ok, "a held socket acknowledged on arrival, or the flush did not");
}
