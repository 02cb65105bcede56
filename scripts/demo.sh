#!/usr/bin/env bash
# Installs fastload, starts its built-in server on loopback and runs a real 5-second load test
# against it (HTTP/1.1, then HTTP/2 cleartext). The server is stopped on exit.
# The port is a free one the kernel picks, or FASTLOAD_DEMO_PORT. The load tests only ever
# run against the server this script started: if it cannot start, the demo fails.
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "demo: $*" >&2; exit 1; }
python3 -m pip install -q --disable-pip-version-check . 2>&1 | grep -v -e "Running pip as" -e "is ignored" || true
python3 -c "import fastload.native" || fail "fastload did not install"
port=${FASTLOAD_DEMO_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
# With two CPUs or more, the server gets CPU 0 and the generator the others, so neither waits
# for the other's CPU (fastload warns when its workers do).
server_pin=() client_pin=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  server_pin=(taskset -c 0) client_pin=(--avoid-cpus 0)
fi
logs=$(mktemp -d)
# taskset execs fastload: $server is the server's own pid.
"${server_pin[@]}" fastload serve --host 127.0.0.1 --port "$port" >"$logs/out" 2>"$logs/err" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true; rm -rf "$logs"' EXIT
alive() {  # running, not exited (an exited child not yet reaped is a zombie: state Z)
  local state
  state=$(awk '/^State:/ {print $2}' "/proc/$server/status" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}
# Ready when OUR server is alive, has announced that it listens, and the port answers.
ready=
for _ in $(seq 100); do
  if ! alive; then
    fail "fastload serve did not start on 127.0.0.1:$port: $(tail -n 1 "$logs/err")"
  fi
  if grep -q '^listening on ' "$logs/out" &&
     python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then
    ready=1
    break
  fi
  sleep 0.1
done
[ -n "$ready" ] || fail "fastload serve (pid $server) did not answer on 127.0.0.1:$port within 10 s"
echo "demo: fastload serve (pid $server) on 127.0.0.1:$port"
fastload run "http://127.0.0.1:$port/" -c 32 -d 5s "${client_pin[@]}"
fastload run "http://127.0.0.1:$port/" --h2c -c 4 -m 16 -d 5s "${client_pin[@]}"
