# A small Redis 7 image for hosts that cannot pull the official one
# (deploy/podman-setup.sh builds it only when docker.io/library/redis is absent).
FROM docker.io/library/debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server redis-tools \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data
USER redis
WORKDIR /data
EXPOSE 6379
# Pub/sub only: no persistence. Protected mode off because the compose network
# (or the host's loopback) is the boundary; bind where compose tells it to.
CMD ["redis-server", "--save", "", "--appendonly", "no", "--protected-mode", "no", "--bind", "0.0.0.0"]
