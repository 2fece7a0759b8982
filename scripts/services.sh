#!/usr/bin/env bash
# Starts the local services the distributed tests use (PostgreSQL, RabbitMQ, Redis) when
# they are down. With --require, fails when one cannot be reached afterwards (CI).
set -uo pipefail

require=0; [ "${1:-}" = "--require" ] && require=1

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { for _ in $(seq 1 "${2:-60}"); do up "$1" && return 0; sleep 1; done; return 1; }

start() {
  local name=$1 port=$2; shift 2
  up "$port" && return 0
  echo "services: starting $name"
  "$@" >/dev/null 2>&1 || true
  wait_port "$port" 90 || { echo "services: $name is not reachable on 127.0.0.1:$port" >&2; return 1; }
}

fail=0
if command -v pg_ctlcluster >/dev/null; then
  start PostgreSQL 5432 pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || fail=1
else
  up 5432 || { echo "services: PostgreSQL is not installed" >&2; fail=1; }
fi
if command -v rabbitmq-server >/dev/null; then
  start RabbitMQ 5672 rabbitmq-server -detached || fail=1
else
  up 5672 || { echo "services: RabbitMQ is not installed" >&2; fail=1; }
fi
if command -v redis-server >/dev/null; then
  start Redis 6379 redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || fail=1
else
  up 6379 || { echo "services: Redis is not installed" >&2; fail=1; }
fi

if [ "$fail" -ne 0 ] && [ "$require" -eq 1 ]; then exit 1; fi
exit 0
