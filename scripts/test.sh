#!/usr/bin/env bash
# Installs what is missing, builds raidfs three times (optimised and installed, as
# scripts/install.sh does: the tests use `mount -t raidfs`; ASan+UBSan; ThreadSanitizer), runs
# every test of the first and the unit tests of the other two, and ends with one line:
# "N passed, N failed". Under CI (CI=true) a test that skips (no root, no /dev/fuse) fails the run:
# CI must prove the mounted and crash suites, not step around them.
set -uo pipefail
cd "$(dirname "$0")/.."

# The sanitizer trees build only what their unit tests run (not the programs and benchmarks).
build_unit_tests() {
  local dir=$1 targets; shift
  [[ -f $dir/build.ninja ]] || meson setup "$dir" "$@" >/dev/null || return 1
  targets=$(meson introspect "$dir" --tests | python3 -c '
import json, os, sys
root = os.path.abspath(sys.argv[1])
tests = json.load(sys.stdin)
print(" ".join(sorted({os.path.relpath(t["cmd"][0], root) for t in tests
                       if any(s.endswith(":unit") for s in t["suite"])})))' "$dir") || return 1
  # shellcheck disable=SC2086
  ninja -C "$dir" $targets >/dev/null || ninja -C "$dir" $targets
}

scripts/install.sh || exit 1
build_unit_tests build-asan -Db_sanitize=address,undefined -Db_lundef=false \
  -Dcpp_args='-std=c++23 -fno-sanitize-recover=all' --buildtype=debug || exit 1
build_unit_tests build-tsan -Db_sanitize=thread -Db_lundef=false -Dcpp_args='-std=c++23' \
  --buildtype=debugoptimized || exit 1

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tests/tsan.supp"

status=0
meson test -C build --print-errorlogs --num-processes 2 || status=1
meson test -C build-asan --suite unit --no-rebuild --print-errorlogs --num-processes 2 || status=1
meson test -C build-tsan --suite unit --no-rebuild --print-errorlogs --num-processes 2 || status=1

python3 - build/meson-logs/testlog.json build-asan/meson-logs/testlog.json \
  build-tsan/meson-logs/testlog.json <<'PY' || status=1
import json, os, sys
passed = failed = 0
skipped = []
for path in sys.argv[1:]:
    with open(path) as f:
        for line in f:
            test = json.loads(line)
            if test["result"] in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif test["result"] == "SKIP":
                skipped.append(test["name"])
            else:
                failed += 1
ci = os.environ.get("CI") == "true"
if ci and skipped:
    print(f"under CI no test may skip; skipped: {', '.join(skipped)}")
    failed += len(skipped)
    skipped = []
print(f"{passed} passed, {failed} failed" + (f", {len(skipped)} skipped" if skipped else ""))
sys.exit(1 if failed or passed == 0 else 0)
PY
exit $status
