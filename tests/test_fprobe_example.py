"""The Python port of samples/fprobe/fprobe_example.c, loaded like a module."""

from __future__ import annotations

from pathlib import Path

from tracefs_sim.kernel import Kernel
from tracefs_sim.tracefs import build_tree
from tracefs_sim.tracefs.files import read_file

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fprobe_example.py"


def drive(k: Kernel, n: int = 5) -> None:
    for _ in range(n):
        k.syscall_enter(321, "cat", 0, op="read", name="README", count=100)
        k.syscall_exit()


def test_use_trace_writes_entry_and_exit_lines():
    k = Kernel(nr_cpus=2, seed=3)
    k.workload.enabled = False
    root = build_tree(k)
    mod = k.insmod(str(EXAMPLE), symbol="vfs_read", use_trace="1", stackdump="0")
    drive(k)
    out = read_file(root, "trace").decode()
    assert "sample_entry_handler [fprobe_example]: Enter <vfs_read+0x4/" in out
    assert "sample_exit_handler [fprobe_example]: Return from <vfs_read+0x4/" in out
    assert "(ksys_read+" in out
    assert out.count("Enter <vfs_read") == 5
    assert mod.state.nhit == 10
    k.rmmod("fprobe_example")
    assert any(line.endswith("fprobe_exit: fprobe at vfs_read unregistered. 10 times hit, 0 times missed")
               for line in k.log)
    drive(k)
    assert read_file(root, "trace").decode().count("Enter <vfs_read") == 5


def test_printk_and_backtrace_to_the_kernel_log():
    k = Kernel(nr_cpus=2, seed=3)
    k.workload.enabled = False
    k.insmod(str(EXAMPLE), symbol="vfs_*", nosymbol="vfs_write*")
    drive(k, 1)
    log = "\n".join(k.log)
    assert "Planted fprobe at vfs_*" in log
    assert "sample_entry_handler: Enter <vfs_read+0x4/" in log
    assert "ksys_read+" in log  # the backtrace
    assert "vfs_write" not in log
    k.rmmod("fprobe_example")
