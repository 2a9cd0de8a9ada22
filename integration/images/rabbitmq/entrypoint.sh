#!/bin/sh
# The account the official image creates from RABBITMQ_DEFAULT_USER / _PASS, allowed from any
# address (as there), then the node in the foreground.
set -eu
{
  echo "default_user = ${RABBITMQ_DEFAULT_USER:-guest}"
  echo "default_pass = ${RABBITMQ_DEFAULT_PASS:-guest}"
  echo "loopback_users = none"
  if [ -n "${RABBITMQ_MANAGEMENT_PORT:-}" ]; then
    echo "management.tcp.port = ${RABBITMQ_MANAGEMENT_PORT}"
    echo "management.tcp.ip = ${RABBITMQ_NODE_IP_ADDRESS:-0.0.0.0}"
  fi
} > /etc/rabbitmq/rabbitmq.conf
if [ -n "${RABBITMQ_MANAGEMENT_PORT:-}" ]; then
  echo "[rabbitmq_management]." > /etc/rabbitmq/enabled_plugins
else
  echo "[]." > /etc/rabbitmq/enabled_plugins
fi
exec rabbitmq-server
