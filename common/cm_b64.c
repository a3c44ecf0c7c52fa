#include "cm_b64.h"

static const char enc_tab[64] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* 1 + the value of an alphabet character; 0 for anything else. */
static const uint8_t dec_tab[256] = {
	['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6, ['G'] = 7,
	['H'] = 8, ['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13,
	['N'] = 14, ['O'] = 15, ['P'] = 16, ['Q'] = 17, ['R'] = 18, ['S'] = 19,
	['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24, ['Y'] = 25,
	['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31,
	['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37,
	['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42, ['q'] = 43,
	['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48, ['w'] = 49,
	['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55,
	['3'] = 56, ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61,
	['9'] = 62, ['+'] = 63, ['/'] = 64,
};

size_t cm_b64_encode(uint8_t *out, const uint8_t *in, size_t n)
{
	uint8_t *o = out;
	size_t i = 0;

	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		o[0] = (uint8_t)enc_tab[v >> 18];
		o[1] = (uint8_t)enc_tab[(v >> 12) & 63];
		o[2] = (uint8_t)enc_tab[(v >> 6) & 63];
		o[3] = (uint8_t)enc_tab[v & 63];
		o += 4;
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		o[0] = (uint8_t)enc_tab[v >> 18];
		o[1] = (uint8_t)enc_tab[(v >> 12) & 63];
		o[2] = '=';
		o[3] = '=';
		o += 4;
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		o[0] = (uint8_t)enc_tab[v >> 18];
		o[1] = (uint8_t)enc_tab[(v >> 12) & 63];
		o[2] = (uint8_t)enc_tab[(v >> 6) & 63];
		o[3] = '=';
		o += 4;
	}
	return (size_t)(o - out);
}

long cm_b64_decode(uint8_t *out, const uint8_t *in, size_t n)
{
	uint8_t *o = out;
	size_t i = 0, tail;

	/* Strip complete padding: "x==" or "xx=" groups only. */
	if (n % 4 == 0 && n >= 4) {
		if (in[n - 1] == '=' && in[n - 2] == '=')
			n -= 2;
		else if (in[n - 1] == '=')
			n -= 1;
	}
	tail = n % 4;
	if (tail == 1)
		return -1;
	for (; i + 4 <= n; i += 4) {
		uint32_t a = dec_tab[in[i]], b = dec_tab[in[i + 1]];
		uint32_t c = dec_tab[in[i + 2]], d = dec_tab[in[i + 3]];
		if (!a || !b || !c || !d)
			return -1;
		uint32_t v = (a - 1) << 18 | (b - 1) << 12 | (c - 1) << 6 | (d - 1);
		o[0] = (uint8_t)(v >> 16);
		o[1] = (uint8_t)(v >> 8);
		o[2] = (uint8_t)v;
		o += 3;
	}
	if (tail == 2) {
		uint32_t a = dec_tab[in[i]], b = dec_tab[in[i + 1]];
		if (!a-- || !b-- || (b & 0x0f))
			return -1;
		*o++ = (uint8_t)(a << 2 | b >> 4);
	} else if (tail == 3) {
		uint32_t a = dec_tab[in[i]], b = dec_tab[in[i + 1]], c = dec_tab[in[i + 2]];
		if (!a-- || !b-- || !c-- || (c & 0x03))
			return -1;
		*o++ = (uint8_t)(a << 2 | b >> 4);
		*o++ = (uint8_t)(b << 4 | c >> 2);
	}
	return (long)(o - out);
}
