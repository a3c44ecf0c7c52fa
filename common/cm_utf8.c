/* cm_utf8 — a UTF-8 validating DFA (the automaton of Hoehrmann's decoder)
 * in its shift-based form: each byte has one 64-bit row holding, for every
 * state, the next state as a bit offset, so a step is `row[byte] >> state &
 * 63` — one load that does not depend on the state, then a shift. ASCII runs
 * are skipped 8 bytes at a time while the DFA sits at a character boundary. */
#include "cm_utf8.h"

#include <string.h>

/* States, each stored as its bit offset (6 * index) in a row:
 * ACC at a boundary, REJ invalid (absorbing), C1/C2/C3 one/two/three
 * continuation bytes (80..BF) to go, E0 after E0 (next A0..BF: no overlong),
 * ED after ED (next 80..9F: no surrogates), F0 after F0 (next 90..BF: no
 * overlong), F4 after F4 (next 80..8F: nothing above U+10FFFF). */
enum { ACC, REJ, C1, C2, C3, E0, ED, F0, F4 };

#define S(x) ((uint64_t)(6 * (x)))
/* A row: from every state, go to REJ unless listed. */
#define ROW(acc, c1, c2, c3, e0, ed, f0, f4) \
	(S(acc) << S(ACC) | S(REJ) << S(REJ) | S(c1) << S(C1) | S(c2) << S(C2) | \
	 S(c3) << S(C3) | S(e0) << S(E0) | S(ed) << S(ED) | S(f0) << S(F0) | S(f4) << S(F4))

/*                          from: ACC  C1   C2   C3   E0   ED   F0   F4 */
#define ROW_ASCII             ROW(ACC, REJ, REJ, REJ, REJ, REJ, REJ, REJ)
#define ROW_80_8F             ROW(REJ, ACC, C1,  C2,  REJ, C1,  REJ, C2)
#define ROW_90_9F             ROW(REJ, ACC, C1,  C2,  REJ, C1,  C2,  REJ)
#define ROW_A0_BF             ROW(REJ, ACC, C1,  C2,  C1,  REJ, C2,  REJ)
#define ROW_BAD               ROW(REJ, REJ, REJ, REJ, REJ, REJ, REJ, REJ)
#define ROW_LEAD2             ROW(C1,  REJ, REJ, REJ, REJ, REJ, REJ, REJ)
#define ROW_E0                ROW(E0,  REJ, REJ, REJ, REJ, REJ, REJ, REJ)
#define ROW_LEAD3             ROW(C2,  REJ, REJ, REJ, REJ, REJ, REJ, REJ)
#define ROW_ED                ROW(ED,  REJ, REJ, REJ, REJ, REJ, REJ, REJ)
#define ROW_F0                ROW(F0,  REJ, REJ, REJ, REJ, REJ, REJ, REJ)
#define ROW_LEAD4             ROW(C3,  REJ, REJ, REJ, REJ, REJ, REJ, REJ)
#define ROW_F4                ROW(F4,  REJ, REJ, REJ, REJ, REJ, REJ, REJ)

static const uint64_t utf8_row[256] = {
	[0x00 ... 0x7F] = ROW_ASCII,
	[0x80 ... 0x8F] = ROW_80_8F,
	[0x90 ... 0x9F] = ROW_90_9F,
	[0xA0 ... 0xBF] = ROW_A0_BF,
	[0xC0 ... 0xC1] = ROW_BAD,   /* overlong 2-byte leads */
	[0xC2 ... 0xDF] = ROW_LEAD2,
	[0xE0]          = ROW_E0,
	[0xE1 ... 0xEC] = ROW_LEAD3,
	[0xED]          = ROW_ED,
	[0xEE ... 0xEF] = ROW_LEAD3,
	[0xF0]          = ROW_F0,
	[0xF1 ... 0xF3] = ROW_LEAD4,
	[0xF4]          = ROW_F4,
	[0xF5 ... 0xFF] = ROW_BAD,   /* above U+10FFFF */
};

uint32_t cm_utf8_step(uint32_t state, const uint8_t *p, size_t n)
{
	uint64_t s = state;
	size_t i = 0;

	/* Valid inputs are what this returns: ACCEPT (0) or an in-character
	 * offset (a multiple of 6 other than REJ's). */
	if (s % 6 != 0 || s > S(F4) || s == S(REJ))
		return CM_UTF8_REJECT;
	while (i < n) {
		if (s == S(ACC)) {
			/* ASCII fast path: 8 bytes per step while no high bit is set. */
			while (n - i >= 8) {
				uint64_t w;
				memcpy(&w, p + i, 8);
				if (w & 0x8080808080808080ull)
					break;
				i += 8;
			}
			while (i < n && p[i] < 0x80)
				i++;
			if (i == n)
				break;
		}
		s = utf8_row[p[i++]] >> s & 63;
		if (s == S(REJ))
			return CM_UTF8_REJECT;
	}
	return (uint32_t)s;
}

bool cm_utf8_valid(const uint8_t *p, size_t n)
{
	return cm_utf8_step(CM_UTF8_ACCEPT, p, n) == CM_UTF8_ACCEPT;
}
