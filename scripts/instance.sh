#!/bin/sh
# The main job: instance.sh run|start|stop|status [DIR] [--recreate]
# Creates (or reuses) a Sealpost instance in DIR (default ./run) and runs it
# in the foreground (run) or the background (start). See scripts/instance.py.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
exec python3 "$top/scripts/instance.py" --builddir "${SP_BUILDDIR:-$top}" --srcdir "$top" "$@"
