#!/usr/bin/env bash
# Installs every Debian package hearth needs to build, run and test. Idempotent: installs only
# what is missing. The one place dependencies are listed (SPEC §1).
set -euo pipefail

PACKAGES=(
  # build
  cmake make g++ pkg-config ccache
  libpoco-dev libmosquitto-dev libsqlitecpp-dev libsqlite3-dev libyaml-cpp-dev
  libsdbus-c++-dev libsystemd-dev libgtest-dev libgmock-dev googletest
  libyaml-dev
  # run
  mosquitto mosquitto-clients sqlite3 openssl
  # test
  dbus-daemon python3 python3-paho-mqtt python3-dbusmock systemd iproute2
  # fuzzing (libFuzzer) and sanitizer stack traces
  clang libclang-rt-14-dev llvm-14
  # benchmarks: the plot in docs/performance.png; perf for the profiles in docs/performance.md
  gnuplot-nox linux-perf
  # JavaScript clients (clients/*: npm ci) and their browser tests
  nodejs chromium
  # web plugin: hearthctl pair draws the pairing link as a QR code
  libqrencode-dev
  # Debian packages (make deb, tests/integration/test_deb.py; systemd-nspawn boots the
  # installed package's root)
  debhelper dpkg-dev fakeroot lintian mmdebstrap systemd-container
)

# npm dependencies of the JavaScript clients (SPEC §1, §8): each clients/*/ with a committed
# package-lock.json gets `npm ci` when its node_modules is missing or older than the lock.
install_npm() {
  local here lock dir
  here="$(cd "$(dirname "$0")/.." && pwd)"
  # Debian's nodejs ships npm apart; NodeSource's nodejs carries it (and conflicts with it).
  if ! command -v npm >/dev/null && [ "$(id -u)" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends npm
  fi
  command -v npm >/dev/null || return 0
  for lock in "$here"/clients/*/package-lock.json; do
    [ -f "$lock" ] || continue
    dir="$(dirname "$lock")"
    if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$lock" -nt "$dir/node_modules/.package-lock.json" ]; then
      echo "hearth: npm ci in ${dir#"$here"/}"
      (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    fi
  done
}

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  install_npm
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "hearth: missing Debian packages: ${missing[*]}" >&2
  echo "hearth: run as root (or: sudo $0) to install them with apt-get" >&2
  exit 1
fi

echo "hearth: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
install_npm
