#!/usr/bin/env bash
# Runs Criterion test binaries one after another and sums their synthesis
# lines into one closing line: "<suite>: N passed, N failed".
set -u
suite=$1; shift
pass=0; fail=0; rc=0
for t in "$@"; do
  out=$(mktemp)
  # Integration tests start processes; run their tests one at a time.
  if [ "$suite" = integration ]; then jobs="--jobs=1"; else jobs=""; fi
  timeout 600 "$t" $jobs >"$out" 2>&1
  code=$?
  syn=$(grep -a 'Synthesis:' "$out" | tail -n1)
  p=$(echo "$syn" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
  f=$(echo "$syn" | sed -n 's/.*Failing: \([0-9]*\).*/\1/p')
  c=$(echo "$syn" | sed -n 's/.*Crashing: \([0-9]*\).*/\1/p')
  p=${p:-0}; f=${f:-0}; c=${c:-0}
  # A sanitizer report in a Criterion worker does not fail its test: look for it.
  san=0
  if grep -aqE 'ERROR: (Leak|Address)Sanitizer|runtime error:' "$out"; then san=1; fi
  if [ $code -ne 0 ] || [ $((f + c)) -ne 0 ] || [ -z "$syn" ] || [ $san -ne 0 ]; then
    cat "$out"
    echo "FAILED: $t (exit $code)"
    rc=1
    [ -z "$syn" ] && f=$((f + 1))
    [ $san -ne 0 ] && [ $((f + c)) -eq 0 ] && { echo "(sanitizer report above)"; f=$((f + 1)); }
  else
    echo "ok   $t ($p)"
  fi
  pass=$((pass + p)); fail=$((fail + f + c))
  rm -f "$out"
done
echo "$suite: $pass passed, $fail failed"
exit $rc
