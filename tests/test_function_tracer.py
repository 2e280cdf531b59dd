"""The function tracer's func-no-repeats option: TRACE_FUNC_REPEATS entries."""

from __future__ import annotations

import re

from tracefs_sim.kernel import Kernel
from tracefs_sim.tracefs import build_tree
from tracefs_sim.tracefs.files import read_file, write_file


def test_repeats_are_counted_then_flushed_by_the_next_function() -> None:
    k = Kernel(nr_cpus=1, seed=1)
    k.workload.enabled = False
    root = build_tree(k)
    write_file(root, "set_ftrace_filter", b"_raw_spin_lock\nvfs_read")
    write_file(root, "current_tracer", b"function")
    write_file(root, "options/func-no-repeats", b"1")
    for _ in range(5):
        k.workload.call("_raw_spin_lock", "schedule")
    k.syscall_enter(300, "cat", 0, op="read")
    k.syscall_exit()
    lines = [x for x in read_file(root, "trace").decode().splitlines() if not x.startswith("#")]
    assert len(lines) == 3
    assert lines[0].endswith(": _raw_spin_lock <-schedule")
    m = re.search(r": _raw_spin_lock <-schedule \(repeats: 4, last_ts: +(\d+\.\d{6})\)$", lines[1])
    assert m, lines[1]
    ts = lambda line: float(line.split(":")[0].split()[-1])  # noqa: E731
    assert ts(lines[0]) <= float(m[1]) <= ts(lines[1])
    assert lines[2].endswith(": vfs_read <-ksys_read")
    write_file(root, "options/raw", b"1")
    raw = read_file(root, "trace").decode().splitlines()
    assert re.match(r"^300 0 \d+ \d+ \d+ 4 \d+$", [x for x in raw if x.count(" ") == 6][0])
    # without the option every call is a record
    write_file(root, "options/raw", b"0")
    write_file(root, "options/func-no-repeats", b"0")
    write_file(root, "trace", b"")
    for _ in range(3):
        k.workload.call("_raw_spin_lock", "schedule")
    lines = [x for x in read_file(root, "trace").decode().splitlines() if not x.startswith("#")]
    assert len(lines) == 3 and "repeats" not in "".join(lines)
