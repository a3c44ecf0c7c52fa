#!/usr/bin/env bash
# tests/fuzz/run.sh SECONDS [TARGET...] — builds and runs every libFuzzer
# target tests/fuzz/fuzz_*.c (or only the named ones, e.g. fuzz_ws).
#
# Each target names what it links on one line:
#   // fuzz-sources: common/cm_ws.c common/cm_utf8.c build/gen/proto/x.pb-c.c
# Generated sources under build/ are made first with `make`. A target is built
# into build/fuzz/<name> with ASan+UBSan, then run for SECONDS on a fresh copy
# of tests/fuzz/corpus/<name without fuzz_>/ (build/fuzz/corpus-<name>/).
# Crash inputs land in build/fuzz/<name>-crash-*, logs in build/fuzz/<name>.log.
# Prints one line per target and "fuzz: N passed, N failed"; exits 1 when any
# target failed to build or found a crash, leak or timeout.
set -u
cd "$(dirname "$0")/../.."

secs=${1:-30}
shift || true
case $secs in
''|*[!0-9]*) echo "usage: $0 SECONDS [fuzz_NAME...]" >&2; exit 2 ;;
esac

CC=${FUZZ_CC:-clang}
SSL_INC=/usr/include/android
SSL_LIB=/usr/lib/x86_64-linux-gnu/android
CFLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
 -D_GNU_SOURCE -I. -Icommon -Ibuild/gen -isystem $SSL_INC"
LIBS="-L$SSL_LIB -Wl,-rpath,$SSL_LIB -lssl -lcrypto -lcjson -lprotobuf-c -luring \
 -lhiredis -lpthread -lm"
OUT=build/fuzz
mkdir -p "$OUT"

if [ $# -gt 0 ]; then
	srcs=()
	for t in "$@"; do srcs+=("tests/fuzz/${t%.c}.c"); done
else
	srcs=(tests/fuzz/fuzz_*.c)
fi

pass=0
fail=0
for src in "${srcs[@]}"; do
	[ -e "$src" ] || { echo "FAILED $src (no such file)"; fail=$((fail + 1)); continue; }
	name=$(basename "$src" .c)
	log=$OUT/$name.log
	: >"$log"
	deps=$(sed -n 's|^// fuzz-sources:||p' "$src" | head -n1)

	# Generated sources (and their headers) come from the Makefile.
	gen=()
	for d in $deps; do
		case $d in
		build/*.pb-c.c) gen+=("$d" "${d%.c}.h") ;;
		build/*) gen+=("$d") ;;
		esac
	done
	if [ ${#gen[@]} -gt 0 ] && ! make --no-print-directory "${gen[@]}" >>"$log" 2>&1; then
		echo "FAILED $name (make ${gen[*]}; see $log)"
		tail -n 20 "$log"
		fail=$((fail + 1))
		continue
	fi

	# shellcheck disable=SC2086 # word splitting of flag lists is intended
	if ! $CC $CFLAGS -o "$OUT/$name" "$src" $deps $LIBS >>"$log" 2>&1; then
		echo "FAILED $name (build; see $log)"
		tail -n 20 "$log"
		fail=$((fail + 1))
		continue
	fi

	corpus=$OUT/corpus-$name
	rm -rf "$corpus" 2>/dev/null # a concurrent run may be writing to it
	mkdir -p "$corpus"
	seeds=tests/fuzz/corpus/${name#fuzz_}
	[ -d "$seeds" ] && cp -r "$seeds"/. "$corpus"/

	timeout $((secs + 120)) "$OUT/$name" -max_total_time="$secs" -timeout=20 \
		-print_final_stats=1 -artifact_prefix="$OUT/$name-" "$corpus" >>"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
	if [ $rc -eq 0 ]; then
		echo "ok     $name (${runs:-?} runs in ${secs}s, corpus $(ls "$corpus" | wc -l))"
		pass=$((pass + 1))
	else
		echo "FAILED $name (exit $rc; see $log)"
		grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" | head -n 10
		fail=$((fail + 1))
	fi
done

echo "fuzz: $pass passed, $fail failed"
[ $fail -eq 0 ]
