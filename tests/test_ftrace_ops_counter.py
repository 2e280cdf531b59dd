"""examples/ftrace_ops_counter.py: an ftrace_ops module, in-process and loaded by a mount."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from conftest import sh

from tracefs_sim.kernel import Kernel
from tracefs_sim.tracefs import build_tree
from tracefs_sim.tracefs.files import read_file

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ftrace_ops_counter.py"


def drive(k: Kernel, op: str, n: int) -> None:
    for _ in range(n):
        k.syscall_enter(321, "cat", 0, op=op, name="README", count=100)
        k.syscall_exit()


def test_counts_the_filtered_functions_only():
    k = Kernel(nr_cpus=2, seed=3)
    k.workload.enabled = False
    root = build_tree(k)
    mod = k.insmod(str(EXAMPLE), filter="vfs_*", notrace="vfs_write")
    drive(k, "read", 3)
    drive(k, "write", 2)
    drive(k, "openat", 1)
    counts = mod.counts()
    assert counts["vfs_read"] == 3 and counts["vfs_open"] == 1
    assert "vfs_write" not in counts and "ksys_read" not in counts
    assert all(name.startswith("vfs_") for name in counts)
    enabled = read_file(root, "enabled_functions").decode()
    assert "vfs_read (1)" in enabled and "vfs_write (1)" not in enabled
    assert ("(counter_func+0x0/0x100 [ftrace_ops_counter]) "
            "->counter_func+0x0/0x100 [ftrace_ops_counter]") in enabled
    k.rmmod("ftrace_ops_counter")
    assert read_file(root, "enabled_functions") == b""
    assert any(line.endswith("ftrace_ops_counter:          3 vfs_read") for line in k.log)
    drive(k, "read", 2)
    assert mod.counts()["vfs_read"] == 3  # unregistered: no more hits


def test_a_filter_that_matches_nothing_fails_the_load():
    k = Kernel(nr_cpus=1, seed=3)
    with pytest.raises(OSError, match="init_module returned -22"):
        k.insmod(str(EXAMPLE), filter="no_such_function_at_all")
    assert "ftrace_ops_counter" not in k.modules


@pytest.mark.mount
def test_loaded_by_the_mount_counts_reads_of_the_mount(mount_server):
    server = mount_server(extra=("--module", str(EXAMPLE), "--module-arg", "filter=vfs_read"))
    for _ in range(3):
        assert sh(server.path, "cat README > /dev/null").returncode == 0
    r = sh(server.path, "cat enabled_functions")
    assert r.stdout.startswith("vfs_read (1)") and "counter_func" in r.stdout
    server.stop()
    deadline = time.monotonic() + 5
    while "calls of 1 functions of vfs_read" not in server.stderr() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = server.stderr()
    assert "ftrace_ops_counter: counting calls of vfs_read" in log
    counts = [int(m[1]) for m in re.finditer(r"ftrace_ops_counter: +(\d+) vfs_read$", log, re.M)]
    assert counts and counts[0] >= 3  # each cat reads README (data, then EOF)
