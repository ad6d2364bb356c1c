#!/usr/bin/env bash
# The main job: installs what is missing, builds raidfs, and runs the RAID engine demonstration on
# image files (RAID6, 6 members, 64 MiB each, under /var/tmp/raidfs-demo). Extra arguments go to
# raidfs-demo (see build/utils/raidfs-demo --help). The filesystem does not mount yet: see README.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh build
exec build/utils/raidfs-demo "$@"
