#!/usr/bin/env bash
# Prepares this machine to run deploy/docker-compose.yml with podman when no
# Docker engine and no container registry are available:
#   1. installs podman, podman-compose, runc and debootstrap (apt-get);
#   2. writes /etc/containers/containers.conf (runc, cgroupfs, ulimits) unless
#      it is already set up that way;
#   3. creates docker.io/library/debian:bookworm-slim with debootstrap when no
#      such image exists (a registry would normally provide it);
#   4. builds the Redis image (deploy/redis.Dockerfile) when the official one
#      is not present, and prints its name on the last line of stdout.
# Idempotent: a second run only checks. Needs root.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
log() { echo "podman-setup: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
	log "must run as root (apt-get, /etc/containers)"
	exit 1
fi

# --- 1. packages -----------------------------------------------------------
need=""
for p in podman podman-compose runc debootstrap; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need="$need $p"
done
if [ -n "$need" ]; then
	log "installing$need"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >&2
fi

# --- 2. containers.conf ----------------------------------------------------
# runc (crun is not installed), cgroupfs (no systemd session here), and the
# ulimits the kernel/container setup accepts (nofile above 20000 is refused).
conf=/etc/containers/containers.conf
conf_ok() {
	[ -f "$conf" ] &&
	grep -Eq '^[[:space:]]*runtime[[:space:]]*=[[:space:]]*"runc"' "$conf" &&
	grep -Eq '^[[:space:]]*cgroup_manager[[:space:]]*=[[:space:]]*"cgroupfs"' "$conf" &&
	grep -Eq '^[[:space:]]*default_ulimits[[:space:]]*=.*nofile=20000:20000' "$conf"
}
if conf_ok; then
	log "$conf already set up (runc, cgroupfs, nofile=20000)"
else
	if [ -f "$conf" ]; then
		cp "$conf" "$conf.herald-backup.$(date +%s)"
		log "backed up the existing $conf"
	fi
	cat >"$conf" <<'EOF'
# Written by herald deploy/podman-setup.sh: podman on a host without systemd
# session and without crun. A backup of any previous file sits next to it.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
	log "wrote $conf"
fi

# --- 3. base image ---------------------------------------------------------
base=docker.io/library/debian:bookworm-slim
if podman image exists "$base"; then
	log "$base present"
else
	# Use the mirror apt uses on this machine.
	mirror=$( { sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/*.sources
		sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?//p' /etc/apt/sources.list \
			/etc/apt/sources.list.d/*.list; } 2>/dev/null |
		tr ' ' '\n' | grep -E '^https?://' | grep -v -- '-security' | head -n1 || true)
	mirror=${mirror:-http://deb.debian.org/debian}
	root=$(mktemp -d /var/tmp/herald-debootstrap.XXXXXX)
	log "building $base with debootstrap from $mirror (a few minutes)"
	t0=$(date +%s)
	debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1 || {
		log "debootstrap failed; see $root.log"
		exit 1
	}
	# Slim it like the official image: no apt lists, docs or man pages.
	rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
		"$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/*
	tar -C "$root" -c . | podman import \
		--change 'CMD ["bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		- "$base" >&2
	rm -rf "$root" "$root.log"
	log "$base imported in $(( $(date +%s) - t0 )) s"
fi

# --- 4. Redis image --------------------------------------------------------
redis_img=""
for img in docker.io/library/redis:7-bookworm docker.io/library/redis:7 docker.io/library/redis:latest; do
	if podman image exists "$img"; then redis_img=$img; break; fi
done
if [ -z "$redis_img" ]; then
	redis_img=localhost/herald-redis:7
	if podman image exists "$redis_img"; then
		log "$redis_img present"
	else
		log "building $redis_img from deploy/redis.Dockerfile"
		podman build -q -t "$redis_img" -f "$here/redis.Dockerfile" "$here" >&2
	fi
fi
echo "$redis_img"
