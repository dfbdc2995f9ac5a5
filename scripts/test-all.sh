#!/bin/sh
# The README's test command: installs what is missing, then builds and runs
# every test twice, in two out-of-tree builds: a normal one and one with
# AddressSanitizer + UndefinedBehaviorSanitizer.
#   scripts/test-all.sh            both builds
#   scripts/test-all.sh plain      only the normal build
#   scripts/test-all.sh sanitizers only the sanitizer build
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/install-deps.sh"

variants=${1:-"plain sanitizers"}
jobs=$(nproc 2>/dev/null || echo 2)
status=0
summary=
for v in $variants; do
	b="$top/build/$v"
	mkdir -p "$b"
	echo "==== build/$v: configure"
	opt=
	[ "$v" = sanitizers ] && opt=--enable-sanitizers
	(cd "$b" && "$top/configure" $opt)
	echo "==== build/$v: make check"
	if (cd "$b" && make -j"$jobs" all && make -j"$jobs" unit-bins tool-bins fuzz-bins && make check); then
		summary="$summary
build/$v: ok"
	else
		status=1
		summary="$summary
build/$v: FAILED"
	fi
done
echo "==== summary:$summary"
exit $status
