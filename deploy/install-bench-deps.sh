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

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing system packages for the benchmark: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "The benchmark's Prosody comparison needs these system packages: ${missing[*]}" >&2
  echo "Install them with: sudo apt-get install ${missing[*]} (without them it is skipped)" >&2
  exit 1
fi
