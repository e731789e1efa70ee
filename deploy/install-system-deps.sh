#!/usr/bin/env bash
# System libraries the desktop client (PyQt6, QtMultimedia) and its tests need on a fresh
# Debian/Ubuntu machine, plus Xvfb for screenshots on a real (virtual) screen. Installs what is
# missing when it can (root with apt-get); otherwise names what is missing in one line.
set -euo pipefail

packages=(
  libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 fontconfig fonts-dejavu-core
  fonts-noto-color-emoji libglib2.0-0 libdbus-1-3 libpulse0 libasound2 xvfb xdotool
  libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-xinerama0 libxcb-randr0
  libxcb-render-util0 libxcb-image0
)

# shellcheck source=deploy/apt-packages.sh
. "$(dirname "$0")/apt-packages.sh"
ensure_packages "system libraries for the Qt client" "" "${packages[@]}"
