/* cm_net — addresses and sockets. Calls return 0 / a descriptor, or -errno. */
#ifndef CM_NET_H
#define CM_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
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

/* A receiver that acknowledges when it reads, not when data arrives (the
 * load tools' --ack-on-read): on loopback the arrival runs on the sender's
 * core, the read on the receiver's, and so does an ACK sent from the read.
 *
 * cm_ack_hold puts a socket in delayed-ACK (ping-pong) mode, so arriving
 * data never triggers an immediate ACK. After each read, cm_ack_flush sends
 * the pending ACK and leaves the socket held (TCP_QUICKACK with 2): as a
 * socket command on sqe, which rides the caller's next submit and completes
 * only if it fails (IOSQE_CQE_SKIP_SUCCESS, user_data ud), or with
 * setsockopt when sqe is NULL or the kernel has shown it has no socket
 * commands. Pass every completion of ud to cm_ack_flush_failed. */
struct cm_ack_flusher {
	bool ring;          /* flushes go through the ring */
	uint64_t via_ring;  /* flushes queued as socket commands */
	uint64_t via_call;  /* flushes done with setsockopt */
};

/* True when a socket removed from a ring's registered file table is freed
 * once its own requests are done (kernel 6.13+). Before, removed files were
 * freed only when every request issued before the removal had completed, in
 * order, so a long-lived multishot receive kept the sockets closed after it
 * open: fixed files for long-lived connections want this. */
bool cm_fixed_files_safe(void);

void cm_ack_hold(int fd);
void cm_ack_flusher_init(struct cm_ack_flusher *f);

/* Returns true when the flush was queued on sqe (which is then used up). */
bool cm_ack_flush(struct cm_ack_flusher *f, struct io_uring_sqe *sqe, int fd, uint64_t ud);

/* A failed flush's result. Returns true, once, when it says the kernel has
 * no socket commands (-EOPNOTSUPP, or -EINVAL before 5.19): from then on
 * the flusher uses setsockopt (the ACKs of that submit leave on the
 * delayed-ACK timer). Any other failure is a socket closed meanwhile. */
bool cm_ack_flush_failed(struct cm_ack_flusher *f, int res);

#endif
