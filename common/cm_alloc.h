/* cm_alloc — how the process allocator hands memory back to the kernel.
 *
 * Every binary is linked with mimalloc (see the Makefile), whose default
 * decommit delay of 25 ms returns freed pages to the kernel almost at once:
 * a gateway that broadcasts once a second then faults the same pages back
 * in for every message (about one fault per four wss deliveries, measured),
 * and a page fault is dear in a virtual machine. cm_alloc_tune keeps freed
 * pages for CM_ALLOC_DECOMMIT_DELAY_MS instead, unless the operator set
 * MIMALLOC_DECOMMIT_DELAY (or MIMALLOC_PURGE_DELAY, its later name). Without
 * mimalloc (the sanitizer builds) it does nothing. */
#ifndef CM_ALLOC_H
#define CM_ALLOC_H

#include <stdbool.h>

#define CM_ALLOC_DECOMMIT_DELAY_MS 2000

/* Call first thing in main. True when it changed the delay. */
bool cm_alloc_tune(void);
/* The decommit delay in force, ms; -1 without mimalloc. */
long cm_alloc_decommit_delay_ms(void);

#endif
