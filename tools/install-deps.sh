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
  # benchmarks: the plot in docs/performance.png
  gnuplot-nox
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
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
