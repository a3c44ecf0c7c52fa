#!/usr/bin/env bash
# `make compose-test`: deploy/docker-compose.yml for real, with podman.
#   1. deploy/podman-setup.sh: packages, containers.conf, base and Redis images;
#   2. builds the herald image from deploy/Dockerfile (layers cached);
#   3. brings the stack up with 2 gateways on private ports (loopback only),
#      then scales to 3 gateways;
#   4. deploy/compose-check.py: 30 clients on the shared ws/wss ports (JWT
#      auth), every gateway's CCU on the router's /api/gateways, messages
#      published into the compose Redis reach every client; one gateway is
#      stopped (SIGTERM, the compose scale-down path) and must drain (close
#      1001, exit 0, row gone), its clients reconnect to the other two and
#      a second round of messages reaches everyone;
#   5. tears everything down (containers and the slots volume; images stay
#      cached) and prints PASS or FAIL with the duration.
# Needs root (podman, apt-get). Podman runs compose through
# deploy/podman-compose-shim.py (Debian's podman-compose 1.0.3 mishandles
# network_mode: host; the shim applies the upstream fix).
set -uo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
t_start=$(date +%s)
project=heraldtest
py=/usr/bin/python3
[ -x "$py" ] || py=python3
image=${HERALD_IMAGE:-localhost/herald:latest}
ngw_start=2
ngw_max=3
work=""
stage="setup"

say() { echo "compose-test: $*" >&2; }
elapsed() { echo $(( $(date +%s) - t_start )); }

containers() { podman ps -a --filter "label=io.podman.compose.project=$project" --format '{{.Names}}' 2>/dev/null; }

dump_logs() {
	local c
	for c in $(containers); do
		echo "----- podman logs --tail 25 $c ($(podman inspect -f '{{.State.Status}} exit={{.State.ExitCode}}' "$c" 2>/dev/null)) -----" >&2
		timeout 10 podman logs --tail 25 "$c" >&2 2>&1
	done
}

teardown() {
	local c
	[ -n "${HERALD_KEEP:-}" ] && { say "HERALD_KEEP set: leaving project $project running (files in $work)"; return; }
	if [ -n "$(containers)" ]; then
		HERALD_GATEWAYS=$ngw_max timeout 120 "${compose[@]}" down -t 15 -v >/dev/null 2>&1
		# Whatever compose down missed (it only knows the current replica count).
		for c in $(containers); do timeout 30 podman rm -f -t 5 "$c" >/dev/null 2>&1; done
	fi
	podman volume rm -f "${project}_herald-slots" >/dev/null 2>&1 || true
	[ -n "$work" ] && rm -rf "$work"
}

finish() {
	local rc=$?
	trap - EXIT INT TERM
	if [ $rc -ne 0 ] && [ "$stage" != setup ]; then dump_logs; fi
	teardown
	if [ $rc -eq 0 ]; then
		echo "compose-test: PASS ($(elapsed) s: stack up, scaled to $ngw_max gateways, clients on the shared port, CCU per gateway on the router, publish delivered, drain of one gateway, teardown)"
	else
		echo "compose-test: FAIL at stage '$stage' after $(elapsed) s"
	fi
	exit $rc
}
trap finish EXIT
trap 'say "interrupted"; exit 130' INT TERM

fail() { say "$*"; exit 1; }

compose=("$py" "$root/deploy/podman-compose-shim.py" -p "$project" -f "$root/deploy/docker-compose.yml")

port_busy() { ss -Hltn "sport = :$1" | grep -q .; }
free_port_from() {
	local p=$1
	while port_busy "$p"; do p=$((p + 1)); [ "$p" -gt $(( $1 + 200 )) ] && return 1; done
	echo "$p"
}
http_ok() { # port path
	timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		printf "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" "$2" >&3
		read -r _ st _ <&3; [[ $st == 2* ]]' _ "$1" "$2" 2>/dev/null
}
redis_ping() { redis-cli -p "$1" ping >/dev/null 2>&1; }
wait_for() { # seconds description command...
	local end=$(( $(date +%s) + $1 )) what=$2
	shift 2
	until "$@"; do
		[ "$(date +%s)" -ge $end ] && fail "timed out waiting for $what"
		sleep 0.3
	done
}

[ "$(id -u)" = 0 ] || fail "needs root (podman, apt-get)"

# ---- 1. machine setup -----------------------------------------------------
say "setting up podman (deploy/podman-setup.sh)"
redis_image=$(bash deploy/podman-setup.sh | tail -n1) || fail "podman setup failed"
[ -n "$redis_image" ] || fail "podman setup did not name a Redis image"
command -v redis-cli >/dev/null || fail "redis-cli missing (make deps)"

# Leftovers of an interrupted run.
for c in $(containers); do podman rm -f -t 2 "$c" >/dev/null 2>&1; done
podman volume rm -f "${project}_herald-slots" >/dev/null 2>&1 || true

# ---- 2. image -------------------------------------------------------------
stage="image build"
say "building $image from deploy/Dockerfile"
t=$(date +%s)
# The build stage is tagged too (localhost/herald-build:cache) so that the
# prune below, which keeps repeated runs from filling the disk with old
# images, does not throw away the cached compiler layers.
{ BUILDAH_FORMAT=docker timeout 1200 podman build -q -f deploy/Dockerfile --target build \
	-t localhost/herald-build:cache . &&
  BUILDAH_FORMAT=docker timeout 1200 podman build -q -f deploy/Dockerfile -t "$image" .; } \
	>/tmp/herald-compose-build.log 2>&1 ||
	{ tail -n 30 /tmp/herald-compose-build.log >&2; fail "image build failed (log: /tmp/herald-compose-build.log)"; }
podman image prune -f --filter label=dev.herald.image >/dev/null 2>&1 || true   # only ours
say "image built in $(( $(date +%s) - t )) s"
for b in herald-gateway herald-router; do
	podman run --rm --no-healthcheck --entrypoint /bin/sh "$image" -c "test -x /usr/local/bin/$b" ||
		fail "$image has no $b (does it build? see the build log)"
done

# ---- 3. stack up, then scale ---------------------------------------------
stage="compose up"
work=$(mktemp -d /var/tmp/herald-compose-test.XXXXXX)
chmod 0755 "$work"
bash deploy/gen-dev-cert.sh "$work/certs" 2>/dev/null || fail "gen-dev-cert.sh failed"
mkdir -p "$work/secrets"
head -c 32 /dev/urandom | base64 | tr -d '\n' >"$work/secrets/jwt-secret"
# The image's user (10001) reads the secret through the bind mount.
chown 10001:10001 "$work/secrets/jwt-secret"
chmod 0400 "$work/secrets/jwt-secret"

# Ports: a random block of 20 below the ephemeral range (other tests on this
# machine bind fixed or ephemeral ports); every port in it must be free.
# Host networking means these are host ports: everything binds 127.0.0.1.
blk=""
for ((try = 0; try < 50; try++)); do
	b=$(( 24000 + (RANDOM % 400) * 20 ))
	ok=1
	for ((p = b; p < b + 20; p++)); do port_busy $p && { ok=0; break; }; done
	[ $ok = 1 ] && { blk=$b; break; }
done
[ -n "$blk" ] || fail "no free block of 20 ports"
redis_port=$blk ws_port=$((blk + 1)) wss_port=$((blk + 2)) admin_port=$((blk + 3))
gw_base=$((blk + 10))   # gateway slot n: admin port gw_base+n

export HERALD_IMAGE=$image HERALD_REDIS_IMAGE=$redis_image
export HERALD_REDIS_PORT=$redis_port HERALD_WS_PORT=$ws_port HERALD_WSS_PORT=$wss_port
export HERALD_ROUTER_ADMIN_PORT=$admin_port HERALD_GW_ADMIN_BASE=$gw_base
export HERALD_BIND=127.0.0.1 HERALD_ADMIN_BIND=127.0.0.1
export HERALD_CERT_DIR=$work/certs HERALD_JWT_SECRET_FILE=$work/secrets/jwt-secret
export HERALD_SECCOMP_PROFILE=$root/deploy/seccomp-herald.json
export HERALD_AUTH=jwt HERALD_GW_THREADS=2 HERALD_DRAIN_TIMEOUT=10s
say "ports: redis $redis_port, ws $ws_port, wss $wss_port, router admin $admin_port, gateway admin $((gw_base + 1))..$((gw_base + ngw_max))"

t=$(date +%s)
HERALD_GATEWAYS=$ngw_start timeout 180 "${compose[@]}" up -d --no-build >"$work/up1.log" 2>&1 ||
	{ tail -n 20 "$work/up1.log" >&2; fail "compose up failed"; }
wait_for 30 "Redis on $redis_port" redis_ping "$redis_port"
wait_for 30 "the router's /api/gateways on $admin_port" http_ok "$admin_port" /api/gateways
for ((n = 1; n <= ngw_start; n++)); do
	wait_for 30 "gateway slot $n /healthz" http_ok $((gw_base + n)) /healthz
done
say "stack up with $ngw_start gateways in $(( $(date +%s) - t )) s"

stage="scale up"
t=$(date +%s)
HERALD_GATEWAYS=$ngw_max timeout 180 "${compose[@]}" up -d --no-build >"$work/up2.log" 2>&1 ||
	{ tail -n 20 "$work/up2.log" >&2; fail "compose up (scale to $ngw_max) failed"; }
wait_for 30 "gateway slot $ngw_max /healthz" http_ok $((gw_base + ngw_max)) /healthz
running=$(podman ps --filter "label=io.podman.compose.project=$project" \
	--filter "label=com.docker.compose.service=gateway" --format '{{.Names}}' | wc -l)
[ "$running" = "$ngw_max" ] || fail "$running gateway containers running, want $ngw_max"
say "scaled to $ngw_max gateways in $(( $(date +%s) - t )) s: $(podman ps --filter "label=io.podman.compose.project=$project" --format '{{.Names}}' | tr '\n' ' ')"
for c in $(podman ps --filter "label=io.podman.compose.project=$project" --filter "label=com.docker.compose.service=gateway" --format '{{.Names}}'); do
	line=$(podman logs "$c" 2>&1 | grep 'gateway slot' | head -n1)
	say "  $c: ${line:-?}"
done
# The admin ports must belong to our containers, not to some other process
# that grabbed a port meanwhile: compare the listener's pid with the
# container's (the entrypoint execs, so the container's pid is the binary).
owns_port() { # container port
	local cpid
	cpid=$(podman inspect -f '{{.State.Pid}}' "$1") || return 1
	ss -Hltnp "sport = :$2" | grep -q "pid=$cpid,"
}
owns_port "${project}_router_1" "$admin_port" || fail "port $admin_port is not the router container's"
for ((n = 1; n <= ngw_max; n++)); do
	c=$(podman ps --filter "label=io.podman.compose.project=$project" --format '{{.Names}}' |
		while read -r x; do owns_port "$x" $((gw_base + n)) && echo "$x"; done)
	[ -n "$c" ] || fail "admin port $((gw_base + n)) (slot $n) belongs to none of our gateways"
done
owns_port "${project}_gateway_1" "$ws_port" || fail "ws port $ws_port is not served by our gateways"

# The user the gateways run as (the image's non-root user).
uid=$(podman top "${project}_gateway_1" user 2>/dev/null | tail -n1 | tr -d ' ')
[ "$uid" = herald ] || [ "$uid" = 10001 ] || fail "gateway runs as '$uid', want the herald user"

# The image's HEALTHCHECK (bash /dev/tcp probe of the admin port), run once
# by hand: podman runs healthchecks from systemd timers, absent here.
for c in "${project}_router_1" "${project}_gateway_1" "${project}_gateway_$ngw_max"; do
	podman healthcheck run "$c" >/dev/null 2>&1 || fail "healthcheck of $c failed"
done
say "image healthcheck passes on the router and the gateways"

# ---- 4. clients, publish, drain ------------------------------------------
stage="cluster check"
victim=${project}_gateway_$ngw_max
"$py" deploy/compose-check.py --ws-port "$ws_port" --wss-port "$wss_port" --ca "$work/certs/cert.pem" \
	--router-admin "$admin_port" --redis-port "$redis_port" --auth jwt \
	--jwt-secret-file "$work/secrets/jwt-secret" --clients 30 --messages 5 \
	--expect-gateways "$ngw_max" \
	--drain-cmd "timeout 60 podman stop -t 15 $victim >/dev/null" --drain-max-seconds 14 ||
	fail "compose-check.py failed"

stage="drain exit status"
code=$(podman inspect -f '{{.State.ExitCode}}' "$victim")
[ "$code" = 0 ] || fail "$victim exited with status $code after SIGTERM, want 0"
say "$victim exited 0 after its drain; removing it (scale to $((ngw_max - 1)))"
podman logs --tail 5 "$victim" 2>&1 | sed 's/^/  | /' >&2
podman rm "$victim" >/dev/null 2>&1
for ((n = 1; n < ngw_max; n++)); do
	http_ok $((gw_base + n)) /healthz || fail "gateway slot $n is not healthy after the drain"
done

# ---- 5. teardown ----------------------------------------------------------
stage="teardown"
[ -n "${HERALD_KEEP:-}" ] && exit 0    # finish() says what is left running
t=$(date +%s)
HERALD_GATEWAYS=$ngw_max timeout 120 "${compose[@]}" down -t 15 -v >"$work/down.log" 2>&1 ||
	{ tail -n 20 "$work/down.log" >&2; fail "compose down failed"; }
left=$(containers | wc -l)
[ "$left" = 0 ] || fail "$left containers left after compose down"
say "torn down in $(( $(date +%s) - t )) s"
exit 0
