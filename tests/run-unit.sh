#!/bin/sh
# Runs every cmocka unit-test binary given, prints each one's result and a
# closing "N passed, N failed" line; exits non-zero if any failed.
passed=0
failed=0
failed_names=
for t in "$@"; do
	name=$(basename "$t")
	if "$t" > "$t.log" 2>&1; then
		passed=$((passed + 1))
		echo "PASS $name: $(grep -oE '\[  PASSED  \] [0-9]+ test' "$t.log" | tail -n 1)"
	else
		failed=$((failed + 1))
		failed_names="$failed_names $name"
		echo "FAIL $name"
		sed 's/^/    /' "$t.log"
	fi
done
echo "unit: $passed passed, $failed failed"
[ "$failed" -eq 0 ] || { echo "failed:$failed_names"; exit 1; }
