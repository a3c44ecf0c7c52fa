#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cm_packet.h"
#include "cm_ws.h"

/* Parses the packet back as a server frame and checks header and payload. */
static void check_frame(const struct cm_packet *p, uint8_t opcode, const uint8_t *payload,
			size_t len, size_t want_hdr)
{
	struct cm_ws_header h;
	const uint8_t *b = cm_packet_bytes(p);
	int rc = cm_ws_parse_header(b, p->len, false, &h);
	cr_assert_eq(rc, (int)want_hdr, "header length %d, want %zu", rc, want_hdr);
	cr_assert(h.fin);
	cr_assert_not(h.masked);
	cr_assert_eq(h.rsv, 0);
	cr_assert_eq(h.opcode, opcode);
	cr_assert_eq(h.len, len);
	cr_assert_eq(p->len, want_hdr + len);
	cr_assert_eq(p->off + want_hdr, CM_PACKET_HEADROOM, "payload sits at the headroom");
	cr_assert(len == 0 || memcmp(b + want_hdr, payload, len) == 0);
}

static uint8_t *pattern(size_t len)
{
	uint8_t *d = malloc(len ? len : 1);
	for (size_t i = 0; i < len; i++)
		d[i] = (uint8_t)(i * 7 + 3);
	return d;
}

Test(cm_packet, frame_of_small_payload_has_two_byte_header)
{
	static const size_t lens[] = { 0, 1, 125 };
	for (size_t i = 0; i < 3; i++) {
		uint8_t *d = pattern(lens[i]);
		struct cm_packet *p = cm_packet_frame(CM_WS_TEXT, d, lens[i]);
		check_frame(p, CM_WS_TEXT, d, lens[i], 2);
		cr_assert_eq(cm_packet_bytes(p)[0], 0x81);
		cr_assert_eq(cm_packet_bytes(p)[1], lens[i]);
		cm_packet_unref(p);
		free(d);
	}
}

Test(cm_packet, frame_of_126_bytes_has_16_bit_length)
{
	static const size_t lens[] = { 126, 127, 65535 };
	for (size_t i = 0; i < 3; i++) {
		uint8_t *d = pattern(lens[i]);
		struct cm_packet *p = cm_packet_frame(CM_WS_BINARY, d, lens[i]);
		check_frame(p, CM_WS_BINARY, d, lens[i], 4);
		const uint8_t *b = cm_packet_bytes(p);
		cr_assert_eq(b[0], 0x82);
		cr_assert_eq(b[1], 126);
		cr_assert_eq((size_t)(b[2] << 8 | b[3]), lens[i]);
		cm_packet_unref(p);
		free(d);
	}
}

Test(cm_packet, frame_of_65536_bytes_has_64_bit_length)
{
	uint8_t *d = pattern(65536);
	struct cm_packet *p = cm_packet_frame(CM_WS_BINARY, d, 65536);
	check_frame(p, CM_WS_BINARY, d, 65536, 10);
	const uint8_t *b = cm_packet_bytes(p);
	static const uint8_t want[10] = { 0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0 };
	cr_assert_arr_eq(b, want, 10);
	cr_assert_eq(p->off, 0);
	cm_packet_unref(p);
	free(d);
}

Test(cm_packet, seal_places_header_before_payload_written_in_place)
{
	struct cm_packet *p = cm_packet_new(CM_PACKET_HEADROOM + 300);
	cr_assert_eq(atomic_load(&p->refs), 1);
	cr_assert_eq(p->len, 0);
	cr_assert_eq(p->off, 0);
	cr_assert_geq(p->cap, CM_PACKET_HEADROOM + 300);
	memset(p->data + CM_PACKET_HEADROOM, 'x', 300);
	cm_packet_seal(p, CM_WS_TEXT, 300);
	uint8_t *x = malloc(300);
	memset(x, 'x', 300);
	check_frame(p, CM_WS_TEXT, x, 300, 4);
	free(x);
	cm_packet_unref(p);
}

static const char push_msg[] = "{\"push\":{\"stream\":\"s\",\"offset\":1,\"data\":\"hi\"}}";

struct got {
	int n;
	size_t len;
	bool same;
};

static int cb(void *ctx, uint8_t op, uint8_t *data, size_t len)
{
	struct got *g = ctx;
	g->n++;
	g->len = len;
	g->same = op == CM_WS_TEXT && len == sizeof(push_msg) - 1 &&
		  memcmp(data, push_msg, len) == 0;
	return 0;
}

Test(cm_packet, frame_reads_back_through_a_client_reader)
{
	struct cm_packet *p = cm_packet_frame(CM_WS_TEXT, push_msg, sizeof(push_msg) - 1);
	uint8_t *copy = malloc(p->len);
	memcpy(copy, cm_packet_bytes(p), p->len);
	struct cm_ws_reader r;
	cm_ws_reader_init(&r, false, 1024);
	struct got got = { 0 };
	cr_assert_eq(cm_ws_reader_feed(&r, copy, p->len, cb, &got), 0);
	cr_assert_eq(got.n, 1);
	cr_assert_eq(got.len, sizeof(push_msg) - 1);
	cr_assert(got.same);
	cr_assert_null(r.buf);
	free(copy);
	cm_packet_unref(p);
}

Test(cm_packet, refcount_frees_on_last_unref_only)
{
	struct cm_packet *p = cm_packet_frame(CM_WS_TEXT, "abc", 3);
	cr_assert_eq(atomic_load(&p->refs), 1);
	cm_packet_ref(p);
	cm_packet_ref(p);
	cr_assert_eq(atomic_load(&p->refs), 3);
	cm_packet_unref(p);
	cr_assert_eq(atomic_load(&p->refs), 2);
	/* Still readable while referenced (ASan would flag a premature free). */
	cr_assert_eq(memcmp(cm_packet_bytes(p) + 2, "abc", 3), 0);
	cm_packet_unref(p);
	cr_assert_eq(atomic_load(&p->refs), 1);
	cr_assert_eq(cm_packet_bytes(p)[0], 0x81);
	cm_packet_unref(p); /* frees; a second free would abort under ASan */
}

/* ref on a dead packet (count 0) is a broken invariant: fatal. */
Test(cm_packet, ref_of_unreferenced_packet_aborts, .signal = SIGABRT)
{
	struct cm_packet *p = cm_packet_new(16);
	atomic_store(&p->refs, 0);
	cm_packet_ref(p);
}

static void *drop(void *arg)
{
	struct cm_packet *p = arg;
	for (int i = 0; i < 1000; i++)
		cm_packet_unref(p);
	return NULL;
}

Test(cm_packet, shared_refs_from_many_threads_free_once)
{
	/* Atomic count: many holders dropping concurrently free exactly once. */
	enum { T = 4, PER = 1000 };
	struct cm_packet *p = cm_packet_frame(CM_WS_BINARY, "z", 1);
	for (int i = 0; i < T * PER; i++)
		cm_packet_ref(p);
	pthread_t th[T];
	for (int i = 0; i < T; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, drop, p), 0);
	for (int i = 0; i < T; i++)
		pthread_join(th[i], NULL);
	cr_assert_eq(atomic_load(&p->refs), 1);
	cm_packet_unref(p);
}
