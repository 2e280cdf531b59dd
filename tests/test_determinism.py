"""``--seed N``: the same seed and the same commands give byte-identical trace output."""

from __future__ import annotations

from tracefs_sim.kernel import Kernel
from tracefs_sim.tracefs import build_tree
from tracefs_sim.tracefs.files import read_file, write_file


def run(seed: int) -> bytes:
    k = Kernel(nr_cpus=2, seed=seed)
    root = build_tree(k)
    write_file(root, "events/sched/sched_switch/enable", "1")
    write_file(root, "current_tracer", "function")
    for i in range(40):
        k.syscall_enter(300 + i % 3, "cat", i % 2, op="read", name="README", count=4096)
        k.syscall_exit()
    k.syscall_enter(400, "bash", 0, op="write", name="trace_marker", count=6)
    write_file(root, "trace_marker", "hello\n")
    k.syscall_exit()
    write_file(root, "tracing_on", "0")
    return read_file(root, "trace")


def test_same_seed_same_bytes():
    a, b = run(5), run(5)
    assert a == b
    assert b"tracing_mark_write: hello" in a and b"sched_switch:" in a and b"vfs_read <-ksys_read" in a


def test_other_seed_other_activity():
    assert run(5) != run(6)
