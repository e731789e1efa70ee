#!/bin/bash
# First start: create the system tables, the database and its user; then run mariadbd.
set -euo pipefail
if [ "${1:0:1}" = '-' ]; then set -- mariadbd "$@"; fi
[ "$1" = mariadbd ] || exec "$@"
shift
mkdir -p /run/mysqld
chown mysql:mysql /run/mysqld /var/lib/mysql
if [ ! -d /var/lib/mysql/mysql ]; then
  mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db >/dev/null
  mariadbd --user=mysql --skip-networking --socket=/run/mysqld/init.sock "$@" &
  pid=$!
  for _ in $(seq 1 60); do
    mariadb-admin --socket=/run/mysqld/init.sock ping >/dev/null 2>&1 && break
    sleep 0.5
  done
  {
    [ -n "${MARIADB_DATABASE:-}" ] && echo "CREATE DATABASE IF NOT EXISTS \`$MARIADB_DATABASE\`;"
    if [ -n "${MARIADB_USER:-}" ]; then
      echo "CREATE USER '$MARIADB_USER'@'%' IDENTIFIED BY '${MARIADB_PASSWORD:-}';"
      [ -n "${MARIADB_DATABASE:-}" ] && echo "GRANT ALL ON \`$MARIADB_DATABASE\`.* TO '$MARIADB_USER'@'%';"
    fi
    # root keeps socket authentication only (the upstream image's random root password is
    # never needed by ChaSe); root over the network does not exist.
    echo "FLUSH PRIVILEGES;"
  } | mariadb --socket=/run/mysqld/init.sock
  mariadb-admin --socket=/run/mysqld/init.sock shutdown
  wait "$pid" || true
fi
exec mariadbd --user=mysql "$@"
