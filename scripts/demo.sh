#!/usr/bin/env bash
# Installs fastload, starts its built-in server on loopback and runs a real 5-second load test
# against it (HTTP/1.1, then HTTP/2 cleartext). The server is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --disable-pip-version-check . 2>&1 | grep -v -e "Running pip as" -e "is ignored" || true
python3 -c "import fastload.native" || { echo "fastload did not install" >&2; exit 1; }
port=${FASTLOAD_DEMO_PORT:-18080}
# With two CPUs or more, the server gets CPU 0 and the generator the others, so neither waits
# for the other's CPU (fastload warns when its workers do).
server_pin=() client_pin=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  server_pin=(taskset -c 0) client_pin=(--avoid-cpus 0)
fi
"${server_pin[@]}" fastload serve --host 127.0.0.1 --port "$port" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
  sleep 0.1
done
fastload run "http://127.0.0.1:$port/" -c 32 -d 5s "${client_pin[@]}"
fastload run "http://127.0.0.1:$port/" --h2c -c 4 -m 16 -d 5s "${client_pin[@]}"
