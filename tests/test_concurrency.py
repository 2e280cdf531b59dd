"""Concurrent writers and consuming readers through a real mount (issue 10).

Several processes write ``trace_marker`` while several ``trace_pipe`` readers consume: every
record must be read exactly once and none lost while the buffer has room (2 CPUs x 1408 KB
holds far more than the few thousand markers written).  The same for ``per_cpu/cpuN/
trace_pipe``, with writers pinned by taskset.  And a handler fault in the *real* tree while
readers are blocked and writers run: the caller gets EIO and the mount keeps serving
everyone else (the adapter-tree version of that is test_mount_adapter.py's
test_injected_exception_gives_eio_and_mount_survives).

Ending the readers: a reader stops after a line with END.  ENDs are written one at a time,
each only after the previous one's reader exited, so each reader consumes exactly one.
"""

from __future__ import annotations

import collections
import re
import subprocess
import sys
import time
from pathlib import Path

from conftest import sh

from tracefs_sim.kernel import Kernel
from tracefs_sim.tracefs import build_tree
from tracefs_sim.tracefs.files import seq_file
from tracefs_sim.tracefs.node import Dir

WRITERS = 4
PER_WRITER = 250

READER = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
buf = b""
while b"END" not in buf:
    data = os.read(fd, 65536)
    if not data:
        break
    buf += data
sys.stdout.buffer.write(buf)
"""

WRITER = r"""
import os, sys
tag, n = sys.argv[1], int(sys.argv[2])
fd = os.open(sys.argv[3], os.O_WRONLY)
for j in range(n):
    os.write(fd, f"{tag}-{j}\n".encode())
"""

MARK_RE = re.compile(r"^\s*\S+-\d+\s+\[(\d+)\].*tracing_mark_write: (\S+)$")


def _spawn(code: str, args: list[str], cwd: Path, cpu: int | None = None,
           timeout: int = 60) -> subprocess.Popen:
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    return subprocess.Popen(["timeout", "-k", "1", str(timeout), *pin, sys.executable, "-c",
                             code, *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def _end_readers(mnt: Path, readers: list[subprocess.Popen], cpu: int | None = None) -> None:
    """Write END once per live reader, each after the previous END was consumed."""
    pin = f"taskset -c {cpu} " if cpu is not None else ""
    live = list(readers)
    while live:
        assert sh(mnt, f"{pin}sh -c 'echo END > trace_marker'").returncode == 0
        t0 = time.monotonic()
        while all(p.poll() is None for p in live):
            assert time.monotonic() - t0 < 10, "no reader took the END marker"
            time.sleep(0.02)
        live = [p for p in live if p.poll() is None]


def _collect(readers: list[subprocess.Popen]) -> list[list[tuple[int, str]]]:
    out = []
    for p in readers:
        stdout, stderr = p.communicate(timeout=10)
        assert p.returncode == 0, stderr
        recs = []
        for line in stdout.decode(errors="replace").splitlines():
            m = MARK_RE.match(line)
            if m and m.group(2) != "END":
                recs.append((int(m.group(1)), m.group(2)))
        out.append(recs)
    return out


def _wait_all(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err


def test_writers_and_trace_pipe_readers_every_record_once(mounted):
    readers = [_spawn(READER, ["trace_pipe"], mounted) for _ in range(4)]
    time.sleep(0.5)  # all blocked in read
    assert all(p.poll() is None for p in readers)
    writers = [_spawn(WRITER, [f"w{i}", str(PER_WRITER), "trace_marker"], mounted)
               for i in range(WRITERS)]
    _wait_all(writers)
    _end_readers(mounted, readers)
    got = [tag for recs in _collect(readers) for _, tag in recs]
    counts = collections.Counter(got)
    expected = {f"w{i}-{j}" for i in range(WRITERS) for j in range(PER_WRITER)}
    assert set(counts) == expected, sorted(expected - set(counts))[:10]  # none lost
    assert max(counts.values()) == 1  # none read twice
    # each writer's records come out in its order (one writer, one CPU buffer at a time)
    for i in range(WRITERS):
        seq = [int(t.split("-")[1]) for t in got if t.startswith(f"w{i}-")]
        assert len(seq) == PER_WRITER
    assert "entries-in-buffer/entries-written: 0/" in sh(mounted, "head -3 trace").stdout


def test_per_cpu_trace_pipe_readers(mounted):
    readers = {cpu: [_spawn(READER, [f"per_cpu/cpu{cpu}/trace_pipe"], mounted)
                     for _ in range(2)] for cpu in (0, 1)}
    time.sleep(0.5)
    writers = [_spawn(WRITER, [f"c{cpu}w{i}", str(PER_WRITER), "trace_marker"], mounted, cpu=cpu)
               for cpu in (0, 1) for i in range(2)]
    _wait_all(writers)
    for cpu in (0, 1):
        _end_readers(mounted, readers[cpu], cpu=cpu)
    for cpu in (0, 1):
        recs = [r for rs in _collect(readers[cpu]) for r in rs]
        assert {c for c, _ in recs} <= {cpu}  # a per-CPU reader sees only its CPU
        counts = collections.Counter(tag for _, tag in recs)
        expected = {f"c{cpu}w{i}-{j}" for i in range(2) for j in range(PER_WRITER)}
        assert set(counts) == expected, sorted(expected ^ set(counts))[:10]
        assert max(counts.values()) == 1


# ----------------------------------------------------------------------------- fault injection
def build_with_fault(kernel: Kernel) -> Dir:
    """The real tree plus ``fault_inject``: reading or writing it raises RuntimeError, a
    stand-in for a bug in any handler (mounted with --tree-factory test_concurrency:...)."""
    def boom(*_args: object) -> str:
        raise RuntimeError("injected failure")

    root = build_tree(kernel)
    root.add("fault_inject", seq_file(0o640, boom, boom))
    return root


def test_handler_fault_gives_eio_while_readers_and_writers_run(mount_server):
    server = mount_server(tree_factory="test_concurrency:build_with_fault", allow_traceback=True)
    mnt = server.path
    readers = [_spawn(READER, ["trace_pipe"], mnt) for _ in range(3)]
    time.sleep(0.5)
    writers = [_spawn(WRITER, [f"f{i}", "300", "trace_marker"], mnt) for i in range(2)]
    for _ in range(5):  # faults interleaved with the writers' requests
        r = sh(mnt, "echo x > fault_inject")
        assert r.returncode != 0 and "I/O error" in r.stderr  # dash: "echo: I/O error"
        r = sh(mnt, "cat fault_inject")
        assert r.returncode != 0 and "Input/output error" in r.stderr
    _wait_all(writers)
    assert sh(mnt, "cat tracing_on").stdout == "1\n"  # the mount keeps serving
    _end_readers(mnt, readers)
    got = collections.Counter(tag for recs in _collect(readers) for _, tag in recs)
    assert set(got) == {f"f{i}-{j}" for i in range(2) for j in range(300)}
    assert max(got.values()) == 1
    assert "injected failure" in server.stderr()
    assert server.mounted() and server.proc.poll() is None
