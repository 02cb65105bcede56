#!/usr/bin/env bash
# The test suite, set up from nothing. Installs fastload with its test extras into the python3
# on PATH (the active venv, if any); as root, also installs from apt the programs the tests
# start as peers (those missing); runs ruff and cython-lint, then pytest. Arguments go to pytest:
#     bash scripts/test.sh -x -k h2
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  need=()
  for pair in nginx:nginx-light h2o:h2o nghttpd:nghttp2-server h2load:nghttp2-client wrk:wrk \
              openssl:openssl ip:iproute2 perf:linux-perf chromium:chromium numactl:numactl; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
  done
  # Text in the headless-browser screenshot of the HTML report.
  [ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
  # OpenSSL's headers: the native TLS unit (fastload.native.tls) is built only where they are.
  [ -e /usr/include/openssl/ssl.h ] || need+=(libssl-dev)
  if [ ${#need[@]} -gt 0 ]; then
    echo "test.sh: apt-get install ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "test.sh: pip install '.[test]' into $(python3 -c 'import sys; print(sys.prefix)')"
if ! python3 -m pip install --disable-pip-version-check '.[test]' >"$log" 2>&1; then
  cat "$log" >&2
  echo "test.sh: pip install failed (log above)" >&2
  exit 1
fi
python3 -c 'import fastload.native'

python3 -m ruff check src tests bench setup.py
python3 -m cython_lint.cython_lint src/fastload/native/*.pyx src/fastload/native/*.pxd
python3 -m pytest -q -p no:cacheprovider tests "$@"
