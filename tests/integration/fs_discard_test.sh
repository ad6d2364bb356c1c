#!/usr/bin/env bash
# Discard through a real mount: with -o discard, the space of a deleted file and of the stripes
# the cleaner frees goes back to the members — the sparse image files shrink (punched holes) and
# a loop device passes BLKDISCARD on to its image — while every byte still stored reads back
# (fio --verify over overwrites, cmp of a kept file, a degraded read with two members gone) and
# fsck -n stays clean. Without -o discard nothing shrinks until `raidfs trim`.
# Method: RAID6 on 6 images of 32 MiB (128 MiB of data) on tmpfs, 16 KiB chunks; then the same
# on loop devices over such images.
#   usage: fs_discard_test.sh BUILD_DIR
set -euo pipefail
source "$(dirname "$0")/lib.sh"
[[ -d /dev/shm ]] && : "${RAIDFS_IT_TMPDIR:=/dev/shm}"
it_init "${1:?build dir}" fs_discard
command -v fio >/dev/null || skip "no fio"

arr=$IT_WORK/arr mp=$IT_WORK/mnt
# Bytes the images hold (allocated, not their size).
image_bytes() { du -B1 -c "$arr"/m*.img | tail -1 | cut -f1; }
discard_field() { "$IT_BUILD/utils/raidfs" status --json "$mp" | python3 -c "import json, sys; print(json.load(sys.stdin)['discard']['$1'])"; }
# wait_below BYTES: up to 10 s for the images to hold less than BYTES.
wait_below() {
  local i
  for i in $(seq 100); do (($(image_bytes) < $1)) && return 0; sleep 0.1; done
  return 1
}
# rm_and_wait FILE MIB LABEL: deletes FILE, makes the delete durable (only then are its stripes
# discarded) and waits for the images to hold MIB MiB less than before (sets `before`).
rm_and_wait() {
  before=$(image_bytes)
  rm "$1"
  sync
  wait_below $((before - $2 * 1024 * 1024)) ||
    fail "$3: images hold $(image_bytes) bytes 10 s after deleting $1 (were $before)"
}

it_make_array "$arr" 6 32M -l 6 -c 16K
it_mount "$arr/meta" "$mp" -o discard
[[ $(discard_field on) == True ]] || fail "status with -o discard: discard not on"
mkdir "$IT_WORK/src"
it_random_file "$IT_WORK/src/keep" $((3 * 1024 * 1024 + 777))
cp "$IT_WORK/src/keep" "$mp/keep"
dd if=/dev/urandom of="$mp/big" bs=1M count=64 conv=fsync status=none
sync
full=$(image_bytes)
((full > 64 * 1024 * 1024 * 6 / 4)) || fail "the images hold $full bytes after 64 MiB written"
rm_and_wait "$mp/big" 60 "-o discard"
it_log "rm of 64 MiB: images $full -> $(image_bytes) bytes, $(discard_field stripes) stripes discarded"
cmp "$IT_WORK/src/keep" "$mp/keep" || fail "the kept file changed"

# Overwrites: the cleaner frees stripes and they are discarded as they go; every block verifies.
fio --name=ow --filename="$mp/db" --size=64M --bs=4k --rw=randwrite --ioengine=psync \
  --io_size=160M --fsync=64 --verify=crc32c --verify_fatal=1 --randrepeat=0 \
  --output="$IT_WORK/fio.out" || fail "fio over overwrites with -o discard: $(tail -5 "$IT_WORK/fio.out")"
rm_and_wait "$mp/db" 50 "after the overwrites"
cmp "$IT_WORK/src/keep" "$mp/keep" || fail "the kept file changed during overwrites with discard"
it_log "fio --verify over 160 MiB of overwrites with the cleaner and discard: clean; $(discard_field stripes) stripes discarded"
it_umount "$mp"

# Without -o discard: nothing shrinks until raidfs trim.
it_mount "$arr/meta" "$mp"
[[ $(discard_field on) == False ]] || fail "discard on without -o discard"
dd if=/dev/urandom of="$mp/big" bs=1M count=32 conv=fsync status=none
sync
rm "$mp/big"
sync
sleep 2
held=$(image_bytes)
out=$("$IT_BUILD/utils/raidfs" trim "$mp" 2>&1) || fail "raidfs trim: $out"
(($(image_bytes) < held - 28 * 1024 * 1024)) || fail "raidfs trim ($out): images $held -> $(image_bytes) bytes"
it_log "without -o discard: $held bytes held after rm; raidfs trim ($out) -> $(image_bytes)"
cmp "$IT_WORK/src/keep" "$mp/keep" || fail "the kept file changed after trim"
it_check_without "$arr" "$mp" "$IT_WORK/src" "after discards" 1 4
it_umount "$mp"
out=$("$IT_BUILD/utils/raidfs-fsck" -n "$arr/meta" 2>&1) || fail "fsck -n after discards: $out"

# Loop devices: BLKDISCARD reaches the images under them.
if loops=$(for i in 0 1 2 3 4 5; do losetup -f --show "$arr/m$i.img" || exit 1; done 2>/dev/null); then
  mapfile -t loop_devs <<<"$loops"
  cleanup_loops() { local d; for d in "${loop_devs[@]}"; do losetup -d "$d" 2>/dev/null; done; }
  trap 'umount "$mp" 2>/dev/null; cleanup_loops; it_cleanup' EXIT
  members=$(IFS=:; echo "${loop_devs[*]}")
  it_mount "$arr/meta" "$mp" -o "discard,members=$members"
  dd if=/dev/urandom of="$mp/big" bs=1M count=48 conv=fsync status=none
  sync
  rm_and_wait "$mp/big" 44 "loop devices"
  cmp "$IT_WORK/src/keep" "$mp/keep" || fail "the kept file changed on loop devices"
  it_log "loop devices: rm of 48 MiB, images $before -> $(image_bytes) bytes (BLKDISCARD)"
  it_umount "$mp"
  cleanup_loops
  trap it_cleanup EXIT
else
  it_log "no loop devices here: BLKDISCARD not tried"
fi
out=$("$IT_BUILD/utils/raidfs-fsck" -n "$arr/meta" 2>&1) || fail "fsck -n at the end: $out"
it_log "PASS"
