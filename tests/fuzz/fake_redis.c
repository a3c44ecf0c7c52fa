/* A Redis client that never connects, for the fuzz targets that link the
 * router or the gateway's cluster link without common/cm_redis.c: listed in
 * their `// fuzz-sources:` line. */
#include "cm_redis.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

static char fake_redis;

struct cm_redis *cm_redis_new(struct cm_loop *loop, const char *host, int port, const char *name,
			      const struct cm_redis_cbs *cbs, void *arg)
{
	(void)loop, (void)host, (void)port, (void)name, (void)cbs, (void)arg;
	return (struct cm_redis *)&fake_redis;
}

void cm_redis_free(struct cm_redis *c)
{
	if (c && c != (struct cm_redis *)&fake_redis) {
		fputs("fake_redis: cm_redis_free of an unknown client\n", stderr);
		abort();
	}
}

struct redisAsyncContext *cm_redis_ctx(const struct cm_redis *c)
{
	(void)c;
	return NULL;
}

bool cm_redis_up(const struct cm_redis *c)
{
	(void)c;
	return false;
}

size_t cm_redis_pending(const struct redisAsyncContext *ac)
{
	(void)ac;
	return 0;
}

uint64_t cm_redis_reconnects(const struct cm_redis *c)
{
	(void)c;
	return 0;
}

/* Never reached: cm_redis_ctx() gives no context to write to. */
int cm_redis_reply_off(struct redisAsyncContext *ac)
{
	(void)ac;
	return -ENOTCONN;
}

int cm_redis_send_noreply(struct redisAsyncContext *ac, const char *cmd, size_t len)
{
	(void)ac, (void)cmd, (void)len;
	return -ENOTCONN;
}

uint64_t cm_redis_dropped(const struct cm_redis *c)
{
	(void)c;
	return 0;
}
