#!/usr/bin/env bash
# Creates a self-signed DEVELOPMENT certificate for the gateway's wss listener.
#   deploy/gen-dev-cert.sh [DIR] [EXTRA_NAME ...]
# Writes DIR/cert.pem and DIR/key.pem (DIR defaults to run/certs) unless both
# already exist. The certificate (ECDSA P-256, 825 days) covers localhost,
# 127.0.0.1, ::1, this host's name and any EXTRA_NAME (a DNS name or an IP).
# The key is left world-readable (0644) so that a container's non-root user can
# read it through a volume: fine for a development key, never for a real one.
set -euo pipefail

dir=${1:-run/certs}
shift || true
if [ -s "$dir/cert.pem" ] && [ -s "$dir/key.pem" ]; then
	echo "gen-dev-cert: $dir/cert.pem exists, keeping it" >&2
	exit 0
fi
command -v openssl >/dev/null || { echo "gen-dev-cert: openssl is missing (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$dir"

san="DNS:localhost,IP:127.0.0.1,IP:::1"
host=$(hostname 2>/dev/null || true)
[ -n "$host" ] && [ "$host" != localhost ] && san="$san,DNS:$host"
for n in "$@"; do
	if [[ $n =~ ^[0-9.]+$ || $n == *:* ]]; then san="$san,IP:$n"; else san="$san,DNS:$n"; fi
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	-keyout "$tmp/key.pem" -out "$tmp/cert.pem" -days 825 \
	-subj "/O=herald development/CN=localhost" \
	-addext "subjectAltName=$san" \
	-addext "basicConstraints=critical,CA:FALSE" \
	-addext "keyUsage=critical,digitalSignature" \
	-addext "extendedKeyUsage=serverAuth" 2>/dev/null
chmod 0644 "$tmp/cert.pem" "$tmp/key.pem"
mv "$tmp/key.pem" "$dir/key.pem"
mv "$tmp/cert.pem" "$dir/cert.pem"
echo "gen-dev-cert: wrote $dir/cert.pem and $dir/key.pem ($san)" >&2
