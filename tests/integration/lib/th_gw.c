/* th_gw — see th_gw.h. */
#include "th_gw.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void th_gw_start(struct th_gw *gw, const struct th_gw_opts *o)
{
	static char sbuf[8][128];
	char *argv[TH_MAX_ARGS + 1];
	int n = 0;
	memset(gw, 0, sizeof(*gw));
	gw->port = o->port ? o->port : th_free_port();
	gw->admin_port = th_free_port();
	static char nofile[48];
	if (o->nofile > 0) {
		argv[n++] = "/usr/bin/prlimit";
		snprintf(nofile, sizeof(nofile), "--nofile=%d:%d", o->nofile, o->nofile);
		argv[n++] = nofile;
		argv[n++] = "--";
	}
	argv[n++] = (char *)th_bin("herald-gateway");
	argv[n++] = "--listen";
	snprintf(sbuf[0], sizeof(sbuf[0]), "127.0.0.1:%d", gw->port);
	argv[n++] = sbuf[0];
	argv[n++] = "--admin";
	snprintf(sbuf[1], sizeof(sbuf[1]), "127.0.0.1:%d", gw->admin_port);
	argv[n++] = sbuf[1];
	argv[n++] = "--redis";
	if (o->redis_port) {
		snprintf(sbuf[2], sizeof(sbuf[2]), "127.0.0.1:%d", o->redis_port);
		argv[n++] = sbuf[2];
	} else {
		argv[n++] = "none";
	}
	argv[n++] = "--auth";
	argv[n++] = (char *)(o->auth ? o->auth : "none");
	if (o->jwt_secret) {
		argv[n++] = "--jwt-secret-file";
		snprintf(sbuf[3], sizeof(sbuf[3]), "%s",
			 th_write_file("jwt.secret", o->jwt_secret, strlen(o->jwt_secret)));
		argv[n++] = sbuf[3];
	}
	argv[n++] = "--threads";
	snprintf(sbuf[4], sizeof(sbuf[4]), "%d", o->threads ? o->threads : 2);
	argv[n++] = sbuf[4];
	if (o->id) {
		argv[n++] = "--id";
		argv[n++] = (char *)o->id;
	}
	if (o->tls_cert_kind) {
		const char *c, *k;
		th_make_cert(o->tls_cert_kind, &c, &k);
		gw->tls_port = th_free_port();
		argv[n++] = "--tls-listen";
		snprintf(sbuf[5], sizeof(sbuf[5]), "127.0.0.1:%d", gw->tls_port);
		argv[n++] = sbuf[5];
		argv[n++] = "--cert";
		snprintf(sbuf[6], sizeof(sbuf[6]), "%s", c);
		argv[n++] = sbuf[6];
		argv[n++] = "--key";
		snprintf(sbuf[7], sizeof(sbuf[7]), "%s", k);
		argv[n++] = sbuf[7];
	}
	for (int i = 0; o->extra[i]; i++) {
		cr_assert(n < TH_MAX_ARGS - 1);
		argv[n++] = (char *)o->extra[i];
	}
	argv[n] = NULL;
	gw->proc = th_spawn("gateway", argv, NULL);
	const char *what = NULL;
	if (th_wait_port(gw->port, 15000) != 0)
		what = "plain listener";
	else if (gw->tls_port && th_wait_port(gw->tls_port, 15000) != 0)
		what = "TLS listener";
	else if (th_wait_http_200(gw->admin_port, "/readyz", 15000) != 0)
		what = "/readyz";
	if (what) {
		char *body = NULL;
		int st = th_http_get(gw->admin_port, "/readyz", &body, NULL);
		fprintf(stderr, "th_gw: %s not up after 15 s (ports %d/%d/%d, /readyz %d %s)\n",
			what, gw->port, gw->tls_port, gw->admin_port, st, body ? body : "");
		free(body);
		th_dump_log(gw->proc, 4000);
		cr_assert_fail("herald-gateway did not come up: %s (alive: %d)", what,
			       th_alive(gw->proc));
	}
}

int th_gw_stop(struct th_gw *gw, int timeout_ms)
{
	int rc = th_stop(gw->proc, timeout_ms);
	if (rc != 0)
		th_dump_log(gw->proc, 4000);
	return rc;
}

double th_gw_metric(const struct th_gw *gw, const char *name, const char *label_sub)
{
	return th_metrics_get(gw->admin_port, name, label_sub);
}
