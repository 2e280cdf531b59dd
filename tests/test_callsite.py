"""Return addresses of the simulated code: inside their caller, tail calls as 6.12 compiles
them (kernel/workload/callsite.py)."""

from __future__ import annotations

import pytest

from tracefs_sim.kernel import Kernel
from tracefs_sim.kernel.workload.callsite import TAIL_CALLS, CallSites
from tracefs_sim.kernel.workload.defs import FORK, SCHEDULE, SOFTIRQ, TIMER_IRQ, WAKEUP, WORK
from tracefs_sim.kernel.workload.syscalls import SYSCALL_ENTRY, SYSCALL_LEAVES
from tracefs_sim.tracefs import build_tree
from tracefs_sim.tracefs.files import read_file, write_file
from tracefs_sim.tracefs.node import Dir


@pytest.fixture
def kt() -> tuple[Kernel, Dir]:
    k = Kernel(nr_cpus=2, seed=1)
    return k, build_tree(k)


def _records(root: Dir) -> list[str]:
    return [ln for ln in read_file(root, "trace").decode().splitlines() if not ln.startswith("#")]


def _edges(tree: object, parent: str | None, out: set[tuple[str, str]]) -> None:
    if isinstance(tree, str):
        name, kids = tree, ()
    else:
        assert isinstance(tree, tuple)
        name, kids = tree[0], tree[1:]
    if parent is not None:
        out.add((parent, name))
    for kid in kids:
        _edges(kid, name, out)


def test_issue_filter_prints_the_callers_of_6_12(kt) -> None:
    """The functions of issue 18 item 5 with a syscall read and a timer tick."""
    k, root = kt
    write_file(root, "set_ftrace_filter", "__x64_sys_read ksys_read x64_sys_call "
               "__sysvec_apic_timer_interrupt hrtimer_interrupt")
    write_file(root, "current_tracer", "function")
    k.workload.syscalls.syscall("read", name="hostname", count=16)
    # a seeded kernel lets a jiffy pass every fourth call; its idle CPUs take a timer
    # interrupt only for their next timer (NO_HZ idle): within a second
    for _ in range(4 * 250):
        k.workload.catch_up()
        if any("hrtimer_interrupt" in ln for ln in _records(root)):
            break
    lines = {ln.split(": ", 1)[1] for ln in _records(root)}
    assert {"x64_sys_call <-do_syscall_64", "__x64_sys_read <-do_syscall_64",
            "ksys_read <-do_syscall_64",
            "__sysvec_apic_timer_interrupt <-sysvec_apic_timer_interrupt",
            "hrtimer_interrupt <-__sysvec_apic_timer_interrupt"} <= lines


def test_every_call_site_is_inside_its_caller(kt) -> None:
    """Each caller -> callee edge the simulated code runs returns into the caller, past
    its __fentry__ call; a tail call's callee returns where its tail-caller would."""
    k, _root = kt
    sites = CallSites(k)
    edges: set[tuple[str, str]] = set()
    for chain in SYSCALL_ENTRY.values():
        for a, b in zip(chain, chain[1:], strict=False):
            edges.add((a, b))
    for op, leaves in SYSCALL_LEAVES.items():
        for leaf in leaves:
            _edges(leaf, SYSCALL_ENTRY.get(op, ("x64_sys_call",))[-1], edges)
    for tree in (TIMER_IRQ, SOFTIRQ, WORK, FORK, SCHEDULE, WAKEUP):
        _edges(tree, None, edges)
    ks = k.kallsyms
    checked = 0
    for caller, callee in sorted(edges):
        if not ks.addr_of(caller):
            continue
        ret = sites.call_ret(caller, callee)
        name, off, size, _mod = ks.lookup_addr(ret)
        assert name == caller, (caller, callee, name)
        idx = k.kallsyms.index_of(caller)
        if idx is not None:
            assert off >= k.kallsyms.addrs[idx] + 5 - ks.addr_of(caller), (caller, callee, off)
        assert off < size
        checked += 1
    assert checked > 40
    for caller in TAIL_CALLS:
        assert ks.addr_of(caller), caller


def test_func_stack_trace_skips_the_tail_callers(kt) -> None:
    """As the reference kernel's func_stack_trace on vfs_read (golden topic 07)."""
    k, root = kt
    write_file(root, "set_ftrace_filter", "vfs_read")
    write_file(root, "current_tracer", "function")
    write_file(root, "options/func_stack_trace", "1")
    write_file(root, "options/sym-offset", "1")
    k.workload.syscalls.syscall("read", name="hostname", count=16)
    text = "\n".join(_records(root))
    assert "vfs_read+0x4/0x370 <-ksys_read+0x6f/0xf0" in text
    stack = text.split("<stack trace>\n", 1)[1].splitlines()[:5]
    assert [ln.split("+")[0] for ln in stack] == [
        " => [FTRACE TRAMPOLINE]", " => vfs_read", " => ksys_read", " => do_syscall_64",
        " => entry_SYSCALL_64_after_hwframe"]


def test_return_probe_and_stack_fetch_see_the_return_address(kt) -> None:
    """A kretprobe's ``(ksys_read+0x6f/0xf0 <- vfs_read)`` (golden topic 12) and $stack0
    at the entry: the same return address."""
    k, root = kt
    write_file(root, "kprobe_events", "r:myret vfs_read\np:myent vfs_read ra=$stack0:x64\n")
    write_file(root, "events/kprobes/enable", "1")
    k.workload.syscalls.syscall("read", name="hostname", count=16)
    text = "\n".join(_records(root))
    assert "myret: (ksys_read+0x6f/0xf0 <- vfs_read)" in text
    ret = k.kallsyms.addr_of("ksys_read") + 0x6F
    assert f"ra=0x{ret:016x}" in text
