#!/bin/bash
# Write the configuration the upstream image derives from its environment, then start.
set -euo pipefail
mkdir -p /etc/rabbitmq
{
  echo "listeners.tcp.default = 5672"
  echo "loopback_users = none"
  [ -n "${RABBITMQ_DEFAULT_USER:-}" ] && echo "default_user = $RABBITMQ_DEFAULT_USER"
  [ -n "${RABBITMQ_DEFAULT_PASS:-}" ] && echo "default_pass = $RABBITMQ_DEFAULT_PASS"
  [ -n "${RABBITMQ_CONFIG_EXTRA:-}" ] && printf '%s\n' "$RABBITMQ_CONFIG_EXTRA"
} > /etc/rabbitmq/rabbitmq.conf
if [ -n "${RABBITMQ_ERLANG_COOKIE:-}" ]; then
  printf '%s' "$RABBITMQ_ERLANG_COOKIE" > /var/lib/rabbitmq/.erlang.cookie
  chmod 400 /var/lib/rabbitmq/.erlang.cookie
fi
chown -R rabbitmq:rabbitmq /var/lib/rabbitmq
if [ "$1" = rabbitmq-server ]; then
  # As the upstream image does: the server itself is PID 1, as its own user, so SIGTERM
  # reaches it and `docker stop` shuts the node down cleanly. (Debian's /usr/sbin wrapper
  # would switch users with su, which does not pass the signal on.)
  shift
  cd /var/lib/rabbitmq
  HOME=/var/lib/rabbitmq exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups \
    /usr/lib/rabbitmq/bin/rabbitmq-server "$@"
fi
exec "$@"
