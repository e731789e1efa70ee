# Sourced by the install-*-deps.sh scripts: one way to install missing Debian packages.
#
#   ensure_packages WHAT FALLBACK PACKAGE...
#
# Installs the PACKAGEs not installed yet when it can (root with apt-get), saying "installing
# WHAT: ..."; otherwise names them in one line (FALLBACK says what happens without them) and
# returns 1. Installs nothing when all are there.

ensure_packages() {
  local what=$1 fallback=$2 missing=() pkg
  shift 2
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing $what: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "Missing $what: ${missing[*]}" >&2
    echo "Install them with: sudo apt-get install ${missing[*]}${fallback:+ ($fallback)}" >&2
    return 1
  fi
}
