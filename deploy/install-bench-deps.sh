#!/usr/bin/env bash
# System packages the benchmark (bench/, `make bench`) needs beyond the Python ones: Prosody,
# Debian's XMPP server, which the fan-out side by side measures next to ChaSe (a MUC room
# with its archive in SQLite, so LuaDBI's SQLite driver too). Installs what is missing when it
# can (root with apt-get); otherwise names what is missing in one line. Idempotent.
#
# The benchmark starts its own Prosody, unprivileged, with a config of its own in a temporary
# folder; it neither needs nor touches the system's Prosody service, which Debian's package
# sets up (and starts, where services start on install).
set -euo pipefail

packages=(prosody lua-dbi-sqlite3)

# shellcheck source=deploy/apt-packages.sh
. "$(dirname "$0")/apt-packages.sh"
ensure_packages "system packages for the benchmark's Prosody comparison" "without them it is skipped" "${packages[@]}"
