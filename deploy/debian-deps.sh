#!/bin/sh
# debian-deps.sh - install the Debian packages socpilot builds, runs and
# tests with, only those missing.  Called by `make deps` (and so by
# `make run` / `make test`); safe to run again.  Needs root or sudo.
set -eu

PKGS="build-essential pkg-config librdkafka-dev libjansson-dev libhiredis-dev
libcurl4-openssl-dev libyaml-dev libmicrohttpd-dev zlib1g-dev redis-server
python3 python3-jsonschema clang libclang-rt-14-dev kcat"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

echo "socpilot: installing missing packages:$missing"
SUDO=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "need root (or sudo) to install:$missing" >&2; exit 1; }
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
# The package enables a system redis-server; tests start their own on a
# free port, so the system one is left alone.
