#!/usr/bin/env python3
"""The writer and the verifier of the SIGKILL crash test (sigkill_test.sh).

  crash_fs.py write MOUNT STATE ID SEED    runs operations until one fails (the daemon is killed)
  crash_fs.py verify MOUNT STATE ID        checks the mount against the state; then adopts it

A writer works in MOUNT/wID and keeps, outside the array in STATE/wID, a shadow copy of every file
as it was after the last operation that completed (its fsyncs returned), and a journal. Before an
operation it writes "begin N {json}" (and the new data to inflight.bin), then does it (write,
fsync of the file, fsync of the directory), then updates the shadow, then writes "end N". Only a
failing file system operation stops it, so "begin" without "end" is the one operation in flight
when the daemon died, and the shadow is the state before it.

The verifier demands: every file not touched by the operation in flight is exactly its shadow
(content, and that it exists); no file exists that the writer never made; the file of the
operation in flight is in a state the operation could leave it in — before or after, or for
data, per byte the old or the new byte (or zero where nothing was before: the data may not have
been committed); every file reads without an error. Then it makes the shadow match the mount and
closes the journal entry ("resolved N"), so the next round starts from what survived.
Written data never contains a zero byte, so a zero is never mistaken for written data.
"""
import json
import os
import random
import sys

MAX_FILES = 24
SIZES = [1, 100, 4095, 4096, 4097, 16384, 65536, 65537, 100000, 262144]


def data_bytes(rng, n):
    return bytes(rng.randrange(1, 256) for _ in range(n)) if n < 64 else \
        rng.randbytes(n).replace(b"\0", b"\x01")


def fsync_path(path, directory=False):
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class State:
    def __init__(self, state_dir, wid):
        self.dir = os.path.join(state_dir, f"w{wid}")
        self.files = os.path.join(self.dir, "files")
        self.journal = os.path.join(self.dir, "journal")
        self.inflight = os.path.join(self.dir, "inflight.bin")
        os.makedirs(self.files, exist_ok=True)

    def names(self):
        return sorted(os.listdir(self.files))

    def read(self, name):
        with open(os.path.join(self.files, name), "rb") as f:
            return f.read()

    def write(self, name, data):
        tmp = os.path.join(self.dir, "shadow.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, os.path.join(self.files, name))

    def remove(self, name):
        os.unlink(os.path.join(self.files, name))

    def rename(self, old, new):
        os.replace(os.path.join(self.files, old), os.path.join(self.files, new))

    def last_entry(self):
        """(number, op) of an operation begun and not ended or resolved, else (count, None)."""
        begun, count = {}, 0
        if os.path.exists(self.journal):
            for line in open(self.journal):
                parts = line.split(" ", 2)
                n = int(parts[1])
                count = max(count, n + 1)
                if parts[0] == "begin":
                    begun[n] = json.loads(parts[2])
                else:
                    begun.pop(n, None)
        assert len(begun) <= 1, f"{self.dir}: several operations in flight: {sorted(begun)}"
        return (next(iter(begun.items())) if begun else (count, None))

    def log(self, text):
        with open(self.journal, "a") as f:
            f.write(text + "\n")
            f.flush()


def write(mount, state_dir, wid, seed):
    rng = random.Random(seed)
    st = State(state_dir, wid)
    n, pending = st.last_entry()
    assert pending is None, "verify first: an operation is still in flight"
    d = os.path.join(mount, f"w{wid}")
    try:
        if not os.path.isdir(d):
            os.mkdir(d)
            fsync_path(mount, directory=True)
    except OSError as e:
        print(f"writer {wid}: stopped before its first operation: {e}", file=sys.stderr)
        return
    done = 0
    try:
        while True:
            names = st.names()
            kind = rng.random()
            if not names or (kind < 0.25 and len(names) < MAX_FILES):
                op = {"op": "create", "name": f"c{seed}-{n}"}
                data = data_bytes(rng, rng.choice(SIZES))
            elif kind < 0.45:
                name = rng.choice(names)
                size = len(st.read(name))
                if size >= 1 << 20:  # bounded: cut it in half instead
                    op = {"op": "truncate", "name": name, "size": size // 2}
                    data = b""
                else:
                    op = {"op": "append", "name": name}
                    data = data_bytes(rng, rng.choice(SIZES[:7]))
            elif kind < 0.65:
                name = rng.choice(names)
                size = len(st.read(name))
                if size == 0:
                    continue
                offset = rng.randrange(size)
                data = data_bytes(rng, min(rng.choice(SIZES[:8]), size - offset))
                op = {"op": "overwrite", "name": name, "offset": offset}
            elif kind < 0.75:
                name = rng.choice(names)
                op = {"op": "truncate", "name": name, "size": len(st.read(name)) // 2}
                data = b""
            elif kind < 0.87 or len(names) >= MAX_FILES:
                op = {"op": "unlink" if kind >= 0.8 or len(names) >= MAX_FILES else "rename",
                      "name": rng.choice(names)}
                if op["op"] == "rename":
                    op["to"] = f"r{seed}-{n}"
                data = b""
            else:
                continue
            with open(st.inflight, "wb") as f:
                f.write(data)
            st.log(f"begin {n} {json.dumps(op)}")
            path = os.path.join(d, op["name"])
            if op["op"] == "create":
                with open(path, "xb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                fsync_path(d, directory=True)
                st.write(op["name"], data)
            elif op["op"] == "append":
                with open(path, "ab") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                st.write(op["name"], st.read(op["name"]) + data)
            elif op["op"] == "overwrite":
                fd = os.open(path, os.O_WRONLY)
                try:
                    os.pwrite(fd, data, op["offset"])
                    os.fsync(fd)
                finally:
                    os.close(fd)
                old = st.read(op["name"])
                st.write(op["name"], old[:op["offset"]] + data + old[op["offset"] + len(data):])
            elif op["op"] == "truncate":
                os.truncate(path, op["size"])
                fsync_path(path)
                st.write(op["name"], st.read(op["name"])[:op["size"]])
            elif op["op"] == "rename":
                os.rename(path, os.path.join(d, op["to"]))
                fsync_path(d, directory=True)
                st.rename(op["name"], op["to"])
            elif op["op"] == "unlink":
                os.unlink(path)
                fsync_path(d, directory=True)
                st.remove(op["name"])
            st.log(f"end {n}")
            n += 1
            done += 1
    except OSError as e:
        print(f"writer {wid}: {done} operations, then: {e}", file=sys.stderr)


def verify(mount, state_dir, wid):
    st = State(state_dir, wid)
    n, op = st.last_entry()
    d = os.path.join(mount, f"w{wid}")
    problems = []
    present = {}
    if os.path.isdir(d):
        for name in sorted(os.listdir(d)):
            try:
                with open(os.path.join(d, name), "rb") as f:
                    present[name] = f.read()
            except OSError as e:
                problems.append(f"{name}: cannot be read: {e}")
                present[name] = None
    shadow = {name: st.read(name) for name in st.names()}
    new = open(st.inflight, "rb").read() if op else b""
    touched = set()
    if op:
        touched = {op["name"]} | ({op["to"]} if "to" in op else set())

    def bytes_ok(got, old, base):
        """got[i] is old[i], or new[i - base], or (beyond old) zero."""
        for i, b in enumerate(got):
            if i < len(old) and b == old[i]:
                continue
            j = i - base
            if 0 <= j < len(new) and b == new[j]:
                continue
            if i >= len(old) and b == 0:
                continue
            return f"byte {i} = {b} was never written there"
        return None

    for name in sorted(set(shadow) | set(present)):
        if name in touched:
            continue
        if name not in present:
            problems.append(f"{name}: completed (fsynced) but missing")
        elif name not in shadow:
            problems.append(f"{name}: appeared, never made by the writer")
        elif present[name] is not None and present[name] != shadow[name]:
            problems.append(f"{name}: differs from what was fsynced ({len(present[name])} bytes, "
                            f"expected {len(shadow[name])})")
    if op:
        name, kind = op["name"], op["op"]
        got = present.get(name)
        old = shadow.get(name)
        why = None
        if kind == "create":
            if name in present and got is not None:
                why = (f"{len(got)} bytes > {len(new)}" if len(got) > len(new) else bytes_ok(got, b"", 0))
        elif kind in ("append", "overwrite", "truncate") and name not in present:
            why = "missing"
        elif kind == "append" and got is not None:
            why = (f"size {len(got)} outside [{len(old)}, {len(old) + len(new)}]"
                   if not len(old) <= len(got) <= len(old) + len(new) else bytes_ok(got, old, len(old)))
        elif kind == "overwrite" and got is not None:
            why = (f"size {len(got)} != {len(old)}" if len(got) != len(old)
                   else bytes_ok(got, old, op["offset"]))
        elif kind == "truncate" and got is not None:
            why = None if got in (old, old[:op["size"]]) else f"neither before nor after ({len(got)} bytes)"
        elif kind == "rename":
            at_old, at_new = name in present, op["to"] in present
            if at_old == at_new:
                why = f"rename to {op['to']}: {'both' if at_old else 'neither'} names exist"
            elif present[name if at_old else op["to"]] not in (None, old):
                why = "content changed by a rename"
        elif kind == "unlink" and got is not None and got != old:
            why = "content changed by an unlink"
        if why:
            problems.append(f"{name}: operation in flight ({kind}): {why}")
    for p in problems:
        print(f"writer {wid}: {p}")
    if problems:
        return False
    # Adopt what survived: the shadow becomes the mount's state, the operation is resolved.
    if op:
        for name in touched:
            if name in present:
                st.write(name, present[name])
            elif name in shadow:
                st.remove(name)
        st.log(f"resolved {n}")
    print(f"writer {wid}: {len(st.names())} files as fsynced"
          + (f"; operation {n} ({op['op']}) was in flight" if op else ""))
    return True


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    elif sys.argv[1] == "verify":
        sys.exit(0 if verify(sys.argv[2], sys.argv[3], int(sys.argv[4])) else 1)
    else:
        sys.exit(f"usage: {sys.argv[0]} write|verify ...")
