/* utf8_ref — a slow, obviously-correct UTF-8 validator (each character
 * decoded by hand), the reference cm_utf8 is checked against in its unit
 * test and its fuzz target. */
#ifndef TESTS_UTF8_REF_H
#define TESTS_UTF8_REF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static inline bool ref_valid(const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint32_t c = p[i];
		size_t len;
		uint32_t min;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xE0) == 0xC0) {
			len = 2, min = 0x80, c &= 0x1F;
		} else if ((c & 0xF0) == 0xE0) {
			len = 3, min = 0x800, c &= 0x0F;
		} else if ((c & 0xF8) == 0xF0) {
			len = 4, min = 0x10000, c &= 0x07;
		} else {
			return false;
		}
		if (i + len > n)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((p[i + k] & 0xC0) != 0x80)
				return false;
			c = (c << 6) | (p[i + k] & 0x3F);
		}
		if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
			return false;
		i += len;
	}
	return true;
}

#endif
