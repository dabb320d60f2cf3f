#!/usr/bin/env bash
# The project's test command: installs the reference MQTT clients the interop tests drive
# (Debian's mosquitto-clients) when missing, then runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
command -v mosquitto_sub >/dev/null 2>&1 || need+=(mosquitto-clients)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: mosquitto-clients" >&2
  $sudo apt-get install -y --no-install-recommends mosquitto-clients >/dev/null 2>&1 \
    || { $sudo apt-get update >/dev/null && $sudo apt-get install -y --no-install-recommends mosquitto-clients >/dev/null; }
fi

cargo test --workspace "$@"
