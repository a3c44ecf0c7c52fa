/* cm_net — addresses and sockets. Calls return 0 / a descriptor, or -errno. */
#ifndef CM_NET_H
#define CM_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* Splits "HOST:PORT" ("[::1]:80" for IPv6). Returns 0 or -EINVAL. */
int cm_parse_hostport(const char *s, char *host, size_t host_cap, int *port);

/* Resolves a numeric host (or "localhost") and port into ss. */
int cm_sockaddr(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len);

/* A non-blocking listening TCP socket; reuseport sets SO_REUSEPORT so that
 * several threads and processes can share the port. */
int cm_listen_tcp(const char *host, int port, bool reuseport, int backlog);

/* The port a bound socket got (for port 0). */
int cm_local_port(int fd);

/* Prepares setsockopt(fd, level, optname, val, sizeof(int)) as an io_uring
 * socket command (IORING_OP_URING_CMD with SOCKET_URING_OP_SETSOCKOPT,
 * Linux 6.7), so that it rides a submit instead of costing a system call.
 * *val must stay valid until the SQE is submitted. An older kernel completes
 * it with -EOPNOTSUPP (or -EINVAL before 5.19): the caller falls back to
 * setsockopt. */
struct io_uring_sqe;
void cm_prep_setsockopt(struct io_uring_sqe *sqe, int fd, int level, int optname, const int *val);

#endif
