/* ld_tls — the TLS client side of herald-load: one BoringSSL context per
 * worker process, and per connection an SSL object over two memory BIOs, so
 * that all socket I/O stays on io_uring: received bytes are fed in, the
 * bytes TLS wants sent are taken out. The last session ticket a server sent
 * is kept for --tls-resume. */
#ifndef LD_TLS_H
#define LD_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

/* A client context: no certificate verification (benchmark certificates are
 * self-signed), TLS 1.2..1.3, tickets cached when resume. NULL on failure
 * (logged). */
SSL_CTX *ld_tls_ctx_new(bool resume);
void ld_tls_ctx_free(SSL_CTX *ctx);

/* A client SSL in connect state over memory BIOs, offering the last cached
 * session when the context resumes. sni may be NULL (an IP address). */
SSL *ld_tls_new(SSL_CTX *ctx, const char *sni);

/* Hands received bytes to TLS. Returns 0, or -1 when out of memory. */
int ld_tls_feed(SSL *ssl, const uint8_t *p, size_t n);

/* Bytes TLS has produced for the peer and not yet taken. */
size_t ld_tls_out_pending(SSL *ssl);

/* Moves up to cap of them into out. Returns the count. */
size_t ld_tls_out_take(SSL *ssl, uint8_t *out, size_t cap);

/* One line about the last TLS error (for a log line), from the queue. */
const char *ld_tls_error(void);

#endif
