// fuzz-sources: common/cm_utf8.c
/* fuzz_utf8 — cm_utf8 against a slow reference decoder, whole and resumed
 * at a split point taken from the input. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "cm_utf8.h"

static bool ref_valid(const uint8_t *p, size_t n)
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bool want = ref_valid(data, size);
	if (cm_utf8_valid(data, size) != want)
		abort();
	if (size) {
		size_t cut = data[0] % (size + 1);
		uint32_t s = cm_utf8_step(CM_UTF8_ACCEPT, data, cut);
		s = cm_utf8_step(s, data + cut, size - cut);
		if ((s == CM_UTF8_ACCEPT) != want)
			abort();
	}
	return 0;
}
