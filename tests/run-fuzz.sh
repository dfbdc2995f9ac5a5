#!/bin/sh
# run-fuzz.sh smoke|SECONDS CORPUSROOT FUZZER...
# smoke: runs each target once over its seed corpus (a regression run).
# SECONDS: fuzzes each target for that long from a copy of its seeds, so the
# committed corpus only changes when someone adds a seed on purpose.
mode=$1
root=$2
shift 2
passed=0
failed=0
for f in "$@"; do
	name=$(basename "$f")
	name=${name#fuzz_}
	corpus=$root/$name
	[ -d "$corpus" ] || { echo "FAIL $name: no corpus at $corpus"; failed=$((failed + 1)); continue; }
	log=$(mktemp)
	if [ "$mode" = smoke ]; then
		"$f" -runs=0 "$corpus" > "$log" 2>&1
	else
		work=$(mktemp -d)
		cp -R "$corpus"/. "$work"/
		"$f" -max_total_time="$mode" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$work" > "$log" 2>&1
		rc=$?
		rm -rf "$work"
		(exit $rc)
	fi
	if [ $? -eq 0 ]; then
		passed=$((passed + 1))
		echo "PASS fuzz $name: $(grep -E 'stat::number_of_executed_units|Done [0-9]+ runs' "$log" | tail -n 1)"
	else
		failed=$((failed + 1))
		echo "FAIL fuzz $name"
		tail -n 40 "$log" | sed 's/^/    /'
	fi
	rm -f "$log"
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
