#!/usr/bin/env bash
# The project's test command: installs the reference implementation the interop tests
# drive (Debian's mosquitto: broker and mosquitto_passwd; mosquitto-clients:
# mosquitto_pub / mosquitto_sub) when missing, then runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for tool in mosquitto mosquitto_passwd; do
  command -v "$tool" >/dev/null 2>&1 || need+=(mosquitto)
done
for tool in mosquitto_pub mosquitto_sub; do
  command -v "$tool" >/dev/null 2>&1 || need+=(mosquitto-clients)
done
if [ ${#need[@]} -gt 0 ]; then
  packages=$(printf '%s\n' "${need[@]}" | sort -u | tr '\n' ' ')
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: $packages" >&2
  # shellcheck disable=SC2086
  $sudo apt-get install -y --no-install-recommends $packages >/dev/null 2>&1 \
    || { $sudo apt-get update >/dev/null && $sudo apt-get install -y --no-install-recommends $packages >/dev/null; }
fi

cargo test --workspace "$@"
