#!/bin/sh
# `make bench`: the handshake benchmark and peer comparison. The work is in
# run_bench.py (see its docstring for the rows and the BENCH_* variables);
# this wrapper finds Debian's python3 (a pyenv one on PATH may lack nothing
# we need, but Debian's is the one the project installs).
set -eu
: "${SP_SRCDIR:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${SP_BUILDDIR:=$SP_SRCDIR}"
export SP_SRCDIR SP_BUILDDIR
if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=python3; fi
[ -x "$SP_BUILDDIR/bin/hsbench" ] || { echo "run-bench: $SP_BUILDDIR/bin/hsbench not built (make all)" >&2; exit 1; }
exec "$PY" "$SP_SRCDIR/bench/run_bench.py" "$@"
