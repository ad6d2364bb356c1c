#!/usr/bin/env bash
# Goal: raidfs answers POSIX operations the way a kernel filesystem does — results, error codes,
# sizes, modes, owners, link counts, times set by utimens, xattrs, sparse and punched files, big
# directories — and what it answered survives an unmount and a remount.
# Method: fs_ops_script.sh runs the same operations on tmpfs (the reference) and on a raidfs
# mount (RAID6, 6 members, 16 KiB chunks so that small files cross stripes) and the two transcripts
# must be identical; then the raidfs tree (contents, modes, owners, links, mtimes, xattrs) is
# listed, the array remounted, and listed again.
#   usage: fs_ops_test.sh BUILD_DIR
#   RAIDFS_OPS_SELFTEST=1: compare tmpfs with a second tmpfs (checks the script, needs no raidfs)
set -euo pipefail
here=$(dirname "$(realpath "$0")")
source "$here/lib.sh"

if [[ ${RAIDFS_OPS_SELFTEST:-0} == 1 ]]; then
  [[ $(id -u) -eq 0 ]] || skip "needs root"
  IT_WORK=$(mktemp -d /var/tmp/raidfs-it-opsself-XXXXXX)
  # shellcheck disable=SC2154  # rc is set inside the trap
  trap 'rc=$?; set +e; umount "$IT_WORK"/ref "$IT_WORK"/mnt 2>/dev/null; rm -rf "$IT_WORK"; exit $rc' EXIT
else
  it_init "${1:?build dir}" fs_ops
fi

# Everything about a tree that must survive a remount.
persist_listing() {
  (cd "$1" && find . -mindepth 1 -printf '%y %m %u %g %n %s %p -> %l\n' | LC_ALL=C sort &&
     find . -type f -printf '%TY-%Tm-%Td+%TT %p\n' | LC_ALL=C sort &&
     find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum &&
     python3 -c '
import os, sys
for root, dirs, files in sorted(os.walk(".")):
    for n in sorted(dirs + files):
        p = os.path.join(root, n)
        for a in sorted(os.listxattr(p, follow_symlinks=False)):
            print(p, a, os.getxattr(p, a, follow_symlinks=False).hex()[:64])')
}

# run_script DIR OUT: the transcript, long runs of one character (255-byte names) as <COUNTxCHAR>.
run_script() {
  bash "$here/fs_ops_script.sh" "$1" "$IT_WORK/scratch" 2>&1 |
    perl -pe 's/(.)\1{19,}/"<" . length($&) . "x$1>"/ge' >"$2"
}

mkdir -p "$IT_WORK/ref" "$IT_WORK/scratch"
mount -t tmpfs -o size=2G,mode=755 raidfs-it-ref "$IT_WORK/ref" || fail "cannot mount the reference tmpfs"
IT_MOUNTS+=("$IT_WORK/ref")   # unmounted by the cleanup if the script stops early
mkdir "$IT_WORK/ref/t"
t0=$SECONDS
run_script "$IT_WORK/ref/t" "$IT_WORK/ref.out"
it_log "tmpfs run: $((SECONDS - t0)) s, $(grep -c '^\$ ' "$IT_WORK/ref.out") commands"
umount "$IT_WORK/ref"

mp=$IT_WORK/mnt
if [[ ${RAIDFS_OPS_SELFTEST:-0} == 1 ]]; then
  mkdir -p "$mp" && mount -t tmpfs -o size=2G,mode=755 raidfs-it-self "$mp"
else
  it_make_array "$IT_WORK/arr" 6 256M -l 6 -c 16K
  it_mount "$IT_WORK/arr/meta" "$mp"
fi
mkdir "$mp/t" || fail "mkdir on the raidfs root failed"
t0=$SECONDS
run_script "$mp/t" "$IT_WORK/raidfs.out"
it_log "raidfs run: $((SECONDS - t0)) s"

if ! diff -u --label tmpfs --label raidfs "$IT_WORK/ref.out" "$IT_WORK/raidfs.out" >"$IT_WORK/ops.diff"; then
  cat "$IT_WORK/ops.diff" >&2
  fail "raidfs answered $(grep -c '^-\$\|^-[^-]' "$IT_WORK/ops.diff") line(s) of the operations transcript differently from tmpfs (diff above: - tmpfs, + raidfs)"
fi
it_log "transcripts identical ($(wc -l <"$IT_WORK/ref.out") lines)"

[[ ${RAIDFS_OPS_SELFTEST:-0} == 1 ]] && { echo "selftest ok"; exit 0; }

persist_listing "$mp/t" >"$IT_WORK/before.lst" || fail "listing the raidfs tree failed"
it_umount "$mp"
it_mount "$IT_WORK/arr/meta" "$mp"
persist_listing "$mp/t" >"$IT_WORK/after.lst" || fail "listing the raidfs tree after the remount failed"
if ! diff -u --label before-remount --label after-remount "$IT_WORK/before.lst" "$IT_WORK/after.lst" >&2; then
  fail "the tree changed across an unmount and remount"
fi
it_log "tree identical after remount ($(wc -l <"$IT_WORK/after.lst") lines)"
it_umount "$mp"
