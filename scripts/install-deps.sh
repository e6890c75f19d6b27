#!/usr/bin/env bash
# Installs the Debian 12 packages hetee needs to build, test and run its demo.
# Idempotent: does nothing when everything is present. Needs root for apt-get.
set -euo pipefail
PKGS=(
  build-essential cmake pkg-config
  libsodium-dev        # randomness, hashing, signatures, AEAD channels
  libcmocka-dev        # unit tests (run by ctest)
  libseccomp-dev       # enclave sim backend: system-call filter
  protobuf-c-compiler libprotobuf-c-dev libonnx-dev   # ONNX import (onnx.proto)
  zlib1g-dev           # gzip'd IDX files
  libmicrohttpd-dev    # hetee server: HTTP/1.1
  libjansson-dev       # hetee server and client: JSON metadata
  libsqlite3-dev       # hetee server: parties, models, jobs (WAL)
  libcurl4-openssl-dev # hetee client: HTTP
  dataset-fashion-mnist
)
missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
# Another apt or dpkg run on the machine (unattended upgrades, a second
# `make`) holds a lock: wait for it (up to 10 minutes) instead of failing at
# once. DPkg::Lock::Timeout makes apt-get wait for the dpkg lock itself, but
# `apt-get update` takes the package lists lock (/var/lib/apt/lists/lock),
# which that option does not cover: a failure naming a lock is retried.
LOCK_WAIT=(-o DPkg::Lock::Timeout=600)
apt_retry() { # apt-get arguments...
  local waited=0 out
  while :; do
    if out=$($SUDO apt-get "${LOCK_WAIT[@]}" "$@" 2>&1 >/dev/null); then
      return 0
    fi
    if grep -qiE 'could not get lock|unable to (acquire|lock)' <<<"$out" && [ "$waited" -lt 600 ]; then
      if [ "$waited" -eq 0 ]; then
        echo "install-deps: another apt/dpkg run holds a lock; waiting for it (up to 10 minutes)" >&2
      fi
      sleep 5
      waited=$((waited + 5))
      continue
    fi
    echo "$out" >&2
    return 1
  done
}
apt_retry update -qq
apt_retry install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: installed ${missing[*]}" >&2
