#include "cm_alloc.h"

#include <mimalloc.h>
#include <stdlib.h>

/* Weak: resolved when mimalloc is linked, null otherwise, so this object
 * links the same into the binaries, the tests and the sanitizer build. */
#pragma weak mi_option_set
#pragma weak mi_option_get

bool cm_alloc_tune(void)
{
	if (!mi_option_set || !mi_option_get)
		return false;
	if (getenv("MIMALLOC_DECOMMIT_DELAY") || getenv("MIMALLOC_PURGE_DELAY"))
		return false;
	mi_option_set(mi_option_decommit_delay, CM_ALLOC_DECOMMIT_DELAY_MS);
	return true;
}

long cm_alloc_decommit_delay_ms(void)
{
	return mi_option_get ? mi_option_get(mi_option_decommit_delay) : -1;
}
