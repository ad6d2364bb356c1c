#!/usr/bin/env bash
# Installs the Debian 12 packages raidfs builds, tests and benchmarks with — only those missing,
# so a machine that has them all needs no network. Run as root.
set -euo pipefail

packages=(
  g++ meson ninja-build pkg-config python3
  liburing-dev libisal-dev librocksdb-dev libfuse3-dev fuse3 libcli11-dev libgtest-dev
  fio btrfs-progs util-linux e2fsprogs rsync acl attr libcap2-bin
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "raidfs: missing packages: ${missing[*]}; run this as root (or apt-get install them)" >&2
    exit 1
  fi
  echo "raidfs: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
