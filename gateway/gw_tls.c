/* gw_tls — BoringSSL driven by the ring: one SSL_CTX for every worker, a
 * custom BIO per connection whose read side serves bytes straight from the
 * provided buffer being processed and whose write side appends to the
 * connection's TLS output (sent with io_uring, freed when empty). Session
 * tickets with a key rotated every hour (the previous key still decrypts,
 * and its tickets are renewed); no server-side session cache. The keys are
 * random per process, or, with --tls-ticket-key-file, derived from a secret
 * shared by a cluster's gateways for each wall-clock period (HKDF-SHA256 of
 * the secret over the period number), so that any gateway resumes a session
 * another one started, without coordination. */
#include "gw.h"
#include "cm_log.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hkdf.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#define TICKET_ROTATE_MS (3600 * 1000ULL)

static __thread const uint8_t *in_p;
static __thread size_t in_n;
static BIO_METHOD *bio_meth;

struct tkey {
	uint8_t name[16], aes[32], hmac[32];
	uint64_t born;              /* random keys: creation; derived: the period */
	bool set;
};
static struct tkey tkeys[3]; /* random: current, previous; derived: a cache */
static pthread_mutex_t tk_mu = PTHREAD_MUTEX_INITIALIZER;
/* the shared secret (--tls-ticket-key-file); tk_secret_len 0: random keys */
static uint8_t tk_secret[4096];
static size_t tk_secret_len;
static uint64_t tk_period_ms = TICKET_ROTATE_MS;

void gw_tls_ticket_secret(const uint8_t *secret, size_t n, uint32_t period_ms)
{
	pthread_mutex_lock(&tk_mu);
	memset(tkeys, 0, sizeof(tkeys));
	if (!secret || n > sizeof(tk_secret))
		n = 0;
	if (n)
		memcpy(tk_secret, secret, n);
	tk_secret_len = n;
	tk_period_ms = period_ms ? period_ms : TICKET_ROTATE_MS;
	pthread_mutex_unlock(&tk_mu);
}

void gw_tls_set_input(const uint8_t *p, size_t n)
{
	in_p = p;
	in_n = n;
}

static int bio_read(BIO *b, char *out, int len)
{
	size_t n;

	BIO_clear_retry_flags(b);
	if (!in_n) {
		BIO_set_retry_read(b);
		return -1;
	}
	n = (size_t)len < in_n ? (size_t)len : in_n;
	memcpy(out, in_p, n);
	in_p += n;
	in_n -= n;
	return (int)n;
}

static int bio_write(BIO *b, const char *data, int len)
{
	struct gw_conn *c = BIO_get_data(b);
	struct gw_tlsout *t;

	BIO_clear_retry_flags(b);
	if (len <= 0)
		return 0;
	t = c->tout;
	if (!t)
		t = c->tout = cm_xcalloc(1, sizeof(*t));
	if (t->out_len + (uint32_t)len > t->out_cap) {
		uint32_t cap = t->out_cap ? t->out_cap : GW_TLS_OUT_MIN;
		while (cap < t->out_len + (uint32_t)len)
			cap *= 2;
		t->out = cm_xrealloc(t->out, cap);
		t->out_cap = cap;
	}
	memcpy(t->out + t->out_len, data, (size_t)len);
	t->out_len += (uint32_t)len;
	return len;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)b;
	(void)num;
	(void)ptr;
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static int bio_destroy(BIO *b)
{
	(void)b;
	return 1;
}

static void tkey_new(struct tkey *k)
{
	RAND_bytes(k->name, sizeof(k->name));
	RAND_bytes(k->aes, sizeof(k->aes));
	RAND_bytes(k->hmac, sizeof(k->hmac));
	k->born = cm_now_ms();
	k->set = true;
}

/* The keys of period p from the shared secret (cached; tk_mu held):
 * HKDF-SHA256(ikm = secret, salt = label, info = label || p as 8 bytes big
 * endian) expanded to the key name, the HMAC key and the AES key. */
static const struct tkey *tkey_period(uint64_t p)
{
	static const char label[] = "herald ticket key";
	uint8_t info[sizeof(label) - 1 + 8], okm[16 + 32 + 32];
	struct tkey *k = &tkeys[p % 3];

	if (k->set && k->born == p)
		return k;
	memcpy(info, label, sizeof(label) - 1);
	for (int i = 0; i < 8; i++)
		info[sizeof(label) - 1 + i] = (uint8_t)(p >> (56 - 8 * i));
	if (!HKDF(okm, sizeof(okm), EVP_sha256(), tk_secret, tk_secret_len,
		  (const uint8_t *)label, sizeof(label) - 1, info, sizeof(info)))
		cm_panic(__FILE__, __LINE__, "HKDF failed");
	memcpy(k->name, okm, 16);
	memcpy(k->hmac, okm + 16, 32);
	memcpy(k->aes, okm + 48, 32);
	OPENSSL_cleanse(okm, sizeof(okm));
	k->born = p;
	k->set = true;
	return k;
}

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Derived keys: encrypt with the current period's key; decrypt with the
 * current one, the previous one (renewing the ticket) or the next one (a
 * gateway whose clock is a little ahead issued it). */
static int ticket_cb_shared(uint8_t *key_name, uint8_t *iv, EVP_CIPHER_CTX *ectx,
			    HMAC_CTX *hctx, int encrypt)
{
	uint64_t p = wall_ms() / tk_period_ms;
	const struct tkey *k;

	if (encrypt) {
		k = tkey_period(p);
		memcpy(key_name, k->name, 16);
		RAND_bytes(iv, 16);
		if (EVP_EncryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k->aes, iv) &&
		    HMAC_Init_ex(hctx, k->hmac, sizeof(k->hmac), EVP_sha256(), NULL))
			return 1;
		return -1;
	}
	for (int d = 0; d < 3; d++) {
		uint64_t q = d == 0 ? p : d == 1 ? p - 1 : p + 1;
		k = tkey_period(q);
		if (memcmp(key_name, k->name, 16))
			continue;
		if (EVP_DecryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k->aes, iv) &&
		    HMAC_Init_ex(hctx, k->hmac, sizeof(k->hmac), EVP_sha256(), NULL))
			return d == 1 ? 2 : 1; /* 2: valid, but issue a fresh ticket */
		return -1;
	}
	return 0;
}

static int ticket_cb(SSL *ssl, uint8_t *key_name, uint8_t *iv, EVP_CIPHER_CTX *ectx,
		     HMAC_CTX *hctx, int encrypt)
{
	int ret = 0;
	uint64_t now = cm_now_ms();

	(void)ssl;
	pthread_mutex_lock(&tk_mu);
	if (tk_secret_len) {
		ret = ticket_cb_shared(key_name, iv, ectx, hctx, encrypt);
		pthread_mutex_unlock(&tk_mu);
		return ret;
	}
	if (!tkeys[0].set || now - tkeys[0].born >= tk_period_ms) {
		tkeys[1] = tkeys[0];
		tkey_new(&tkeys[0]);
	}
	if (encrypt) {
		memcpy(key_name, tkeys[0].name, 16);
		RAND_bytes(iv, EVP_MAX_IV_LENGTH < 16 ? EVP_MAX_IV_LENGTH : 16);
		if (EVP_EncryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, tkeys[0].aes, iv) &&
		    HMAC_Init_ex(hctx, tkeys[0].hmac, sizeof(tkeys[0].hmac), EVP_sha256(), NULL))
			ret = 1;
		else
			ret = -1;
	} else {
		for (int i = 0; i < 2; i++) {
			if (!tkeys[i].set || memcmp(key_name, tkeys[i].name, 16))
				continue;
			if (EVP_DecryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, tkeys[i].aes, iv) &&
			    HMAC_Init_ex(hctx, tkeys[i].hmac, sizeof(tkeys[i].hmac), EVP_sha256(),
					 NULL))
				ret = i == 0 ? 1 : 2; /* 2: valid, but issue a fresh ticket */
			else
				ret = -1;
			break;
		}
	}
	pthread_mutex_unlock(&tk_mu);
	return ret;
}

static int alpn_cb(SSL *ssl, const uint8_t **out, uint8_t *outlen, const uint8_t *in,
		   unsigned inlen, void *arg)
{
	(void)ssl;
	(void)arg;
	for (unsigned i = 0; i < inlen;) {
		unsigned l = in[i];
		if (i + 1 + l > inlen)
			break;
		if (l == 8 && !memcmp(in + i + 1, "http/1.1", 8)) {
			*out = in + i + 1;
			*outlen = 8;
			return SSL_TLSEXT_ERR_OK;
		}
		i += 1 + l;
	}
	return SSL_TLSEXT_ERR_NOACK;
}

static void log_ssl_error(const char *what)
{
	char buf[256];
	unsigned long e = ERR_get_error();
	ERR_error_string_n(e, buf, sizeof(buf));
	cm_error("%s: %s", what, e ? buf : "unknown error");
	ERR_clear_error();
}

SSL_CTX *gw_tls_ctx_new(const char *cert, const char *key)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_method());

	if (!ctx) {
		log_ssl_error("SSL_CTX_new");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		log_ssl_error(cert);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		log_ssl_error(key);
		SSL_CTX_free(ctx);
		return NULL;
	}
	/* resumption by tickets only: no per-session state kept on the server */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL);
	SSL_CTX_set_tlsext_ticket_key_cb(ctx, ticket_cb);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);

	if (!bio_meth) {
		bio_meth = BIO_meth_new(BIO_TYPE_SOURCE_SINK | 0x80, "herald-ring");
		BIO_meth_set_read(bio_meth, bio_read);
		BIO_meth_set_write(bio_meth, bio_write);
		BIO_meth_set_ctrl(bio_meth, bio_ctrl);
		BIO_meth_set_create(bio_meth, bio_create);
		BIO_meth_set_destroy(bio_meth, bio_destroy);
	}
	return ctx;
}

SSL *gw_tls_new(SSL_CTX *ctx, struct gw_conn *c)
{
	SSL *ssl = SSL_new(ctx);
	BIO *bio;

	if (!ssl)
		cm_panic(__FILE__, __LINE__, "SSL_new: out of memory");
	bio = BIO_new(bio_meth);
	if (!bio)
		cm_panic(__FILE__, __LINE__, "BIO_new: out of memory");
	BIO_set_data(bio, c);
	BIO_set_init(bio, 1);
	SSL_set_bio(ssl, bio, bio);
	SSL_set_accept_state(ssl);
	/* the handshake's configuration is dropped once it completes */
	SSL_set_shed_handshake_config(ssl, 1);
	return ssl;
}
