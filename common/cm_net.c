#include "cm_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

int cm_parse_hostport(const char *s, char *host, size_t host_cap, int *port)
{
	const char *colon, *h = s;
	size_t hl;
	char *end;
	long p;

	if (!s || !*s)
		return -EINVAL;
	if (*s == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb[1] != ':')
			return -EINVAL;
		h = s + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= host_cap)
		return -EINVAL;
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || p < 0 || p > 65535)
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = 0;
	*port = (int)p;
	return 0;
}

int cm_sockaddr(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (!strcmp(host, "localhost"))
		host = "127.0.0.1";
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		*len = sizeof(*in4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*in6);
		return 0;
	}
	return -EINVAL;
}

int cm_listen_tcp(const char *host, int port, bool reuseport, int backlog)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd, one = 1, err;

	if ((err = cm_sockaddr(host, port, &ss, &sl)) < 0)
		return err;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto err;
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, backlog) < 0)
		goto err;
	return fd;
err:
	err = -errno;
	close(fd);
	return err;
}

int cm_local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return -errno;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* The kernel's socket command (include/uapi/linux/io_uring.h, 6.7 onwards);
 * Debian 12's headers predate it. */
#define CM_SOCKET_URING_OP_SETSOCKOPT 3

void cm_prep_setsockopt(struct io_uring_sqe *sqe, int fd, int level, int optname, const int *val)
{
	/* the socket command's layout: level and optname share addr, optlen
	 * sits where file_index does, optval in addr3 */
	const uint32_t level_name[2] = { (uint32_t)level, (uint32_t)optname };

	io_uring_prep_rw(IORING_OP_URING_CMD, sqe, fd, NULL, 0, 0);
	sqe->cmd_op = CM_SOCKET_URING_OP_SETSOCKOPT;
	memcpy(&sqe->addr, level_name, sizeof(level_name));
	sqe->file_index = sizeof(*val);
	sqe->addr3 = (uint64_t)(uintptr_t)val;
}

/* TCP_QUICKACK's even values leave the socket in ping-pong mode afterwards;
 * 2 (odd bit clear, nonzero) flushes the pending ACK first. */
static const int ack_hold_val = 0, ack_flush_val = 2;

bool cm_fixed_files_safe(void)
{
	struct utsname u;
	unsigned major = 0, minor = 0;

	if (uname(&u) || sscanf(u.release, "%u.%u", &major, &minor) != 2)
		return false;
	return major > 6 || (major == 6 && minor >= 13);
}

void cm_ack_hold(int fd)
{
	setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &ack_hold_val, sizeof(ack_hold_val));
}

void cm_ack_flusher_init(struct cm_ack_flusher *f)
{
	*f = (struct cm_ack_flusher){ .ring = true };
}

bool cm_ack_flush(struct cm_ack_flusher *f, struct io_uring_sqe *sqe, int fd, uint64_t ud)
{
	if (!f->ring || !sqe) {
		setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &ack_flush_val, sizeof(ack_flush_val));
		f->via_call++;
		return false;
	}
	cm_prep_setsockopt(sqe, fd, IPPROTO_TCP, TCP_QUICKACK, &ack_flush_val);
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	io_uring_sqe_set_data64(sqe, ud);
	f->via_ring++;
	return true;
}

bool cm_ack_flush_failed(struct cm_ack_flusher *f, int res)
{
	if (!f->ring || (res != -EOPNOTSUPP && res != -EINVAL))
		return false;
	f->ring = false;
	return true;
}
