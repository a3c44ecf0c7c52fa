#!/usr/bin/env bash
# Installs the Debian packages herald builds, tests and benchmarks with.
set -eu
PKGS="build-essential pkg-config liburing-dev android-libboringssl-dev libmimalloc-dev
libhiredis-dev libprotobuf-c-dev protobuf-c-compiler libcriterion-dev libcjson-dev
redis-server redis-tools clang libclang-rt-14-dev gnuplot-nox openssl procps iproute2
chromium jq"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then echo "deps: all installed"; exit 0; fi
if [ "$(id -u)" = 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
else
  echo "deps: run as root:  sudo apt-get install -y$missing" >&2
  exit 1
fi
