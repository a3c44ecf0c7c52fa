/* cm_utf8 — a table-driven UTF-8 DFA in the manner of Hoehrmann's decoder,
 * validating only (no code point is assembled). Each byte maps to one of 12
 * classes; the state says what the next bytes may be. ASCII runs are skipped
 * 8 bytes at a time while the DFA sits at a character boundary. */
#include "cm_utf8.h"

#include <string.h>

/* Byte classes:
 *  0 00..7F   1 80..8F   2 C2..DF   3 E1..EC,EE..EF   4 ED   5 F4
 *  6 F1..F3   7 A0..BF   8 C0..C1,F5..FF   9 90..9F  10 E0  11 F0 */
static const uint8_t utf8_class[256] = {
	/* 00..7F */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	/* 80..8F */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	/* 90..9F */
	9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9,
	/* A0..BF */
	7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
	7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
	/* C0..DF */
	8, 8, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	/* E0..EF */
	10, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 3, 3,
	/* F0..FF */
	11, 6, 6, 6, 5, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8,
};

/* States: 0 accept, 1 reject, 2 one continuation byte to go, 3 two to go,
 * 4 after E0 (next A0..BF), 5 after ED (next 80..9F: no surrogates),
 * 6 three to go, 7 after F0 (next 90..BF), 8 after F4 (next 80..8F). */
enum { S_ACC = 0, S_REJ = 1, S_C1, S_C2, S_E0, S_ED, S_C3, S_F0, S_F4, S_COUNT };

#define R S_REJ
static const uint8_t utf8_next[S_COUNT][12] = {
	/*          0      1      2      3      4      5      6      7      8      9      10     11 */
	[S_ACC] = { S_ACC, R,     S_C1,  S_C2,  S_ED,  S_F4,  S_C3,  R,     R,     R,     S_E0,  S_F0 },
	[S_REJ] = { R,     R,     R,     R,     R,     R,     R,     R,     R,     R,     R,     R    },
	[S_C1]  = { R,     S_ACC, R,     R,     R,     R,     R,     S_ACC, R,     S_ACC, R,     R    },
	[S_C2]  = { R,     S_C1,  R,     R,     R,     R,     R,     S_C1,  R,     S_C1,  R,     R    },
	[S_E0]  = { R,     R,     R,     R,     R,     R,     R,     S_C1,  R,     R,     R,     R    },
	[S_ED]  = { R,     S_C1,  R,     R,     R,     R,     R,     R,     R,     S_C1,  R,     R    },
	[S_C3]  = { R,     S_C2,  R,     R,     R,     R,     R,     S_C2,  R,     S_C2,  R,     R    },
	[S_F0]  = { R,     R,     R,     R,     R,     R,     R,     S_C2,  R,     S_C2,  R,     R    },
	[S_F4]  = { R,     S_C2,  R,     R,     R,     R,     R,     R,     R,     R,     R,     R    },
};
#undef R

uint32_t cm_utf8_step(uint32_t state, const uint8_t *p, size_t n)
{
	size_t i = 0;

	if (state >= S_COUNT)
		return CM_UTF8_REJECT;
	while (i < n) {
		if (state == S_ACC) {
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
		state = utf8_next[state][utf8_class[p[i++]]];
		if (state == S_REJ)
			return CM_UTF8_REJECT;
	}
	return state;
}

bool cm_utf8_valid(const uint8_t *p, size_t n)
{
	return cm_utf8_step(CM_UTF8_ACCEPT, p, n) == CM_UTF8_ACCEPT;
}
