#!/usr/bin/env bash
# `make run`: a local herald cluster for development, in the foreground.
#   Redis on a private port (first free from 6390) with its data dir in run/,
#   the router (admin and dashboard on 127.0.0.1:9100),
#   two gateways (gw1, gw2) sharing ws :8080 and wss :8443 via SO_REUSEPORT,
#   with a self-signed certificate from deploy/gen-dev-cert.sh in run/certs.
# Ctrl-C or SIGTERM stops everything this script started (by PID) and exits.
#
# Environment (all optional):
#   HERALD_BUILD=build        where the binaries are
#   HERALD_BIND=127.0.0.1     address the client listeners bind (0.0.0.0 for LAN)
#   HERALD_WS_PORT=8080  HERALD_WSS_PORT=8443  HERALD_ADMIN_PORT=9100
#   HERALD_REDIS_PORT=<first free from 6390>
#   HERALD_GATEWAYS=2         number of gateways
#   HERALD_GW_THREADS=1       --threads per gateway
#   HERALD_AUTH=none          "jwt" uses run/jwt-secret (created on first run)
#   HERALD_RUN_DIR=run        certificates, Redis's directory, logs
set -uo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
build=${HERALD_BUILD:-build}
run=${HERALD_RUN_DIR:-$root/run}
bind=${HERALD_BIND:-127.0.0.1}
ngw=${HERALD_GATEWAYS:-2}
threads=${HERALD_GW_THREADS:-1}
auth=${HERALD_AUTH:-none}
prefix=herald

gw_bin=$build/herald-gateway
rt_bin=$build/herald-router

say() { echo "local-cluster: $*" >&2; }
die() { say "$*"; stop_all; exit 1; }

# ---- processes we started: name and PID, stopped in reverse order ---------
names=()
pids=()
stop_all() {
	local i pid rc phase deadline
	# Ignore, not default: a second signal must not cut the cleanup short
	# (make relays SIGTERM to this script after the one sent to its group;
	# a second Ctrl-C). The cleanup is bounded: 15 s a phase, then SIGKILL.
	trap '' INT TERM HUP
	[ ${#pids[@]} -eq 0 ] && return 0
	say "stopping ${#pids[@]} processes"
	# Gateways first (they drain: close 1001 to their clients), then the
	# router, then Redis, so that nothing loses its broker mid-drain.
	for phase in gw router redis; do
		for ((i = 0; i < ${#pids[@]}; i++)); do
			[[ ${names[$i]} == "$phase"* ]] || continue
			kill -TERM "${pids[$i]}" 2>/dev/null
		done
		deadline=$((SECONDS + 15))
		for ((i = 0; i < ${#pids[@]}; i++)); do
			[[ ${names[$i]} == "$phase"* ]] || continue
			pid=${pids[$i]}
			while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
			if kill -0 "$pid" 2>/dev/null; then
				say "${names[$i]} (pid $pid) did not stop in time: SIGKILL"
				kill -KILL "$pid" 2>/dev/null
			fi
			wait "$pid" 2>/dev/null
			rc=$?
			say "${names[$i]} (pid $pid) exited with status $rc"
		done
	done
	pids=()
	names=()
}
trap 'say "signal received"; stop_all; exit 0' INT TERM HUP
trap 'stop_all' EXIT

# ---- helpers --------------------------------------------------------------
port_busy() { # port -> 0 if something listens on it (any address)
	ss -Hltn "sport = :$1" 2>/dev/null | grep -q . && return 0
	# Fallback when ss is missing: try to connect.
	command -v ss >/dev/null && return 1
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
free_port_from() { # first free port at or above $1
	local p=$1 end=$(( $1 + 100 ))
	while [ "$p" -lt "$end" ]; do
		port_busy "$p" || { echo "$p"; return 0; }
		p=$((p + 1))
	done
	return 1
}
want_port() { # name wanted-port -> the port to use (the wanted one if free)
	local p
	if port_busy "$2"; then
		p=$(free_port_from $(( $2 + 1 ))) || die "no free port near $2 for $1"
		say "port $2 ($1) is busy; using $p"
		echo "$p"
	else
		echo "$2"
	fi
}
http_get() { # host port path -> prints the body; status 0 on HTTP 2xx
	local host=$1 port=$2 path=$3 resp status
	resp=$(timeout 2 bash -c '
		exec 3<>"/dev/tcp/$1/$2" || exit 1
		printf "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" "$3" "$1" >&3
		cat <&3' _ "$host" "$port" "$path" 2>/dev/null) || return 1
	status=$(printf '%s' "$resp" | head -n1 | awk '{print $2}')
	printf '%s' "$resp" | sed '1,/^\r\{0,1\}$/d'
	[[ $status == 2* ]]
}
has_flag() { # binary flag -> 0 if --help mentions it
	"$1" --help 2>&1 | grep -q -- "$2"
}
wait_until() { # seconds description command...
	local limit=$(( SECONDS + $1 )) what=$2
	shift 2
	until "$@" >/dev/null 2>&1; do
		[ $SECONDS -ge $limit ] && return 1
		sleep 0.1
	done
	return 0
}
start() { # name logfile command... -> records the PID
	local name=$1 logf=$2
	shift 2
	"$@" >>"$logf" 2>&1 &
	pids+=("$!")
	names+=("$name")
	say "started $name (pid $!): $*"
}
alive() { kill -0 "${pids[$1]}" 2>/dev/null; }

# Children get their own process groups (job control), so that a Ctrl-C in
# the terminal reaches only this script, which then stops them in order.
set -m

# ---- preflight ------------------------------------------------------------
[ -x "$gw_bin" ] || { say "$gw_bin is missing: run make first"; exit 1; }
command -v redis-server >/dev/null || { say "redis-server is missing (make deps)"; exit 1; }
mkdir -p "$run/redis" "$run/logs"
for f in "$run"/logs/*.log; do [ -f "$f" ] && mv -f "$f" "$f.prev"; done

redis_port=${HERALD_REDIS_PORT:-$(free_port_from 6390)} || die "no free port for Redis"
ws_port=$(want_port ws "${HERALD_WS_PORT:-8080}")
wss_port=$(want_port wss "${HERALD_WSS_PORT:-8443}")
admin_port=$(want_port router-admin "${HERALD_ADMIN_PORT:-9100}")

bash deploy/gen-dev-cert.sh "$run/certs" || die "could not create the dev certificate"

# ---- Redis ----------------------------------------------------------------
start redis "$run/logs/redis.log" redis-server --port "$redis_port" --bind 127.0.0.1 \
	--dir "$run/redis" --save "" --appendonly no --daemonize no --protected-mode yes
wait_until 10 redis redis-cli -p "$redis_port" ping || die "Redis did not answer on $redis_port (see run/logs/redis.log)"
redis_addr=127.0.0.1:$redis_port

# ---- router ---------------------------------------------------------------
have_router=0
if [ -x "$rt_bin" ]; then
	start router "$run/logs/router.log" "$rt_bin" --redis "$redis_addr" --redis-prefix "$prefix" \
		--admin "127.0.0.1:$admin_port"
	have_router=1
else
	say "NOTE: $rt_bin does not exist yet: running the gateways without a router"
	say "      (publishes are not relayed until the router is built)"
fi

# ---- gateways -------------------------------------------------------------
auth_args=(--auth "$auth")
if [ "$auth" = jwt ]; then
	if [ ! -s "$run/jwt-secret" ]; then
		head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$run/jwt-secret"
		chmod 600 "$run/jwt-secret"
	fi
	auth_args+=(--jwt-secret-file "$run/jwt-secret")
fi
tls_ok=0
has_flag "$gw_bin" --tls-listen && tls_ok=1
gw_admin=()
for ((g = 1; g <= ngw; g++)); do
	ap=$(want_port "gw$g-admin" $(( 9200 + g )))
	gw_admin+=("$ap")
	args=(--id "gw$g" --listen "$bind:$ws_port" --redis "$redis_addr" --redis-prefix "$prefix"
		"${auth_args[@]}" --admin "127.0.0.1:$ap")
	[ $tls_ok = 1 ] && args+=(--tls-listen "$bind:$wss_port" --cert "$run/certs/cert.pem" --key "$run/certs/key.pem")
	has_flag "$gw_bin" --threads && args+=(--threads "$threads")
	start "gw$g" "$run/logs/gw$g.log" "$gw_bin" "${args[@]}"
done

# ---- readiness ------------------------------------------------------------
for ((g = 1; g <= ngw; g++)); do
	i=$(( g + have_router ))   # index in pids[]: redis, [router], gw1, gw2 ...
	if ! wait_until 10 "gw$g" http_get 127.0.0.1 "${gw_admin[$((g - 1))]}" /healthz; then
		alive "$i" || die "gw$g exited at start; see run/logs/gw$g.log: $(tail -n 3 "$run/logs/gw$g.log")"
		say "gw$g: /healthz not answering yet on 127.0.0.1:${gw_admin[$((g - 1))]} (continuing)"
	fi
done
if [ $have_router = 1 ] && ! wait_until 10 router http_get 127.0.0.1 "$admin_port" /api/gateways; then
	alive 1 || die "the router exited at start; see run/logs/router.log: $(tail -n 3 "$run/logs/router.log")"
	say "router: /api/gateways not answering yet (continuing)"
fi

host=$bind
[ "$host" = 0.0.0.0 ] && host=127.0.0.1
cat <<EOF

================================================================================
 herald local cluster is up
--------------------------------------------------------------------------------
EOF
if [ "$auth" = none ]; then
	cat <<EOF
 !!! AUTHENTICATION IS OFF (--auth none): any client connects as any user    !!!
 !!! with ?user=NAME. For local development only: never expose these ports.  !!!
--------------------------------------------------------------------------------
EOF
	q="user=alice&streams=demo"
else
	cat <<EOF
 JWT auth: HS256 secret in run/jwt-secret; clients pass ?token=JWT (claims sub, exp)
--------------------------------------------------------------------------------
EOF
	q="token=JWT&streams=demo"
fi
cat <<EOF
 WebSocket (ws)   ws://$host:$ws_port/ws?$q
EOF
[ $tls_ok = 1 ] && cat <<EOF
 WebSocket (wss)  wss://$host:$wss_port/ws?$q
                  (self-signed: open https://$host:$wss_port/ once in the browser
                   and accept the certificate; the page itself answers 404)
EOF
if [ $have_router = 1 ]; then
	echo " Dashboard        http://127.0.0.1:$admin_port/   (JSON: /api/gateways, Prometheus: /metrics)"
else
	echo " Dashboard        (no router yet)"
fi
for ((g = 1; g <= ngw; g++)); do
	echo " gw$g admin        http://127.0.0.1:${gw_admin[$((g - 1))]}/metrics  /healthz  /readyz"
done
cat <<EOF
 Redis            127.0.0.1:$redis_port (no persistence; data dir run/redis)
 Logs             run/logs/{redis,router,gw1,gw2}.log

 Publish from a shell:
   redis-cli -p $redis_port PUBLISH $prefix:stream:demo hello
   redis-cli -p $redis_port PUBLISH $prefix:user:alice 'just for alice'
   redis-cli -p $redis_port PUBLISH $prefix:all 'everyone'

 Paste into a browser console (any page on http://, e.g. the dashboard):
   const ws = new WebSocket("ws://$host:$ws_port/ws?$q");
   ws.onmessage = (e) => console.log("herald:", JSON.parse(e.data));
   ws.onclose = (e) => console.log("closed", e.code, e.reason);
   ws.onopen = () => ws.send(JSON.stringify({id: 1, publish: {stream: "demo", data: "hi from the browser"}}));

 Ctrl-C stops everything.
================================================================================
EOF

# ---- foreground: wait until a signal or until a process dies --------------
while :; do
	for ((i = 0; i < ${#pids[@]}; i++)); do
		if ! alive "$i"; then
			wait "${pids[$i]}" 2>/dev/null
			rc=$?
			say "${names[$i]} (pid ${pids[$i]}) exited unexpectedly with status $rc; last lines of its log:"
			tail -n 5 "$run/logs/${names[$i]}.log" >&2
			stop_all
			exit 1
		fi
	done
	sleep 1 &
	wait $! 2>/dev/null   # returns at once on a trapped signal
done
