"""The Python ports of the kernel's samples (samples/kprobes, samples/ftrace,
samples/livepatch), loaded as modules into a simulated kernel."""

from __future__ import annotations

import errno
import re
from pathlib import Path

import pytest

from tracefs_sim.kernel import Kernel
from tracefs_sim.tracefs import build_tree
from tracefs_sim.tracefs.files import read_file, write_file

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture
def k() -> Kernel:
    k = Kernel(nr_cpus=2, seed=3)
    k.workload.enabled = False      # only the requests below run
    return k


def read(k: Kernel, n: int = 1, count: int = 100) -> None:
    """``cat`` (pid 321) reads through vfs_read ``n`` times."""
    for _ in range(n):
        k.syscall_enter(321, "cat", 0, op="read", name="README", count=count)
        k.syscall_exit(count)


def log(k: Kernel) -> str:
    return "\n".join(k.log)


def test_kprobe_example(k: Kernel) -> None:
    """samples/kprobes/kprobe_example.c: pre and post handler lines per hit, with the
    probe address hashed (%p) and regs->ip = address + 1 in the pre-handler."""
    mod = k.insmod(str(EXAMPLES / "kprobe_example.py"), symbol="vfs_read")
    addr = mod.kp.addr
    assert addr == k.ftrace.ips[k.kallsyms.index_of("vfs_read")]
    assert re.search(r"kprobe_init: Planted kprobe at [0-9a-f]{16}$", log(k), re.M)
    read(k, 2)
    pre = re.findall(r"handler_pre: <vfs_read> p->addr = 0x[0-9a-f]{16}, ip = ([0-9a-f]+), "
                     r"flags = 0x246$", log(k), re.M)
    assert pre == [f"{addr + 1:x}"] * 2
    assert len(re.findall(r"handler_post: <vfs_read> p->addr = 0x[0-9a-f]{16}, flags = 0x246$",
                          log(k), re.M)) == 2
    k.rmmod("kprobe_example")
    assert re.search(r"kprobe_exit: kprobe at [0-9a-f]{16} unregistered$", log(k), re.M)
    read(k)
    assert len(re.findall("handler_pre", log(k))) == 2


def test_kprobe_example_on_a_missing_symbol_fails_the_load(k: Kernel) -> None:
    with pytest.raises(OSError) as e:
        k.insmod(str(EXAMPLES / "kprobe_example.py"), symbol="no_such_symbol")
    assert e.value.errno == errno.ENOENT
    assert "kprobe_init: register_kprobe failed, returned -2" in log(k)
    assert "kprobe_example" not in k.modules


def test_kretprobe_example(k: Kernel) -> None:
    """samples/kprobes/kretprobe_example.c: the return value and the duration of each
    call of a user task; kernel threads skipped by the entry handler."""
    k.insmod(str(EXAMPLES / "kretprobe_example.py"), func="vfs_read")
    assert re.search(r"Planted return probe at vfs_read: [0-9a-f]{16}$", log(k), re.M)
    read(k, 3, count=77)
    k.workload.sites.call("vfs_read")          # the idle task (a kernel thread): skipped
    lines = re.findall(r"vfs_read returned (\d+) and took (\d+) ns to execute$", log(k), re.M)
    assert [r for r, _ in lines] == ["77"] * 3
    k.rmmod("kretprobe_example")
    assert "Missed probing 0 instances of vfs_read" in log(k)


def test_ftrace_ops_self_test_counts_and_fails_on_purpose(k: Kernel) -> None:
    """samples/ftrace/ftrace-ops.c: with check_count every ops counts exactly the calls
    of its tracee; without persist the load fails with -EINVAL by design and no ops
    stays registered."""
    root = build_tree(k)
    with pytest.raises(OSError) as e:
        k.insmod(str(EXAMPLES / "ftrace_ops.py"), nr_function_calls="500", nr_ops_relevant="3",
                 nr_ops_irrelevant="2", check_count="1", assist_recursion="y", save_regs="1")
    assert e.value.errno == errno.EINVAL
    text = log(k)
    for line in ("ftrace_ops: registering:", "ftrace_ops:   relevant ops: 3",
                 "ftrace_ops:     tracee: do_nothing",
                 "ftrace_ops:     tracer: ops_func_count [ftrace_ops]",
                 "ftrace_ops:   irrelevant ops: 2", "ftrace_ops:     tracee: noop_ret",
                 "ftrace_ops:   saving registers: YES", "ftrace_ops:   assist recursion: YES",
                 "ftrace_ops:   assist RCU: NO"):
        assert line in text, line
    assert re.search(r"ftrace_ops: Attempted 500 calls to do_nothing in \d+ns \(\d+ns / call\)", text)
    assert "Counter called" not in text and "WARNING" not in text
    assert read_file(root, "enabled_functions") == b""
    assert "ftrace_ops" not in k.modules


def test_ftrace_ops_persist_keeps_the_ops(k: Kernel) -> None:
    root = build_tree(k)
    mod = k.insmod(str(EXAMPLES / "ftrace_ops.py"), nr_function_calls="100", nr_ops_relevant="2",
                   nr_ops_irrelevant="1", check_count="1", persist="1")
    assert [s.count for s in mod.state.relevant] == [100, 100]
    assert [s.count for s in mod.state.irrelevant] == [0]
    text = read_file(root, "enabled_functions").decode()
    assert "\ndo_nothing (2)            ->arch_ftrace_ops_list_func+0x0/0x1d0\n" in text
    assert re.search(r"^noop_ret \(1\) +\ttramp: 0x[0-9a-f]+ \(ops_func_count\+0x0/0x100 "
                     r"\[ftrace_ops\]\) ->ops_func_count\+0x0/0x100 \[ftrace_ops\]$", text, re.M)
    k.rmmod("ftrace_ops")
    assert read_file(root, "enabled_functions") == b""


def test_ftrace_ops_bad_parameter(k: Kernel) -> None:
    with pytest.raises(OSError) as e:
        k.insmod(str(EXAMPLES / "ftrace_ops.py"), save_regs="maybe")
    assert e.value.errno == errno.EINVAL
    assert "ftrace_ops: `maybe' invalid for parameter `save_regs'" in log(k)


def test_livepatch_sample_replacement_runs_and_shows(k: Kernel) -> None:
    """A livepatch-style IPMODIFY patch: the simulated kernel runs the replacement
    instead of rw_verify_area(), and the tracers show its call tree."""
    root = build_tree(k)
    k.insmod(str(EXAMPLES / "livepatch_sample.py"))
    assert "livepatch: 'livepatch_sample': patching complete" in log(k)
    assert re.match(r"rw_verify_area \(1\)   I     M \ttramp: 0x[0-9a-f]+ "
                    r"\(klp_ftrace_handler\+0x0/0x100 \[livepatch_sample\]\)",
                    read_file(root, "enabled_functions").decode())
    write_file(root, "set_graph_function", b"vfs_read")
    write_file(root, "current_tracer", b"function_graph")
    read(k)
    graph = read_file(root, "trace").decode()
    assert re.search(r"\|    rw_verify_area\(\) \{\n.*\|      security_file_permission\(\);\n"
                     r".*\|    \}\n", graph)
    write_file(root, "current_tracer", b"function")
    read(k)
    assert "security_file_permission <-livepatch_rw_verify_area [livepatch_sample]" in \
        read_file(root, "trace").decode()
    k.rmmod("livepatch_sample")
    assert "livepatch: 'livepatch_sample': unpatching complete" in log(k)
    write_file(root, "current_tracer", b"nop")
    write_file(root, "current_tracer", b"function_graph")
    read(k)
    graph = read_file(root, "trace").decode()
    assert "rw_verify_area();" in graph and "rw_verify_area() {" not in graph
