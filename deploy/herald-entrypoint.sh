#!/bin/bash
# The container image's entrypoint.
#   herald-entrypoint gateway [FLAGS...]   herald-gateway
#   herald-entrypoint router  [FLAGS...]   herald-router
#   herald-entrypoint load    [FLAGS...]   herald-load
#   herald-entrypoint CMD...               any other command, as is
#
# Gateways scaled with `compose --scale gateway=N` under host networking run
# the same command line in the same network namespace, so each replica needs
# its own admin port and a readable id. When HERALD_SLOT_DIR is set (a volume
# shared by the replicas on one host), a gateway claims the first free slot n
# (1..HERALD_MAX_SLOTS) by holding an flock on HERALD_SLOT_DIR/slot-n for as
# long as it lives (the lock fd is inherited across exec; the kernel drops it
# when the process dies, so a crashed replica's slot is free again), then runs
#   herald-gateway --id ${HERALD_ID_PREFIX:-$(hostname)}-gw<n>
#                  --admin ${HERALD_ADMIN_BIND:-127.0.0.1}:$((HERALD_ADMIN_BASE + n))
# before the flags given. Explicit --id/--admin flags win over these.
# The admin address and health path are written to /tmp/herald-health for
# the image's HEALTHCHECK (herald-healthcheck).
set -euo pipefail

role=${1:-gateway}
[ $# -gt 0 ] && shift

admin_from_flags() { # prints the value of --admin in "$@", if any
	local prev=""
	for a in "$@"; do
		case $a in
		--admin=*) echo "${a#--admin=}"; return 0 ;;
		esac
		if [ "$prev" = --admin ]; then echo "$a"; return 0; fi
		prev=$a
	done
	return 1
}
has_flag() { # flag "$@"
	local f=$1 a
	shift
	for a in "$@"; do
		[ "$a" = "$f" ] || [[ $a == "$f="* ]] && return 0
	done
	return 1
}
health_file() { # addr path
	local addr=$1
	# An admin bound to every address is probed on loopback.
	addr=${addr/#0.0.0.0:/127.0.0.1:}
	addr=${addr/#\[::\]:/127.0.0.1:}
	printf '%s %s\n' "$addr" "$2" >/tmp/herald-health 2>/dev/null || true
}

case $role in
gateway)
	extra=()
	if [ -n "${HERALD_SLOT_DIR:-}" ]; then
		max=${HERALD_MAX_SLOTS:-64}
		slot=0
		for ((n = 1; n <= max; n++)); do
			exec 9>>"$HERALD_SLOT_DIR/slot-$n"
			if flock -n 9; then
				slot=$n
				break
			fi
			exec 9>&-
		done
		if [ $slot = 0 ]; then
			echo "herald-entrypoint: all $max gateway slots in $HERALD_SLOT_DIR are taken" >&2
			exit 1
		fi
		has_flag --id "$@" || extra+=(--id "${HERALD_ID_PREFIX:-$(hostname)}-gw$slot")
		if ! has_flag --admin "$@"; then
			extra+=(--admin "${HERALD_ADMIN_BIND:-127.0.0.1}:$(( ${HERALD_ADMIN_BASE:-9200} + slot ))")
		fi
		echo "herald-entrypoint: gateway slot $slot: ${extra[*]}" >&2
	fi
	admin=$(admin_from_flags "${extra[@]}" "$@") || admin=127.0.0.1:9101
	health_file "$admin" /healthz
	exec /usr/local/bin/herald-gateway "${extra[@]}" "$@"
	;;
router)
	admin=$(admin_from_flags "$@") || admin=127.0.0.1:9100
	health_file "$admin" /api/gateways
	exec /usr/local/bin/herald-router "$@"
	;;
load)
	exec /usr/local/bin/herald-load "$@"
	;;
*)
	exec "$role" "$@"
	;;
esac
