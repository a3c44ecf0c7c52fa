/* herald-gateway — terminates client WebSocket connections (ws and wss).
 * See gw_opts.c for the flags and CONTRACT.md / docs/protocol.md for what
 * clients may rely on. */
#include "gw.h"
#include "gw_opts.h"
#include "cm_alloc.h"
#include "cm_log.h"

#include <stdio.h>

int main(int argc, char **argv)
{
	static struct gw_opts o;
	char err[512];
	int r;

	cm_alloc_tune();
	r = gw_opts_parse(&o, argc, argv, err, sizeof(err));

	if (r == 1)
		return 0;
	if (r < 0) {
		fprintf(stderr, "herald-gateway: %s (see --help)\n", err);
		return 2;
	}
	cm_log_init("herald-gateway", o.log_level);
	return gw_run(&o);
}
