#!/usr/bin/env bash
# Installs what is missing, builds raidfs into build/ and installs it (meson install: the
# programs under /usr/local, and /sbin/mount.raidfs and /sbin/mount.fuse.raidfs, which mount(8)
# looks for), so that `mount -t raidfs`, /etc/fstab lines and `mount -o remount` work. As root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh build
[[ $(id -u) -eq 0 ]] || { echo "raidfs: installing needs root" >&2; exit 1; }
meson install -C build --quiet --no-rebuild >/dev/null
echo "raidfs: installed $(build/utils/mount.raidfs --version) (mkfs.raidfs, mount.raidfs, raidfs-fsck, raidfs)"
