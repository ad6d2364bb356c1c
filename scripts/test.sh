#!/usr/bin/env bash
# Installs what is missing, builds raidfs twice (optimised, and ASan+UBSan), runs every test of the
# first and the unit tests of the second, and ends with one line: "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh || exit 1
scripts/build.sh build || exit 1
scripts/build.sh build-asan -Db_sanitize=address,undefined -Db_lundef=false \
  -Dcpp_args='-std=c++23 -fno-sanitize-recover=all' --buildtype=debug || exit 1

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

status=0
meson test -C build --print-errorlogs --num-processes 2 || status=1
meson test -C build-asan --suite unit --print-errorlogs --num-processes 2 || status=1

python3 - build/meson-logs/testlog.json build-asan/meson-logs/testlog.json <<'PY' || status=1
import json, sys
passed = failed = skipped = 0
for path in sys.argv[1:]:
    with open(path) as f:
        for line in f:
            result = json.loads(line)["result"]
            if result in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif result == "SKIP":
                skipped += 1
            else:
                failed += 1
print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
sys.exit(1 if failed or passed == 0 else 0)
PY
exit $status
