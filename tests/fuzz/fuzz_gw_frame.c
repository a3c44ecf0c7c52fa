// fuzz-sources: common/cm_log.c build/gen/proto/cluster.pb-c.c tests/fuzz/fake_redis.c
/* fuzz_gw_frame — the gateway's in-place RouterMessage decoder
 * (gateway/gw_cluster.c, included for its static on_router_frame) against
 * arbitrary bytes, differentially against protobuf-c.
 *
 * The input is one frame as it arrives on <prefix>:gw:<id>. A link made by
 * gw_cluster_new (Redis and the loop are stubs below: the link is never
 * connected, so whatever it would send goes nowhere) with interest adds 1..8
 * pending and a known router boot id decodes it twice.
 *
 * Oracles (abort() on failure, besides ASan/UBSan):
 * - a frame the decoder drops is dropped whole: no delivery, ack, resync or
 *   batch end, and the router boot id is not taken from it;
 * - a frame the decoder accepts has a version other than 0;
 * - a frame both the decoder and protobuf-c accept (validity is the
 *   decoder's: e.g. it takes versions as 64-bit, so 2^32 is not 0 for it)
 *   makes the link deliver exactly protobuf-c's deliveries in order, except
 *   the ones it skips on purpose (kinds it does not know, a stream or user
 *   without a name), with the same kinds, names, offsets and bytes; it
 *   finishes exactly the pending adds protobuf-c's interest_acks name; it
 *   starts a resync exactly when protobuf-c sees a resync_request, with its
 *   epoch; batch_end comes once when there was any delivery; and a second
 *   decode of the same frame does the same again (acks aside: a pending
 *   add is finished once);
 * - a well-formed frame (protobuf-c reads it with a version, legal field
 *   numbers, and packs it back to the same bytes) is not dropped.
 * Not compared: frames only the decoder accepts (it reads tags longer than
 * 5 bytes, protobuf-c does not), and a resync_request given twice
 * (protobuf-c 1.4 does not merge the two; the decoder does, as protobuf
 * says). A delivery kind wider than 32 bits may be skipped (what the
 * decoder does today: unknown kind) or delivered as protobuf truncates it
 * (tests/fuzz/crashes/gw_frame-delivery-kind-over-32-bits). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/gw_cluster.c"

#define FAIL(...)                                                  \
	do {                                                       \
		fprintf(stderr, "fuzz_gw_frame: " __VA_ARGS__);    \
		fputc('\n', stderr);                               \
		abort();                                           \
	} while (0)

/* ------------------ stubs: clock, timers (Redis: tests/fuzz/fake_redis.c) */

static char fake_timer;

uint64_t cm_loop_now(struct cm_loop *loop)
{
	(void)loop;
	return 1000;
}

uint64_t cm_wall_ms(void)
{
	return 1700000000000ull;
}

/* a fixed boot id: runs stay reproducible */
uint64_t cm_random64(void)
{
	return 0x5eed5eed5eed5eedull;
}

struct cm_timer *cm_timer_start(struct cm_loop *loop, uint64_t ms, bool repeat, cm_fn fn,
				void *arg)
{
	(void)loop, (void)ms, (void)repeat, (void)fn, (void)arg;
	return (struct cm_timer *)&fake_timer;
}

void cm_timer_stop(struct cm_timer *t)
{
	if (t && t != (struct cm_timer *)&fake_timer)
		FAIL("cm_timer_stop of an unknown timer");
}


/* ------------------------------------------------------ what the link did */

#define NPEND 8
#define ROUTER_BOOT 0x1234

struct got_delivery {
	int kind;
	uint8_t *name, *data;
	size_t nlen, dlen;
	uint64_t offset;
};

struct got {
	struct got_delivery *d;
	size_t n, cap;
	unsigned batch_ends, resyncs, acked[NPEND + 1], nacked;
	uint64_t resync_epoch;
};

static struct got got;
static struct gw_cluster *link_;

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
	uint8_t *q = cm_xmalloc(n ? n : 1);
	if (n)
		memcpy(q, p, n);
	return q;
}

static void record(int kind, const char *name, size_t nlen, uint64_t off, const uint8_t *p,
		   size_t n)
{
	struct got_delivery *d;

	/* the link promises non-NULL pointers (callers may memcpy) */
	if (!p || (kind != 2 && !name))
		FAIL("a delivery with a NULL pointer");
	if (got.n == got.cap) {
		got.cap = got.cap ? got.cap * 2 : 16;
		got.d = cm_xrealloc(got.d, got.cap * sizeof(*got.d));
	}
	d = &got.d[got.n++];
	d->kind = kind;
	d->name = dup_bytes((const uint8_t *)name, nlen);
	d->nlen = nlen;
	d->offset = off;
	d->data = dup_bytes(p, n);
	d->dlen = n;
}

static void cb_stream(void *ctx, const char *s, size_t sl, uint64_t off, const uint8_t *p,
		      size_t n)
{
	(void)ctx;
	record(0, s, sl, off, p, n);
}

static void cb_user(void *ctx, const char *u, size_t ul, uint64_t off, const uint8_t *p, size_t n)
{
	(void)ctx;
	record(1, u, ul, off, p, n);
}

static void cb_all(void *ctx, const uint8_t *p, size_t n)
{
	(void)ctx;
	record(2, NULL, 0, 0, p, n);
}

static void cb_batch_end(void *ctx)
{
	(void)ctx;
	got.batch_ends++;
}

/* Answers at once, as a gateway holding one stream and one user would. */
static void cb_resync(void *ctx)
{
	(void)ctx;
	got.resyncs++;
	got.resync_epoch = link_->resync_epoch;
	gw_cluster_resync_add(link_, false, "s", 1);
	gw_cluster_resync_add(link_, true, "u", 1);
	gw_cluster_resync_done(link_);
}

static void on_done(void *arg, bool ok)
{
	uintptr_t id = (uintptr_t)arg;

	if (!ok || id < 1 || id > NPEND)
		FAIL("interest %zu done(%d)", (size_t)id, ok);
	got.acked[id]++;
	got.nacked++;
}

static void got_clear(void)
{
	for (size_t i = 0; i < got.n; i++) {
		free(got.d[i].name);
		free(got.d[i].data);
	}
	got.n = 0;
	got.batch_ends = got.resyncs = got.nacked = 0;
	got.resync_epoch = 0;
	memset(got.acked, 0, sizeof(got.acked));
}

/* --------------------------------------------------------------- oracles */

static void hexdump_frame(const uint8_t *p, size_t n)
{
	fprintf(stderr, "frame (%zu bytes):", n);
	for (size_t i = 0; i < n && i < 512; i++)
		fprintf(stderr, " %02x", p[i]);
	fputc('\n', stderr);
}

/* Reads a varint at *p (below end); false when malformed. */
static bool ref_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	*v = 0;
	for (unsigned shift = 0; shift < 64 && *p < end; shift += 7) {
		uint8_t b = *(*p)++;
		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return true;
	}
	return false;
}

/* How many times the top level of p[0..n) carries field f (0 when the
 * frame does not scan), and the last varint value it had (*last, 0 when
 * none). */
static unsigned count_field(const uint8_t *p, size_t n, unsigned f, uint64_t *last)
{
	const uint8_t *end = p + n;
	unsigned count = 0;
	uint64_t tag, v, dummy;

	if (!last)
		last = &dummy;
	*last = 0;
	while (p < end) {
		if (!ref_varint(&p, end, &tag))
			return 0;
		count += (tag >> 3) == f;
		switch (tag & 7) {
		case 0:
			if (!ref_varint(&p, end, &v))
				return 0;
			if ((tag >> 3) == f)
				*last = v;
			break;
		case 1:
		case 5:
			if ((size_t)(end - p) < ((tag & 7) == 1 ? 8u : 4u))
				return 0;
			p += (tag & 7) == 1 ? 8 : 4;
			break;
		case 2:
			if (!ref_varint(&p, end, &v) || v > (uint64_t)(end - p))
				return 0;
			p += v;
			break;
		default:
			return 0;
		}
	}
	return count;
}

/* The kind of every delivery of p[0..n) (a frame protobuf-c read) as
 * written, before protobuf's truncation to 32 bits; returns how many. */
static size_t raw_kinds(const uint8_t *p, size_t n, uint64_t *kinds, size_t max)
{
	const uint8_t *end = p + n;
	size_t count = 0;
	uint64_t tag, v;

	while (p < end && ref_varint(&p, end, &tag)) {
		const uint8_t *q, *qend;
		if ((tag & 7) == 0) {
			ref_varint(&p, end, &v);
			continue;
		}
		if ((tag & 7) == 1 || (tag & 7) == 5) {
			size_t w = (tag & 7) == 1 ? 8 : 4;
			if ((size_t)(end - p) < w)
				break;
			p += w;
			continue;
		}
		if ((tag & 7) != 2 || !ref_varint(&p, end, &v) || v > (uint64_t)(end - p))
			break;
		q = p;
		p += v;
		if ((tag >> 3) != 3 || count >= max)
			continue;
		kinds[count] = 0;
		for (qend = p; q < qend && ref_varint(&q, qend, &tag);) {
			if ((tag & 7) == 0) {
				ref_varint(&q, qend, &v);
				if ((tag >> 3) == 1)
					kinds[count] = v;
			} else if (((tag & 7) == 1 && qend - q >= 8) ||
				   ((tag & 7) == 5 && qend - q >= 4)) {
				q += (tag & 7) == 1 ? 8 : 4;
			} else if ((tag & 7) == 2 && ref_varint(&q, qend, &v) &&
				   v <= (uint64_t)(qend - q)) {
				q += v;
			} else {
				break;
			}
		}
		count++;
	}
	return count;
}

/* Whether the link is expected to deliver d (it skips a newer router's
 * kinds and nameless ones on purpose). */
static bool expected(const Herald__Cluster__Delivery *d)
{
	return (unsigned)d->kind <= 2 && (d->kind == 2 || d->name.len);
}

/* The deliveries the link made match what protobuf-c read. */
static void compare(const Herald__Cluster__RouterMessage *m, const uint8_t *p, size_t n,
		    bool first)
{
	size_t k = 0, nskip = 0, nkeep = 0;
	uint64_t *raw = cm_xcalloc(m->n_deliveries + 1, sizeof(*raw));
	bool keep_wide;

	if (raw_kinds(p, n, raw, m->n_deliveries) != m->n_deliveries) {
		hexdump_frame(p, n);
		FAIL("the reference scan finds another number of deliveries than protobuf-c");
	}
	/* A kind wider than 32 bits: protobuf reads it truncated, the link
	 * (gw_cluster.c today) skips it as unknown. Either is accepted, the
	 * same way for the whole frame. */
	for (size_t i = 0; i < m->n_deliveries; i++) {
		if (!expected(m->deliveries[i]))
			continue;
		nkeep++;
		nskip += raw[i] <= UINT32_MAX;
	}
	keep_wide = nkeep != nskip && got.n == nkeep;

	for (size_t i = 0; i < m->n_deliveries; i++) {
		const Herald__Cluster__Delivery *d = m->deliveries[i];
		const struct got_delivery *g;

		if (!expected(d) || (raw[i] > UINT32_MAX && !keep_wide))
			continue;
		if (k >= got.n) {
			hexdump_frame(p, n);
			FAIL("delivery %zu (kind %d) missing: %zu delivered", i, d->kind, got.n);
		}
		g = &got.d[k++];
		if (g->kind != (int)d->kind || g->dlen != d->data.len ||
		    (d->data.len && memcmp(g->data, d->data.data, d->data.len))) {
			hexdump_frame(p, n);
			FAIL("delivery %zu: kind %d/%d, %zu/%zu data bytes", i, g->kind, d->kind,
			     g->dlen, d->data.len);
		}
		if (d->kind != 2 && (g->offset != d->offset || g->nlen != d->name.len ||
				     memcmp(g->name, d->name.data, d->name.len))) {
			hexdump_frame(p, n);
			FAIL("delivery %zu: name or offset differ (%llu/%llu)", i,
			     (unsigned long long)g->offset, (unsigned long long)d->offset);
		}
	}
	if (k != got.n) {
		hexdump_frame(p, n);
		FAIL("%zu deliveries made, protobuf-c reads %zu", got.n, k);
	}
	free(raw);
	if (got.batch_ends != (m->n_deliveries ? 1u : 0u))
		FAIL("%u batch ends for %zu deliveries", got.batch_ends, m->n_deliveries);
	/* A resync_request given twice is one message merged from both
	 * (protobuf's rule, which the link follows); protobuf-c 1.4 keeps the
	 * last one's scalars instead: the epoch is compared when there is one. */
	if (got.resyncs != (m->resync_request ? 1u : 0u) ||
	    (m->resync_request && got.resync_epoch != m->resync_request->epoch &&
	     count_field(p, n, 5, NULL) == 1)) {
		hexdump_frame(p, n);
		FAIL("%u resyncs (epoch %llu) for a resync request %s %llu", got.resyncs,
		     (unsigned long long)got.resync_epoch, m->resync_request ? "of" : "absent",
		     m->resync_request ? (unsigned long long)m->resync_request->epoch : 0ull);
	}
	for (uint64_t id = 1; id <= NPEND; id++) {
		bool named = false;
		for (size_t i = 0; i < m->n_interest_acks; i++)
			named |= m->interest_acks[i] == id;
		/* acks finish a pending add once: the second pass finishes none */
		if (got.acked[id] != (first && named ? 1u : 0u)) {
			hexdump_frame(p, n);
			FAIL("interest %llu finished %u times (named in the frame: %d)",
			     (unsigned long long)id, got.acked[id], named);
		}
	}
}

/* Whether every unknown field of b has a legal field number (protobuf-c
 * reads and writes back numbers up to 2^32 - 1; the limit is 2^29 - 1). */
static bool legal_unknowns(const ProtobufCMessage *b)
{
	for (unsigned i = 0; i < b->n_unknown_fields; i++)
		if (b->unknown_fields[i].tag > 0x1fffffff)
			return false;
	return true;
}

/* Whether m has a version, legal field numbers and packs back to exactly
 * p[0..n): a frame any encoder could have sent, which the link must not
 * drop. (protobuf-c also reads some malformed frames, e.g. overlong tags
 * truncated to 32 bits: those the link may drop.) */
static bool canonical(const Herald__Cluster__RouterMessage *m, const uint8_t *p, size_t n)
{
	uint8_t *buf;
	bool same;

	if (!m || !m->version || herald__cluster__router_message__get_packed_size(m) != n ||
	    !legal_unknowns(&m->base) ||
	    (m->resync_request && !legal_unknowns(&m->resync_request->base)))
		return false;
	for (size_t i = 0; i < m->n_deliveries; i++)
		if (!legal_unknowns(&m->deliveries[i]->base))
			return false;
	buf = cm_xmalloc(n ? n : 1);
	herald__cluster__router_message__pack(m, buf);
	same = !memcmp(buf, p, n);
	free(buf);
	return same;
}

static void check_dropped(const uint8_t *p, size_t n)
{
	if (got.n || got.batch_ends || got.resyncs || got.nacked ||
	    link_->router_boot != ROUTER_BOOT) {
		hexdump_frame(p, n);
		FAIL("a dropped frame was acted on: %zu deliveries, %u acks, %u resyncs", got.n,
		     got.nacked, got.resyncs);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;
	static char loop_dummy;
	const struct gw_cluster_opts opts = {
		.redis_host = "127.0.0.1", .redis_port = 1, .prefix = "herald",
		.gateway_id = "fuzz", .threads = 1, .version = "fuzz",
	};
	const struct gw_cluster_cbs cbs = {
		.deliver_stream = cb_stream, .deliver_user = cb_user, .deliver_all = cb_all,
		.batch_end = cb_batch_end, .resync = cb_resync,
	};
	Herald__Cluster__RouterMessage *m;
	bool ours;
	uint64_t bad0, dl0, version;

	if (!init) {
		cm_log_init("fuzz_gw_frame", CM_LOG_ERROR);
		init = true;
	}
	link_ = gw_cluster_new((struct cm_loop *)&loop_dummy, &opts, &cbs, NULL);
	/* request ids start at a random point; here at 1, so that the
	 * corpus's acks name the pending adds */
	link_->next_req = 1;
	for (uintptr_t i = 1; i <= NPEND; i++) {
		char s[8];
		snprintf(s, sizeof(s), "s%u", (unsigned)i);
		gw_cluster_interest(link_, s, strlen(s), true, on_done, (void *)i);
	}
	if (link_->npend != NPEND || link_->pend[0].id != 1 || link_->pend[NPEND - 1].id != NPEND)
		FAIL("pending interests are not 1..%d", NPEND);
	link_->router_boot = ROUTER_BOOT;

	m = herald__cluster__router_message__unpack(NULL, size, data);
	for (int pass = 0; pass < 2; pass++) {
		got_clear();
		bad0 = link_->frames_bad;
		dl0 = link_->deliveries_in;
		on_router_frame(link_, data, size);
		ours = link_->frames_bad == bad0;
		if (!ours) {
			check_dropped(data, size);
			if (canonical(m, data, size)) {
				hexdump_frame(data, size);
				FAIL("dropped a well-formed frame (version %u)", m->version);
			}
			continue;
		}
		/* The link reads a few frames protobuf-c refuses, e.g. tags
		 * written with more than 5 bytes: nothing to compare then. */
		if (!m)
			continue;
		/* version 0 is malformed (the decoder reads all 64 bits) */
		count_field(data, size, 1, &version);
		if (!version) {
			hexdump_frame(data, size);
			FAIL("accepted a frame without a version");
		}
		if (link_->router_boot != m->router_boot_id)
			FAIL("router boot %llx, the frame says %llx",
			     (unsigned long long)link_->router_boot,
			     (unsigned long long)m->router_boot_id);
		if (link_->deliveries_in - dl0 != m->n_deliveries)
			FAIL("deliveries_in counted %llu of %zu",
			     (unsigned long long)(link_->deliveries_in - dl0), m->n_deliveries);
		compare(m, data, size, pass == 0);
	}
	if (m)
		herald__cluster__router_message__free_unpacked(m, NULL);
	got_clear();
	gw_cluster_free(link_);
	link_ = NULL;
	return 0;
}
