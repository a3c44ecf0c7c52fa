#include "ld_tls.h"

#include "cm_log.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

/* A worker is one process with one thread: the cached session is global. */
static SSL_SESSION *last_session;

static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
	(void)ssl;
	if (last_session)
		SSL_SESSION_free(last_session);
	last_session = sess;
	return 1; /* we keep the reference */
}

SSL_CTX *ld_tls_ctx_new(bool resume)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_method());

	if (!ctx) {
		cm_error("SSL_CTX_new: %s", ld_tls_error());
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
	if (resume) {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
		SSL_CTX_sess_set_new_cb(ctx, on_new_session);
	} else {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	}
	return ctx;
}

void ld_tls_ctx_free(SSL_CTX *ctx)
{
	SSL_CTX_free(ctx);
	if (last_session) {
		SSL_SESSION_free(last_session);
		last_session = NULL;
	}
}

SSL *ld_tls_new(SSL_CTX *ctx, const char *sni)
{
	SSL *ssl = SSL_new(ctx);
	BIO *rb, *wb;

	if (!ssl)
		abort(); /* out of memory */
	rb = BIO_new(BIO_s_mem());
	wb = BIO_new(BIO_s_mem());
	if (!rb || !wb)
		abort();
	SSL_set_bio(ssl, rb, wb);
	if (sni)
		SSL_set_tlsext_host_name(ssl, sni);
	if (last_session)
		SSL_set_session(ssl, last_session);
	SSL_set_connect_state(ssl);
	return ssl;
}

int ld_tls_feed(SSL *ssl, const uint8_t *p, size_t n)
{
	BIO *rb = SSL_get_rbio(ssl);

	while (n) {
		int chunk = n > 1 << 30 ? 1 << 30 : (int)n;
		int w = BIO_write(rb, p, chunk);
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

size_t ld_tls_out_pending(SSL *ssl)
{
	return BIO_ctrl_pending(SSL_get_wbio(ssl));
}

size_t ld_tls_out_take(SSL *ssl, uint8_t *out, size_t cap)
{
	int r = BIO_read(SSL_get_wbio(ssl), out, cap > 1 << 30 ? 1 << 30 : (int)cap);
	return r > 0 ? (size_t)r : 0;
}

const char *ld_tls_error(void)
{
	static char buf[256];
	unsigned long e = ERR_get_error();

	if (!e)
		return "no TLS error queued";
	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return buf;
}
