/* herald-load — the load generator: see ld_run.h and --help. */
#include "cm_alloc.h"
#include "cm_log.h"
#include "ld_opts.h"
#include "ld_run.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	static struct ld_opts o;
	char err[512];
	int r;

	cm_alloc_tune();
	cm_log_init("herald-load", CM_LOG_INFO);
	r = ld_opts_parse(&o, argc, argv, err, sizeof(err));
	if (r == 1) {
		ld_opts_usage(stdout);
		return 0;
	}
	if (r < 0) {
		fprintf(stderr, "herald-load: %s\n", err);
		return 2;
	}
	r = ld_run(&o);
	free(o.jwt_secret);
	return r;
}
