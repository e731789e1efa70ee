#!/usr/bin/env bash
# The container engine the compose tests run on: Debian's own Docker engine (docker.io), Compose
# (the plugin when the distribution has it, else Debian's docker-compose), and debootstrap for
# the local base-image stand-ins (deploy/standins.sh). Installs what is missing when root with
# apt-get, then starts dockerd in the background when no engine answers, and waits (bounded)
# for `docker info`. Idempotent: a second run only checks.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

if [ "$(id -u)" != 0 ] || ! have apt-get; then
  have docker && docker info >/dev/null 2>&1 && exit 0
  echo "the compose tests need a Docker engine: install docker.io, docker-compose and debootstrap as root" >&2
  exit 1
fi

packages=(docker.io debootstrap)
if apt-cache policy docker-compose-plugin 2>/dev/null | grep -q 'Candidate: [0-9]'; then
  packages+=(docker-compose-plugin)
else
  packages+=(docker-compose)
fi
missing=()
for pkg in "${packages[@]}"; do installed "$pkg" || missing+=("$pkg"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  echo "starting dockerd"
  mkdir -p /var/log
  # setsid: the engine outlives this script and the test run that started it.
  setsid dockerd >/var/log/dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start; see /var/log/dockerd.log" >&2; exit 1; }
fi
echo "docker engine is up"
