#!/bin/bash
# The upstream image's health check, for the two tests ChaSe's compose file asks for.
set -eu
query="SELECT 1"
for arg in "$@"; do
  case $arg in
    --innodb_initialized)
      query="SELECT 1 FROM information_schema.ENGINES WHERE engine='InnoDB' AND support IN ('YES','DEFAULT')" ;;
  esac
done
out=$(mariadb --socket=/run/mysqld/mysqld.sock -N -e "$query" 2>/dev/null) || exit 1
[ "$out" = 1 ]
