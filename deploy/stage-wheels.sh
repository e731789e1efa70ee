#!/usr/bin/env bash
# Put the wheels of ChaSe's dependencies (pinned by constraints.txt) and of its build backend
# into deploy/wheels/ with the host's own pip and pip configuration (pip.conf, PIP_* variables,
# its CA files), so the image build installs them offline (see deploy/wheels/README.md).
# The image runs Python 3.11 on Debian bookworm: run this with a Python 3.11 on Linux x86-64.
# Usage: deploy/stage-wheels.sh [python]   (default: .venv/bin/python, else python3)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-}
[ -n "$python" ] || { [ -x .venv/bin/python ] && python=.venv/bin/python || python=python3; }
out=deploy/wheels
stamp=$out/.stamp
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
find "$out" -name '*.whl' -delete
log=$(mktemp)
trap 'rm -f "$log"' EXIT
quiet() { "$@" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }; }
quiet "$python" -m pip wheel -q --no-deps -w "$out/.self" .
quiet "$python" -m pip wheel -q -w "$out" -c constraints.txt "$out"/.self/chase-*.whl
rm -rf "$out/.self" "$out"/chase-*.whl
# The build backend, for `pip install .` inside the image (build isolation needs it there).
quiet "$python" -m pip download -q -d "$out" --only-binary=:all: 'setuptools>=68'
echo "$want" > "$stamp"
echo "staged $(ls "$out"/*.whl | wc -l) wheels in $out/"
