#!/usr/bin/env bash
# Local stand-ins for the base images docker-compose.yml and deploy/Dockerfile name.
#
# Why: the machines ChaSe is built and tested on cannot reach a container registry, yet the
# compose file must keep naming the real upstream images (python, mariadb, rabbitmq, haproxy)
# for real deployments. So the compose tests never pull: this script first builds, from
# Debian's own packages, images that behave like the upstream ones as far as ChaSe uses them
# (same entry-point environment variables, same health-check commands, same config paths) and
# tags them with the upstream names. A machine that can pull never needs this script.
#
# How: `debootstrap` makes a minimal Debian bookworm root file system from the Debian archive
# this host's apt is configured with (read from /etc/apt/sources.list*, never named here); it is
# imported as a local base image, and each stand-in is a small Dockerfile in deploy/standins/
# that apt-installs Debian's python3 / mariadb-server / rabbitmq-server / haproxy on it.
#
# Cache: the root file system tarball stays in $CHASE_STANDIN_CACHE (default
# /var/cache/chase-standins) and the images stay in the engine, so a second run only checks
# that the tags exist and match their folder (seconds). CHASE_STANDIN_REBUILD=1 builds them again.
set -euo pipefail
cd "$(dirname "$0")"

cache=${CHASE_STANDIN_CACHE:-/var/cache/chase-standins}
base=chase-standin/debian:bookworm
rebuild=${CHASE_STANDIN_REBUILD:-0}
mkdir -p "$cache"

declare -A standins=(
  [python]=python:3.11-slim-bookworm
  [mariadb]=mariadb:10.11
  [rabbitmq]=rabbitmq:3.13-management
  [haproxy]=haproxy:2.8
)

exists() { docker image inspect "$1" >/dev/null 2>&1; }
# A stand-in is current when its label holds the hash of its folder (Dockerfile, scripts).
digest() { cat "standins/$1"/* | sha256sum | cut -c1-16; }
current() { [ "$(docker image inspect -f '{{index .Config.Labels "chase.standin"}}' "$2" 2>/dev/null)" = "$(digest "$1")" ]; }

mirror() {  # the first Debian archive apt is configured with (deb822 or one-line format)
  local uri
  uri=$(grep -hE '^\s*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '{print $2}' | grep -v -- '-security' | head -n1 || true)
  if [ -z "$uri" ]; then
    uri=$(grep -hE '^\s*deb\s' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
          | awk '{for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' \
          | grep -v -- '-security' | head -n1 || true)
  fi
  [ -n "$uri" ] || { echo "no Debian archive configured in /etc/apt/sources.list*" >&2; exit 1; }
  echo "$uri"
}

all_present=1
for name in "${!standins[@]}"; do current "$name" "${standins[$name]}" || all_present=0; done
if [ "$rebuild" != 1 ] && [ $all_present = 1 ] && exists "$base"; then
  echo "stand-in images present"; exit 0
fi

if [ "$rebuild" = 1 ] || ! exists "$base"; then
  mkdir -p "$cache"
  if [ "$rebuild" = 1 ] || [ ! -s "$cache/bookworm.tar" ]; then
    command -v debootstrap >/dev/null || { echo "debootstrap is missing (deploy/install-docker.sh installs it)" >&2; exit 1; }
    root=$(mktemp -d "$cache/rootfs.XXXXXX")
    trap 'umount -R "$root/proc" "$root/sys" 2>/dev/null; rm -rf "$root"' EXIT
    echo "debootstrap bookworm from $(mirror)"
    debootstrap --variant=minbase bookworm "$root" "$(mirror)" >"$cache/debootstrap.log" 2>&1 \
      || { tail -n 20 "$cache/debootstrap.log" >&2; exit 1; }
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -cf "$cache/bookworm.tar.tmp" . && mv "$cache/bookworm.tar.tmp" "$cache/bookworm.tar"
    rm -rf "$root"; trap - EXIT
  fi
  docker import "$cache/bookworm.tar" "$base" >/dev/null
fi

# The four builds run side by side (mostly apt downloads); each one's output is kept for errors.
pids=()
for name in "${!standins[@]}"; do
  tag=${standins[$name]}
  if [ "$rebuild" = 1 ] || ! current "$name" "$tag"; then
    echo "building stand-in $tag"
    docker build -q --pull=false --build-arg BASE="$base" --label "chase.standin=$(digest "$name")" \
      -t "$tag" "standins/$name" >"$cache/build-$name.log" 2>&1 &
    pids+=("$!:$name")
  fi
done
failed=0
for entry in "${pids[@]}"; do
  wait "${entry%%:*}" || { echo "stand-in ${entry#*:} failed:" >&2; tail -n 20 "$cache/build-${entry#*:}.log" >&2; failed=1; }
done
[ $failed = 0 ] || exit 1
echo "stand-in images built"
