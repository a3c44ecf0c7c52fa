# bench/lib.sh — helpers of the benchmark suite (sourced by bench/run.sh):
# free ports, processes started and stopped by PID, a local cluster (Redis,
# router, G gateways sharing one port with SO_REUSEPORT), readings from /proc,
# and the figures file that bench/report.sh turns into docs/benchmarks.md.

PIDS=()            # every process we started, stopped by PID on exit
USED_PORTS=" "

log() { printf '%s bench: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# A TCP port nobody listens on, outside the ephemeral range, not handed out before.
free_port() {
	local p i
	for i in $(seq 1 200); do
		p=$((20000 + RANDOM % 12000))
		case "$USED_PORTS" in *" $p "*) continue ;; esac
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			USED_PORTS="$USED_PORTS$p "
			echo "$p"
			return 0
		fi
	done
	log "no free port found"
	return 1
}

# start_bg NAME CMD... : runs CMD in the background, output to $WD/NAME.log;
# sets LAST_PID.
start_bg() {
	local name=$1
	shift
	"$@" >"$WD/$name.log" 2>&1 &
	LAST_PID=$!
	PIDS+=("$LAST_PID")
}

# stop_pid PID [GRACE_S]: SIGTERM, then SIGKILL after the grace period.
stop_pid() {
	local pid=$1 grace=${2:-5} i
	[ -z "$pid" ] && return 0
	kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
	kill -TERM "$pid" 2>/dev/null
	for i in $(seq 1 $((grace * 10))); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "pid $pid did not stop in ${grace}s: SIGKILL"
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	return 0
}

stop_all() {
	local i
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		stop_pid "${PIDS[$i]}" 3
	done
	PIDS=()
}

# http_get PORT PATH: the response (head and body) of GET on 127.0.0.1:PORT, 2 s at most.
http_get() {
	timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0" || exit 1
		printf "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" "$1" >&3
		cat <&3' "$1" "$2" 2>/dev/null
}

# wait_until SECONDS CMD...: retries CMD every 0.1 s.
wait_until() {
	local t=$1 i
	shift
	for i in $(seq 1 $((t * 10))); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

http_ok() { http_get "$1" "$2" | head -1 | grep -q ' 200'; }
# herald_router_publishes_in_total of the running cluster's router.
router_publishes() {
	http_get "$ROUTER_ADMIN" /metrics | tr -d '\r' | awk '/^herald_router_publishes_in_total / {print $2}'
}

# CPU time of a process in clock ticks (utime + stime).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
gw_cpu_ticks() {
	local p s=0
	for p in "${GW_PIDS[@]}"; do s=$((s + $(cpu_ticks "$p"))); done
	echo "$s"
}

# Kernel slab memory, bytes (machine-wide: sockets, files, io_uring...).
# others_snapshot FILE: "pid ticks comm" of every user-space process outside
# this suite (not a descendant of $BENCH_PID, not a kernel thread), to
# measure what the rest of the machine takes from the cores during a step.
others_snapshot() {
	local f
	for f in /proc/[0-9]*/stat; do
		cat "$f" 2>/dev/null
	done | awk -v me="${BENCH_PID:-$$}" '{
		# comm may hold spaces: fields after the last ")" are fixed
		i = index($0, "("); j = length($0); while (substr($0, j, 1) != ")") j--
		pid = $1; comm = substr($0, i + 1, j - i - 1); split(substr($0, j + 2), f, " ")
		ppid[pid] = f[2]; ticks[pid] = f[12] + f[13]; name[pid] = comm
	} END {
		for (p in ppid) {
			q = p + 0; ours = 0
			while (q > 2) { if (q == me) { ours = 1; break } q = ppid[q] + 0 }
			if (!ours && p != 2 && ppid[p] != 2 && ppid[p] != "") print p, ticks[p], name[p]
		}
	}' >"$1"
}

# others_delta A B SECONDS: "ms_per_s top_comm top_ms_per_s" between two snapshots
others_delta() {
	awk -v s="$3" -v hz="$(getconf CLK_TCK)" 'NR == FNR { a[$1] = $2; next }
		{ d = $2 - (($1 in a) ? a[$1] : 0); if (d < 0) d = 0; c = $3; for (k = 4; k <= NF; k++) c = c " " $k
		  tot += d; by[c] += d }
		END { for (c in by) if (by[c] > best) { best = by[c]; top = c }
		      printf "%.1f %s %.1f\n", tot * 1000 / hz / s, (top == "" ? "-" : top), best * 1000 / hz / s }' "$1" "$2"
}

slab_bytes() { awk '/^Slab:/ {print $2 * 1024}' /proc/meminfo; }

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# Kernel TCP memory, bytes (sockstat counts pages).
tcp_mem_bytes() { awk '/^TCP:/ {for (i = 1; i < NF; i++) if ($i == "mem") print $(i + 1) * 4096}' /proc/net/sockstat; }

# ---------- the cluster ----------

# cluster_start G PIN: Redis, the router and G gateways. PIN is a taskset
# CPU list for all of them ("" for none); GW_EXTRA adds gateway flags. Sets REDIS_PORT, WS_PORT,
# WSS_PORT, GW_PIDS, ROUTER_PID, REDIS_PID. Returns non-zero (logged) when
# a piece does not come up.
cluster_start() {
	local g=$1 pin=$2 i pre=() adm
	[ -n "$pin" ] && pre=(taskset -c "$pin")
	CLUSTER_N=$((${CLUSTER_N:-0} + 1))
	local tag="c$CLUSTER_N"
	REDIS_PORT=$(free_port) && WS_PORT=$(free_port) && WSS_PORT=$(free_port) || return 1
	mkdir -p "$WD/$tag-redis"
	start_bg "$tag-redis" "${pre[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 \
		--dir "$WD/$tag-redis" --save "" --appendonly no --daemonize no --maxclients 1000
	REDIS_PID=$LAST_PID
	if ! wait_until 10 redis-cli -p "$REDIS_PORT" ping; then
		log "redis did not start (see $WD/$tag-redis.log)"
		return 1
	fi
	ROUTER_ADMIN=$(free_port) || return 1
	start_bg "$tag-router" "${pre[@]}" "$B/herald-router" --redis "127.0.0.1:$REDIS_PORT" \
		--admin "127.0.0.1:$ROUTER_ADMIN"
	ROUTER_PID=$LAST_PID
	if ! wait_until 10 http_ok "$ROUTER_ADMIN" /metrics; then
		log "router did not start (see $WD/$tag-router.log)"
		return 1
	fi
	GW_PIDS=()
	GW_ADMINS=()
	for i in $(seq 1 "$g"); do
		adm=$(free_port) || return 1
		start_bg "$tag-gw$i" "${pre[@]}" "$B/herald-gateway" --id "bench-gw$i" --threads 1 \
			--listen "127.0.0.1:$WS_PORT" --tls-listen "127.0.0.1:$WSS_PORT" \
			--cert "$WD/certs/cert.pem" --key "$WD/certs/key.pem" \
			--redis "127.0.0.1:$REDIS_PORT" --auth none --admin "127.0.0.1:$adm" \
			--max-conns 19500 --log-level warn ${GW_EXTRA:-}
		GW_PIDS+=("$LAST_PID")
		GW_ADMINS+=("$adm")
	done
	for i in $(seq 0 $((g - 1))); do
		if ! wait_until 15 http_ok "${GW_ADMINS[$i]}" /readyz; then
			log "gateway $((i + 1)) is not ready (see $WD/$tag-gw$((i + 1)).log)"
			return 1
		fi
	done
	return 0
}

cluster_stop() {
	local p
	for p in "${GW_PIDS[@]}"; do stop_pid "$p" 12; done
	stop_pid "$ROUTER_PID" 5
	stop_pid "$REDIS_PID" 5
	GW_PIDS=()
	ROUTER_PID=
	REDIS_PID=
	# forget the stopped ones
	local keep=() q
	for q in "${PIDS[@]}"; do kill -0 "$q" 2>/dev/null && keep+=("$q"); done
	PIDS=("${keep[@]}")
}

gw_rss_kb() {
	local p s=0
	for p in "${GW_PIDS[@]}"; do s=$((s + $(rss_kb "$p"))); done
	echo "$s"
}

# ---------- herald-load ----------

# load NAME TIMEOUT PIN ARGS...: runs herald-load with --out $WD/NAME.json.
# Returns its exit code; LOAD_ERR holds a one-line reason on failure.
load() {
	local name=$1 to=$2 pin=$3 pre=() rc
	shift 3
	[ -n "$pin" ] && pre=(taskset -c "$pin")
	LOAD_ERR=
	rm -f "$WD/$name.json"
	timeout --kill-after=10 "$to" "${pre[@]}" "$B/herald-load" --out "$WD/$name.json" "$@" \
		2>"$WD/$name.log"
	rc=$?
	load_fail_reason "$name" "$rc" "$to"
	printf '%s\t%s\n' "$rc" "$LOAD_ERR" >"$WD/$name.rc"
	return $rc
}

# load_result NAME: the exit code of a load run in the background (sets LOAD_ERR).
load_result() {
	local rc=1
	LOAD_ERR="no result"
	if [ -s "$WD/$1.rc" ]; then
		IFS=$'\t' read -r rc LOAD_ERR <"$WD/$1.rc"
	fi
	return "$rc"
}

load_fail_reason() {
	local name=$1 rc=$2 to=$3
	if [ "$rc" -ne 0 ]; then
		if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
			LOAD_ERR="timed out after ${to}s"
		else
			LOAD_ERR=$( (grep -E 'herald-load:|error' "$WD/$name.log" || tail -1 "$WD/$name.log") | tail -1 | cut -c1-160)
			[ -s "$WD/$name.json" ] && [ -z "$LOAD_ERR" ] && LOAD_ERR=$(jq -r '.error // "failed"' "$WD/$name.json")
			[ -z "$LOAD_ERR" ] && LOAD_ERR="herald-load exited with $rc"
		fi
	fi
}

# jget NAME FILTER: a value from $WD/NAME.json.
jget() { jq -r "$2" "$WD/$1.json" 2>/dev/null; }

# ---------- figures ----------

# fig SECTION FIGURE VALUE NOTES: one row of the results table.
fig() {
	printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$WD/figures.tsv"
	log "$1 | $2 = $3 $4"
}

failed() { fig "$1" "$2" "FAILED" "$3"; }

# headline TEXT: one line of the summary above the table.
headline() { printf '%s\n' "$1" >>"$WD/headlines.txt"; }

# median of the arguments (numbers); "-" when none.
median() {
	[ $# -eq 0 ] && { echo -; return; }
	printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}

# fmt NUMBER [DECIMALS]
fmt() { awk -v v="$1" -v d="${2:-0}" 'BEGIN { if (v == "" || v == "null" || v == "-") print "-"; else printf("%.*f\n", d, v) }'; }
