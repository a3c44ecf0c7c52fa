// fuzz-sources: common/cm_utf8.c
/* fuzz_utf8 — cm_utf8 against a slow reference decoder, whole and resumed
 * at a split point taken from the input. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "cm_utf8.h"
#include "tests/utf8_ref.h"


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
