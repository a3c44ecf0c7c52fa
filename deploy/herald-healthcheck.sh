#!/bin/bash
# The image's HEALTHCHECK: GET the admin health path with bash's /dev/tcp (no
# curl in the image). Exits 0 on an HTTP 2xx answer, 1 otherwise.
#   herald-healthcheck [HOST:PORT [PATH]]
# Defaults come from /tmp/herald-health, written by herald-entrypoint
# ("HOST:PORT PATH"): a gateway's /healthz, the router's /api/gateways.
set -u
addr=${1:-}
path=${2:-}
if [ -z "$addr" ] && [ -r /tmp/herald-health ]; then
	read -r addr path </tmp/herald-health
fi
addr=${addr:-127.0.0.1:9101}
path=${path:-/healthz}
host=${addr%:*}
port=${addr##*:}
host=${host#[}
host=${host%]}
exec 3<>"/dev/tcp/$host/$port" || exit 1
printf 'GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$path" "$host" >&3
read -r -t 3 _ status _ <&3 || exit 1
[[ $status == 2* ]]
