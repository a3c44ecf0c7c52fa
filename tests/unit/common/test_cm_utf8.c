#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "cm_utf8.h"
#include "tests/utf8_ref.h"

#define V(s) cm_utf8_valid((const uint8_t *)(s), sizeof(s) - 1)

/* Encodes code point c (no checks) into out; returns the length. */
static size_t encode(uint32_t c, uint8_t *out)
{
	if (c < 0x80) {
		out[0] = (uint8_t)c;
		return 1;
	} else if (c < 0x800) {
		out[0] = (uint8_t)(0xC0 | (c >> 6));
		out[1] = (uint8_t)(0x80 | (c & 0x3F));
		return 2;
	} else if (c < 0x10000) {
		out[0] = (uint8_t)(0xE0 | (c >> 12));
		out[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
		out[2] = (uint8_t)(0x80 | (c & 0x3F));
		return 3;
	}
	out[0] = (uint8_t)(0xF0 | (c >> 18));
	out[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3F));
	out[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
	out[3] = (uint8_t)(0x80 | (c & 0x3F));
	return 4;
}

Test(cm_utf8, accepts_empty_and_ascii)
{
	cr_assert(cm_utf8_valid(NULL, 0));
	cr_assert(V("hello, world"));
	cr_assert(V("a longer ASCII string that crosses several 8-byte words\x7f"));
}

Test(cm_utf8, rejects_overlong_encodings)
{
	cr_assert_not(V("\xC0\x80"));
	cr_assert_not(V("\xC1\xBF"));
	cr_assert_not(V("\xE0\x80\x80"));
	cr_assert_not(V("\xE0\x9F\xBF"));
	cr_assert_not(V("\xF0\x80\x80\x80"));
	cr_assert_not(V("\xF0\x8F\xBF\xBF"));
}

Test(cm_utf8, rejects_surrogates)
{
	cr_assert_not(V("\xED\xA0\x80"));  /* U+D800 */
	cr_assert_not(V("\xED\xBF\xBF"));  /* U+DFFF */
	cr_assert(V("\xED\x9F\xBF"));      /* U+D7FF */
	cr_assert(V("\xEE\x80\x80"));      /* U+E000 */
}

Test(cm_utf8, rejects_code_points_above_10ffff)
{
	cr_assert_not(V("\xF4\x90\x80\x80"));
	cr_assert_not(V("\xF5\x80\x80\x80"));
	cr_assert_not(V("\xFF"));
	cr_assert_not(V("\xFE"));
}

Test(cm_utf8, rejects_truncated_sequences)
{
	cr_assert_not(V("\xC3"));
	cr_assert_not(V("\xE2\x82"));
	cr_assert_not(V("\xF0\x9F\x98"));
	cr_assert_not(V("abc\xF0\x9F"));
	cr_assert_not(V("\xE2\x82" "a"));
}

Test(cm_utf8, rejects_stray_continuation_bytes)
{
	cr_assert_not(V("\x80"));
	cr_assert_not(V("a\xBF"));
	cr_assert_not(V("\xC3\xA9\xA9"));
}

Test(cm_utf8, accepts_every_length_boundary)
{
	static const uint32_t cps[] = { 0x7F, 0x80, 0x7FF, 0x800, 0xFFFF, 0x10000, 0x10FFFF };
	static const size_t lens[] = { 1, 2, 2, 3, 3, 4, 4 };
	for (size_t i = 0; i < sizeof(cps) / sizeof(cps[0]); i++) {
		uint8_t b[4];
		size_t n = encode(cps[i], b);
		cr_assert_eq(n, lens[i]);
		cr_assert(cm_utf8_valid(b, n), "U+%X must be valid", cps[i]);
		/* Every proper prefix is incomplete but not rejected. */
		for (size_t k = 1; k < n; k++) {
			uint32_t s = cm_utf8_step(CM_UTF8_ACCEPT, b, k);
			cr_assert_neq(s, CM_UTF8_ACCEPT);
			cr_assert_neq(s, CM_UTF8_REJECT);
		}
	}
	cr_assert(V("\xC2\x80\xDF\xBF\xE0\xA0\x80\xEF\xBF\xBF\xF0\x90\x80\x80\xF4\x8F\xBF\xBF"));
}

Test(cm_utf8, reject_is_sticky)
{
	uint32_t s = cm_utf8_step(CM_UTF8_ACCEPT, (const uint8_t *)"\xFF", 1);
	cr_assert_eq(s, CM_UTF8_REJECT);
	s = cm_utf8_step(s, (const uint8_t *)"abc", 3);
	cr_assert_eq(s, CM_UTF8_REJECT);
	s = cm_utf8_step(s, NULL, 0);
	cr_assert_eq(s, CM_UTF8_REJECT);
}

Test(cm_utf8, step_resumes_at_every_split_point)
{
	static const char *cases[] = {
		"plain ascii text, long enough for the fast path",
		"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 end \xF4\x8F\xBF\xBF",
		"abcdefgh\xC3\xA9ijklmnop\xE2\x82\xACqrstuvwx",
		"bad \xED\xA0\x80 surrogate",
		"bad overlong \xE0\x80\x80 here",
		"truncated at end \xF0\x9F\x98",
		"\xF4\x90\x80\x80 too high",
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		const uint8_t *p = (const uint8_t *)cases[c];
		size_t n = strlen(cases[c]);
		bool want = ref_valid(p, n);
		cr_assert_eq(cm_utf8_valid(p, n), want, "case %zu", c);
		for (size_t i = 0; i <= n; i++) {
			for (size_t j = i; j <= n; j++) {
				uint32_t s = cm_utf8_step(CM_UTF8_ACCEPT, p, i);
				s = cm_utf8_step(s, p + i, j - i);
				s = cm_utf8_step(s, p + j, n - j);
				cr_assert_eq(s == CM_UTF8_ACCEPT, want, "case %zu split %zu/%zu", c, i, j);
			}
		}
	}
}

Test(cm_utf8, byte_by_byte_matches_whole)
{
	const uint8_t *p = (const uint8_t *)"x\xE2\x82\xAC\xF0\x9F\x98\x80y";
	size_t n = 10;
	uint32_t s = CM_UTF8_ACCEPT;
	for (size_t i = 0; i < n; i++)
		s = cm_utf8_step(s, p + i, 1);
	cr_assert_eq(s, CM_UTF8_ACCEPT);
}

Test(cm_utf8, every_two_and_three_byte_prefix_matches_reference)
{
	uint8_t b[3];
	for (unsigned a = 0; a < 256; a++) {
		for (unsigned c = 0; c < 256; c++) {
			b[0] = (uint8_t)a;
			b[1] = (uint8_t)c;
			cr_assert_eq(cm_utf8_valid(b, 2), ref_valid(b, 2), "%02x %02x", a, c);
			b[2] = 0x80;
			cr_assert_eq(cm_utf8_valid(b, 3), ref_valid(b, 3), "%02x %02x 80", a, c);
			b[2] = 0xBF;
			cr_assert_eq(cm_utf8_valid(b, 3), ref_valid(b, 3), "%02x %02x bf", a, c);
		}
	}
}

Test(cm_utf8, every_code_point_is_accepted)
{
	uint8_t b[4];
	for (uint32_t c = 0; c <= 0x10FFFF; c++) {
		size_t n = encode(c, b);
		bool want = !(c >= 0xD800 && c <= 0xDFFF);
		if (cm_utf8_valid(b, n) != want)
			cr_assert_fail("U+%X", c);
	}
}

Test(cm_utf8, matches_reference_decoder_on_random_inputs)
{
	/* Deterministic xorshift; inputs biased toward near-valid UTF-8. */
	uint64_t x = 0x9E3779B97F4A7C15ull;
	uint8_t buf[64];
	for (int iter = 0; iter < 200000; iter++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		size_t n = x % sizeof(buf);
		uint64_t y = x;
		size_t i = 0;
		while (i < n) {
			y ^= y << 13;
			y ^= y >> 7;
			y ^= y << 17;
			switch (y % 4) {
			case 0: /* random byte */
				buf[i++] = (uint8_t)(y >> 8);
				break;
			case 1: /* ASCII */
				buf[i++] = (uint8_t)((y >> 8) & 0x7F);
				break;
			default: { /* an encoded code point, maybe invalid */
				uint8_t e[4];
				size_t k = encode((uint32_t)((y >> 8) % 0x110400), e);
				for (size_t m = 0; m < k && i < n; m++)
					buf[i++] = e[m];
				break;
			}
			}
		}
		bool want = ref_valid(buf, n);
		if (cm_utf8_valid(buf, n) != want)
			cr_assert_fail("iteration %d disagrees with the reference", iter);
		size_t cut = n ? (size_t)(y >> 32) % n : 0;
		uint32_t s = cm_utf8_step(CM_UTF8_ACCEPT, buf, cut);
		s = cm_utf8_step(s, buf + cut, n - cut);
		if ((s == CM_UTF8_ACCEPT) != want)
			cr_assert_fail("iteration %d split %zu disagrees", iter, cut);
	}
}

Test(cm_utf8, in_character_states_are_neither_accept_nor_reject_and_foreign_states_reject)
{
	uint32_t s = cm_utf8_step(CM_UTF8_ACCEPT, (const uint8_t *)"\xF0", 1);
	cr_assert_neq(s, CM_UTF8_ACCEPT);
	cr_assert_neq(s, CM_UTF8_REJECT);
	/* A state this module never returned is refused, not misread. */
	cr_assert_eq(cm_utf8_step(12345, (const uint8_t *)"a", 1), CM_UTF8_REJECT);
	cr_assert_eq(cm_utf8_step(7, NULL, 0), CM_UTF8_REJECT);
}
