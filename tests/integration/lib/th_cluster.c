/* th_cluster — see th_cluster.h. */
#include "th_cluster.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void th_router_start(struct th_router *r, int redis_port, const char *const *extra)
{
	static char redis[64], admin[64];
	char *argv[TH_MAX_ARGS + 1];
	int n = 0;

	memset(r, 0, sizeof(*r));
	r->redis_port = redis_port;
	r->admin_port = th_free_port();
	snprintf(redis, sizeof(redis), "127.0.0.1:%d", redis_port);
	snprintf(admin, sizeof(admin), "127.0.0.1:%d", r->admin_port);
	argv[n++] = (char *)th_bin("herald-router");
	argv[n++] = "--redis";
	argv[n++] = redis;
	argv[n++] = "--admin";
	argv[n++] = admin;
	for (int i = 0; extra && extra[i]; i++) {
		cr_assert(n < TH_MAX_ARGS - 1);
		argv[n++] = (char *)extra[i];
	}
	argv[n] = NULL;
	r->proc = th_spawn("router", argv, NULL);
	if (th_wait_http_200(r->admin_port, "/api/gateways", 10000)) {
		th_dump_log(r->proc, 4000);
		cr_assert_fail("herald-router did not come up (alive: %d)", th_alive(r->proc));
	}
}

int th_router_gateways(const struct th_router *r, struct th_gwrow *rows, int max)
{
	char *body = NULL;
	cJSON *j, *e;
	int n = 0;

	if (th_http_get(r->admin_port, "/api/gateways", &body, NULL) != 200) {
		free(body);
		return -1;
	}
	j = cJSON_Parse(body);
	free(body);
	if (!cJSON_IsArray(j)) {
		cJSON_Delete(j);
		return -1;
	}
	cJSON_ArrayForEach(e, j) {
		if (n < max) {
			cJSON *id = cJSON_GetObjectItem(e, "id");
			cJSON *ccu = cJSON_GetObjectItem(e, "ccu");
			cJSON *st = cJSON_GetObjectItem(e, "streams");
			cJSON *state = cJSON_GetObjectItem(e, "state");
			memset(&rows[n], 0, sizeof(rows[n]));
			snprintf(rows[n].id, sizeof(rows[n].id), "%s",
				 cJSON_IsString(id) ? id->valuestring : "");
			rows[n].ccu = cJSON_IsNumber(ccu) ? (long long)ccu->valuedouble : -1;
			rows[n].streams = cJSON_IsNumber(st) ? (long long)st->valuedouble : -1;
			snprintf(rows[n].state, sizeof(rows[n].state), "%s",
				 cJSON_IsString(state) ? state->valuestring : "");
		}
		n++;
	}
	cJSON_Delete(j);
	return n;
}

long long th_router_gw_ccu(const struct th_router *r, const char *id)
{
	struct th_gwrow rows[64];
	int n = th_router_gateways(r, rows, 64);

	for (int i = 0; i < n && i < 64; i++)
		if (!strcmp(rows[i].id, id))
			return rows[i].ccu;
	return -1;
}

double th_router_metric(const struct th_router *r, const char *name, const char *label_sub)
{
	return th_metrics_get(r->admin_port, name, label_sub);
}

long long th_ccu_hash(int redis_port, const char *id)
{
	long long v;
	return th_redis_hget_ll(redis_port, "herald:ccu", id, &v) ? v : -1;
}
