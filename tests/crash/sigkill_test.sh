#!/usr/bin/env bash
# Goal: a daemon killed (SIGKILL) at a random moment loses nothing that fsync said was durable,
# shows nothing that was never written, and leaves an array that raidfs-fsck -n finds clean —
# round after round on the same array, RAID6 and RAID5.
# Method: three writers (tests/crash/crash_fs.py: creates, appends, overwrites, truncates,
# renames, unlinks, each followed by fsync of the file and its directory, a shadow copy of every
# completed operation kept outside the array) run on a mounted array; the daemon is killed after a
# random 0.05-2 s; the writers stop on their first error; fusermount3 -u -z; once the daemon is
# gone: raidfs-fsck -n (exit 0 required: the crashed state itself is consistent), mount (which
# seals the stripes left open), the verifier (every file as fsynced, the one operation in flight
# per writer before or after). At the end a clean unmount and a last fsck -n.
#   usage: sigkill_test.sh BUILD_DIR      RAIDFS_CRASH_ITERATIONS=N (default 20: half RAID6, half RAID5)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../integration/lib.sh"
it_init "${1:?build dir}" crash_sigkill
command -v fusermount3 >/dev/null || skip "no fusermount3"
fsck=$IT_BUILD/utils/raidfs-fsck
[[ -x $fsck ]] || fail "no $fsck (build first)"
iterations=${RAIDFS_CRASH_ITERATIONS:-20}
writers=3

# Mount options of the array being crashed (run_array sets them).
mount_opts=()

# crash_round NAME ARRAY MP STATE ROUND: one kill and everything after it.
crash_round() {
  local name=$1 arr=$2 mp=$3 state=$4 round=$5 w pids delay
  local pids_w=()
  for ((w = 0; w < writers; w++)); do
    python3 "$here/crash_fs.py" write "$mp" "$state" "$w" "$((round * 10 + w))" 2>>"$IT_WORK/writers.log" &
    pids_w+=($!)
  done
  delay=$(python3 -c "import random; print(round(random.Random(\"$name-$round\").uniform(0.05, 2.0), 2))")
  sleep "$delay"
  pids=$(it_daemon_pids "$mp" "$IT_WORK")
  [[ -n $pids ]] || fail "round $round: no daemon to kill"
  kill -KILL $pids
  for w in "${pids_w[@]}"; do
    timeout 60 tail --pid="$w" -f /dev/null || fail "round $round: a writer did not stop after the kill"
  done
  wait || true
  fusermount3 -u -z "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || true
  it_umount "$mp"
  local rc=0
  "$fsck" -n "$arr/meta" >"$IT_WORK/fsck-$name-$round.out" 2>&1 || rc=$?
  [[ $rc -eq 0 ]] || {
    cat "$IT_WORK/fsck-$name-$round.out" >&2
    ls -la "$arr" "$arr/meta" >&2 || true  # what fsck saw, should it fail to find them
    fail "round $round: raidfs-fsck -n exited $rc on the crashed array"
  }
  it_mount "$arr/meta" "$mp" "${mount_opts[@]}"
  for ((w = 0; w < writers; w++)); do
    python3 "$here/crash_fs.py" verify "$mp" "$state" "$w" >>"$IT_WORK/verify-$name-$round.out" 2>&1 ||
      { cat "$IT_WORK/verify-$name-$round.out" >&2; fail "round $round: fsynced data lost or wrong after the kill"; }
  done
  it_log "$name round $round: killed after ${delay}s; fsck clean; $(tr '\n' ' ' <"$IT_WORK/verify-$name-$round.out")"
}

# run_array NAME ROUNDS MOUNT_OPTIONS MKFS_ARGS...: a fresh array, ROUNDS kills, a clean end.
run_array() {
  local name=$1 rounds=$2; shift 2
  mount_opts=(-o "$1"); shift
  local arr=$IT_WORK/$name mp=$IT_WORK/$name-mnt state=$IT_WORK/$name-state round rc=0
  it_make_array "$arr" 6 192M "$@"
  mkdir -p "$state"
  it_mount "$arr/meta" "$mp" "${mount_opts[@]}"
  for ((round = 1; round <= rounds; round++)); do crash_round "$name" "$arr" "$mp" "$state" "$round"; done
  it_umount "$mp"
  "$fsck" -n "$arr/meta" >"$IT_WORK/fsck-$name-final.out" 2>&1 || rc=$?
  [[ $rc -eq 0 ]] || { cat "$IT_WORK/fsck-$name-final.out" >&2; fail "$name: raidfs-fsck -n exited $rc after a clean unmount"; }
  it_mount "$arr/meta" "$mp" "${mount_opts[@]}"
  for ((w = 0; w < writers; w++)); do
    python3 "$here/crash_fs.py" verify "$mp" "$state" "$w" >/dev/null || fail "$name: data changed after a clean remount"
  done
  it_umount "$mp"
  it_log "$name: $rounds kills survived; $(tail -n 1 "$IT_WORK/fsck-$name-final.out")"
}

# RAID5 with every aligned block of the writeback's requests written to the members uncopied,
# its parity accumulated apart (copy_below=4K); RAID6 as mounted by default.
run_array raid6 $(((iterations + 1) / 2)) copy_below=64K -l 6 -c 16K
run_array raid5 $((iterations / 2)) copy_below=4K -l 5 -c 32K
