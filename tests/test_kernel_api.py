"""The kernel API a module author writes against, checked against the promises of
Documentation/trace/fprobe.rst, Documentation/trace/ftrace-uses.rst and the 6.12 code
(kernel/trace/fprobe.c, include/linux/ftrace.h, arch/x86 ftrace, kernel/kprobes.c)."""

from __future__ import annotations

import errno
import re

import pytest

from tracefs_sim.kernel import Kernel
from tracefs_sim.kernel import ftrace as F
from tracefs_sim.kernel.fprobe import (
    FPROBE_FL_KPROBE_SHARED,
    Fprobe,
    disable_fprobe,
    fprobe_disabled,
    fprobe_is_registered,
    fprobe_shared_with_kprobes,
)
from tracefs_sim.kernel.ftrace import (
    FTRACE_OPS_FL_IPMODIFY,
    FTRACE_OPS_FL_RCU,
    FTRACE_OPS_FL_RECURSION,
    FTRACE_OPS_FL_SAVE_REGS,
    MCOUNT_INSN_SIZE,
    FtraceOps,
    ftrace_get_regs,
    ftrace_regs_get_argument,
    ftrace_regs_set_instruction_pointer,
)
from tracefs_sim.kernel.ftrace_iter import enabled_functions_text
from tracefs_sim.kernel.kprobes import Kprobe
from tracefs_sim.kernel.sched import TRACE_FLAG_HARDIRQ
from tracefs_sim.kernel.workload.defs import FORK


@pytest.fixture
def k() -> Kernel:
    return Kernel(nr_cpus=2, seed=1)


def call(k: Kernel, tree, parent: str = "ksys_read") -> None:
    """The simulated kernel calls ``tree`` through its ftrace call sites."""
    k.workload.sites.call(tree, parent)


def ip_of(k: Kernel, name: str) -> int:
    return k.ftrace.ips[k.kallsyms.index_of(name)]


# ------------------------------------------------------------------ recursion
def test_a_handler_calling_its_probed_function_runs_twice_then_misses(k: Kernel) -> None:
    """fprobe.rst "The missed counter": fprobe_handler takes
    ftrace_test_recursion_trylock(); a handler that calls a probed function nests once
    (the transition bit), the next level is a miss counted in nmissed."""
    runs = []

    def entry(fp, ip, ret_ip, regs, data):
        runs.append(ip)
        call(k, "vfs_read")          # the handler calls a function it probes
        return 0

    fp = Fprobe(entry)
    assert k.fprobe.register_fprobe(fp, "vfs_read", None) == 0
    call(k, "vfs_read")
    assert len(runs) == 2 and fp.nmissed == 1
    assert k.sched.current.trace_recursion == 0
    call(k, "vfs_read")
    assert len(runs) == 4 and fp.nmissed == 2
    assert k.fprobe.unregister_fprobe(fp) == 0


def test_the_exit_handler_takes_the_recursion_lock_too(k: Kernel) -> None:
    exits = []

    def exit_(fp, ip, ret_ip, regs, data):
        exits.append(regs.return_value())
        call(k, "vfs_read")          # its entry (nested) hooks a return of its own

    fp = Fprobe(exit_handler=exit_)
    assert k.fprobe.register_fprobe(fp, "vfs_read", None) == 0
    call(k, "vfs_read")
    # outer exit → nested call's exit (transition bit) → its nested call: exit missed
    assert len(exits) == 2 and fp.nmissed == 1
    assert k.fprobe.unregister_fprobe(fp) == 0


def test_ftrace_ops_flags_set_before_registering_are_kept(k: Kernel) -> None:
    """fp.ops is embedded: FTRACE_OPS_FL_RECURSION set by the module stays, ftrace calls
    the assist function, and (fprobe.rst) nmissed no longer sees the recursion."""
    runs = []

    def entry(fp, ip, ret_ip, regs, data):
        runs.append(ip)
        call(k, "vfs_read")
        return 0

    fp = Fprobe(entry)
    ops = fp.ops
    ops.flags |= FTRACE_OPS_FL_RECURSION
    assert k.fprobe.register_fprobe(fp, "vfs_read", None) == 0
    assert fp.ops is ops and ops.flags & FTRACE_OPS_FL_RECURSION and ops.flags & FTRACE_OPS_FL_SAVE_REGS
    assert ops.tramp_func == k.ftrace.dispatch.ftrace_ops_assist_func
    call(k, "vfs_read")
    assert len(runs) == 2 and fp.nmissed == 0     # ftrace's assist dropped the third
    assert k.fprobe.unregister_fprobe(fp) == 0


def test_ftrace_test_recursion_trylock_by_context(k: Kernel) -> None:
    """trace_recursion.h: the context bit, then the transition bit, then -1; an
    interrupt has its own context bit."""
    ft = k.ftrace
    b1 = ft.ftrace_test_recursion_trylock(1, 2)
    b2 = ft.ftrace_test_recursion_trylock(1, 2)
    assert (b1, b2, ft.ftrace_test_recursion_trylock(1, 2)) == (3, 4, -1)
    k.sched.irq_flags = TRACE_FLAG_HARDIRQ
    b3 = ft.ftrace_test_recursion_trylock(1, 2)
    assert b3 == 1
    ft.ftrace_test_recursion_unlock(b3)
    k.sched.irq_flags = 0
    ft.ftrace_test_recursion_unlock(b2)
    ft.ftrace_test_recursion_unlock(b1)
    assert k.sched.current.trace_recursion == 0


# ------------------------------------------------------------------ RCU
def test_rcu_flagged_ops_is_skipped_where_rcu_is_not_watching(k: Kernel) -> None:
    """ftrace-uses.rst FTRACE_OPS_FL_RCU: called only where RCU is watching; an
    interrupt taken in the idle window is watched again (ct_irq_enter)."""
    hits: list[str] = []
    rcu_ops = FtraceOps(lambda ip, pip, op, fregs: hits.append("rcu"), FTRACE_OPS_FL_RCU)
    plain = FtraceOps(lambda ip, pip, op, fregs: hits.append("plain"))
    ft = k.ftrace
    for ops in (rcu_ops, plain):
        assert ft.ftrace_set_filter(ops, "vfs_read", 8, 1) == 0
    assert ft.register_ftrace_function(rcu_ops) == 0       # alone: the assist function
    with k.rcu.idle():
        assert not k.rcu.rcu_is_watching()
        call(k, "vfs_read")
    assert hits == []
    call(k, "vfs_read")
    assert hits == ["rcu"]
    assert ft.register_ftrace_function(plain) == 0         # now the list function
    hits.clear()
    with k.rcu.idle():
        call(k, "vfs_read")
        k.sched.irq_flags = TRACE_FLAG_HARDIRQ
        assert k.rcu.rcu_is_watching()
        call(k, "vfs_read")
        k.sched.irq_flags = 0
    assert hits == ["plain", "plain", "rcu"]     # newest ops first in the list function


# ------------------------------------------------------------------ kprobes sharing
def test_kprobe_shared_fprobe_misses_while_a_kprobe_runs(k: Kernel) -> None:
    """fprobe.rst "Share the callbacks with kprobes": with FPROBE_FL_KPROBE_SHARED the
    handler is not called while a kprobe runs (a miss), and a kprobe hit inside it is
    missed as a kprobe nested in a kprobe."""
    seen = []
    fp = Fprobe(lambda fp, ip, r, regs, d: seen.append("fprobe") or call(k, "vfs_write"))
    fp.flags = FPROBE_FL_KPROBE_SHARED
    assert fprobe_shared_with_kprobes(fp)
    assert k.fprobe.register_fprobe(fp, "vfs_read", None) == 0
    assert "fprobe_kprobe_handler+0x0/0x2b0" in enabled_functions_text(k.ftrace)
    kp = Kprobe(symbol_name="vfs_write", pre_handler=lambda p, regs: seen.append("kprobe") or 0)
    assert k.kprobes.register_kprobe(kp) == 0
    call(k, "vfs_read")                  # the fprobe handler hits the kprobe: missed
    assert seen == ["fprobe"] and kp.nmissed == 1 and k.kprobes.kprobe_running() is None
    kp2 = Kprobe(symbol_name="ksys_write", pre_handler=lambda p, regs: call(k, "vfs_read") or 0)
    assert k.kprobes.register_kprobe(kp2) == 0
    call(k, "ksys_write", "x64_sys_call")  # a kprobe runs, calls vfs_read: fprobe missed
    assert seen == ["fprobe"] and fp.nmissed == 1
    k.kprobes.unregister_kprobe(kp)
    k.kprobes.unregister_kprobe(kp2)
    assert k.fprobe.unregister_fprobe(fp) == 0


def test_unshared_fprobe_lets_a_kprobe_run_inside(k: Kernel) -> None:
    seen = []
    fp = Fprobe(lambda fp, ip, r, regs, d: seen.append("fprobe") or call(k, "vfs_write"))
    assert k.fprobe.register_fprobe(fp, "vfs_read", None) == 0
    kp = Kprobe(symbol_name="vfs_write", pre_handler=lambda p, regs: seen.append("kprobe") or 0)
    assert k.kprobes.register_kprobe(kp) == 0
    call(k, "vfs_read")
    assert seen == ["fprobe", "kprobe"] and kp.nmissed == 0
    k.kprobes.unregister_kprobe(kp)
    assert k.fprobe.unregister_fprobe(fp) == 0


def test_kprobe_busy_and_running(k: Kernel) -> None:
    kp = k.kprobes
    assert kp.kprobe_running() is None and not kp.running
    kp.kprobe_busy_begin()
    assert kp.kprobe_running() is kp.kprobe_busy and kp.running
    kp.kprobe_busy_end()
    assert kp.kprobe_running() is None


# ------------------------------------------------------------------ registration
def test_registering_a_live_fprobe_again_is_ebusy_and_changes_nothing(k: Kernel) -> None:
    hits = []
    fp = Fprobe(lambda fp, ip, r, regs, d: hits.append(ip) or 0, lambda *a: None)
    assert k.fprobe.register_fprobe(fp, "vfs_read", None) == 0
    rethook, ops_func = fp.rethook, fp.ops.func
    call(k, "vfs_read")
    before = enabled_functions_text(k.ftrace)
    assert k.fprobe.register_fprobe(fp, "vfs_write", None) == -errno.EBUSY
    assert k.fprobe.register_fprobe_syms(fp, ["vfs_read"], 1) == -errno.EBUSY
    assert k.fprobe.register_fprobe_ips(fp, [ip_of(k, "vfs_read")], 1) == -errno.EBUSY
    assert enabled_functions_text(k.ftrace) == before
    assert fp.rethook is rethook and fp.ops.func == ops_func
    call(k, "vfs_read")
    assert len(hits) == 2                          # once per hit
    assert k.fprobe.unregister_fprobe(fp) == 0
    assert enabled_functions_text(k.ftrace) == ""  # nothing left patched
    call(k, "vfs_read")
    assert len(hits) == 2


def test_register_fprobe_c_shapes(k: Kernel) -> None:
    """register_fprobe_ips(fp, addrs, num) and register_fprobe_syms(fp, syms, num):
    only the first ``num``; unknown symbols -ENOENT; num <= 0 -EINVAL."""
    fp = Fprobe(lambda *a: 0)
    addrs = [ip_of(k, "vfs_read"), ip_of(k, "vfs_write")]
    assert k.fprobe.register_fprobe_ips(fp, addrs, 0) == -errno.EINVAL
    assert k.fprobe.register_fprobe_ips(fp, addrs, 1) == 0
    assert enabled_functions_text(k.ftrace).startswith("vfs_read (1) R")
    assert "vfs_write" not in enabled_functions_text(k.ftrace)
    assert k.fprobe.unregister_fprobe(fp) == 0
    fp = Fprobe(lambda *a: 0)
    assert k.fprobe.register_fprobe_syms(fp, ["vfs_write", "no_such_fn"], 2) == -errno.ENOENT
    assert k.fprobe.register_fprobe_syms(fp, ["vfs_write", "no_such_fn"], 1) == 0
    assert fprobe_is_registered(fp)
    assert k.fprobe.unregister_fprobe(fp) == 0


def test_ftrace_set_filter_c_shape_and_errno(k: Kernel) -> None:
    """ftrace-uses.rst: ftrace_set_filter(ops, buf, len, reset) and
    ftrace_set_notrace(...) return 0 or -errno; NULL with reset traces everything."""
    ft = k.ftrace
    ops = FtraceOps(lambda *a: None)
    assert ft.ftrace_set_filter(ops, "vfs_readXXXX", 8, 0) == 0      # len bytes of buf
    assert [ft.names[i] for i in ops.filter_hash] == ["vfs_read"]
    assert ft.ftrace_set_filter(ops, "no_such_function", 16, 0) == -errno.EINVAL
    assert ft.ftrace_set_filter(ops, "vfs_w*", 6, 1) == 0            # reset: replaced
    assert "vfs_read" not in {ft.names[i] for i in ops.filter_hash}
    assert ft.ftrace_set_notrace(ops, "vfs_write", 9, 0) == 0
    assert ft.register_ftrace_function(ops) == 0
    assert ft.register_ftrace_function(ops) == -errno.EBUSY
    assert ft.ftrace_set_filter_ip(ops, 0x1234, 0, 0) == -errno.EINVAL
    assert ft.ftrace_set_filter_ips(ops, [ip_of(k, "schedule"), 0x1234], 1, 0, 1) == 0
    assert [ft.names[i] for i in ops.filter_hash] == ["schedule"]
    assert ft.unregister_ftrace_function(ops) == 0
    assert ft.unregister_ftrace_function(ops) == -errno.EBUSY
    assert ft.ftrace_set_filter(ops, None, 0, 1) == 0                # every function
    assert ops.filter_hash.empty()
    with pytest.raises(TypeError):                                    # the old (ops, buf, reset)
        ft.ftrace_set_filter(ops, "vfs_read", True, 0)


def test_c_names(k: Kernel) -> None:
    fp = Fprobe()
    assert not fprobe_disabled(fp) and not fprobe_disabled(None)
    disable_fprobe(fp)
    assert fprobe_disabled(fp)
    assert not fprobe_shared_with_kprobes(None)
    for name in ("kprobe_running", "kprobe_busy_begin", "kprobe_busy_end", "register_kprobe",
                 "unregister_kprobe", "register_kretprobe", "unregister_kretprobe"):
        assert callable(getattr(k.kprobes, name)), name
    assert F.FTRACE_OPS_FL_IPMODIFY == F.OPS_FL_IPMODIFY and F.FTRACE_OPS_FL_RCU == 1 << 14


# ------------------------------------------------------------------ registers
def test_fprobe_registers_entry_and_exit(k: Kernel) -> None:
    """fprobe.rst @regs: at the entry regs->ip differs from entry_ip (x86-64: the
    ftrace location + MCOUNT_INSN_SIZE); at the exit it is the return address."""
    seen = {}

    def entry(fp, ip, ret_ip, regs, data):
        seen["entry"] = (ip, ret_ip, regs.ip, regs.cs, regs.get_kernel_argument(2))
        return 0

    def exit_(fp, ip, ret_ip, regs, data):
        seen["exit"] = (ip, ret_ip, regs.ip, regs.return_value())

    fp = Fprobe(entry, exit_)
    assert k.fprobe.register_fprobe(fp, "vfs_read", None) == 0
    k.workload.syscalls.syscall("read", name="README", count=123)
    ip = ip_of(k, "vfs_read")
    e_ip, ret_ip, regs_ip, cs, count = seen["entry"]
    assert (e_ip, regs_ip, cs, count) == (ip, ip + MCOUNT_INSN_SIZE, F.KERNEL_CS, 123)
    assert k.kallsyms.format_ps(ret_ip) == "ksys_read"
    assert seen["exit"] == (ip, ret_ip, ret_ip, 123)
    assert k.fprobe.unregister_fprobe(fp) == 0


def test_ftrace_get_regs_only_with_save_regs(k: Kernel) -> None:
    """ftrace-uses.rst @regs: pt_regs only for FTRACE_OPS_FL_SAVE_REGS (ftrace_get_regs()
    is NULL otherwise); the arguments are there either way (WITH_ARGS); once a SAVE_REGS
    ops shares the site, every ops gets the full regs."""
    seen: dict[str, object] = {}

    def cb(name: str):
        def f(ip, pip, op, fregs):
            seen[name] = (ftrace_get_regs(fregs) is not None, ftrace_regs_get_argument(fregs, 2),
                          fregs.ip - ip)
        return f

    ft = k.ftrace
    plain = FtraceOps(cb("plain"))
    assert ft.ftrace_set_filter(plain, "vfs_read", 8, 0) == 0
    assert ft.register_ftrace_function(plain) == 0
    k.workload.syscalls.syscall("read", name="x", count=77)
    assert seen == {"plain": (False, 77, MCOUNT_INSN_SIZE)}
    regs_ops = FtraceOps(cb("regs"), FTRACE_OPS_FL_SAVE_REGS)
    assert ft.ftrace_set_filter(regs_ops, "vfs_read", 8, 0) == 0
    assert ft.register_ftrace_function(regs_ops) == 0
    k.workload.syscalls.syscall("read", name="x", count=78)
    assert seen == {"plain": (True, 78, MCOUNT_INSN_SIZE), "regs": (True, 78, MCOUNT_INSN_SIZE)}
    assert ft.unregister_ftrace_function(regs_ops) == 0
    assert ft.unregister_ftrace_function(plain) == 0


# ------------------------------------------------------------------ IPMODIFY
REPLACEMENT = '''
def kernel_clone_replacement(args):
    state["calls"] += 1
    kernel.modules.call(kernel_clone_replacement, "wake_up_new_task")
    return 4242


state = {"calls": 0}
kernel = None


def init_module(k):
    global kernel
    kernel = k
    return 0


def cleanup_module(k):
    pass
'''


def test_ipmodify_runs_the_replacement_instead_of_the_body(k: Kernel) -> None:
    """ftrace-uses.rst FTRACE_OPS_FL_IPMODIFY: a callback that moves regs->ip makes the
    traced function's caller run the replacement; the original body does not run, the
    replacement's callees do (with it as parent), its return value is the call's."""
    mod = k.modules.load("lp", REPLACEMENT, "lp.py", {})
    target = k.modules.addr_of(mod.py.kernel_clone_replacement)

    def klp_ftrace_handler(ip, pip, op, fregs):
        ftrace_regs_set_instruction_pointer(fregs, target)

    ft = k.ftrace
    ops = FtraceOps(klp_ftrace_handler, FTRACE_OPS_FL_SAVE_REGS | FTRACE_OPS_FL_IPMODIFY)
    assert ft.ftrace_set_filter_ip(ops, ip_of(k, "kernel_clone"), 0, 0) == 0
    assert ft.register_ftrace_function(ops) == 0
    seen = []
    spy = Fprobe(lambda fp, ip, ret_ip, regs, d: seen.append(
        (k.kallsyms.format_ps(ip), k.trace.output.sym(ret_ip, 0))) or 0,
        lambda fp, ip, ret_ip, regs, d: seen.append(("ret", regs.return_value())))
    assert k.fprobe.register_fprobe(spy, "kernel_clone", None) == 0
    spy2 = Fprobe(lambda fp, ip, ret_ip, regs, d: seen.append(
        (k.kallsyms.format_ps(ip), k.trace.output.sym(ret_ip, 0))) or 0)
    assert k.fprobe.register_fprobe(spy2, "copy_process", None) == 0
    assert k.fprobe.register_fprobe(Fprobe(spy2.entry_handler), "wake_up_new_task", None) == 0
    call(k, FORK, "__x64_sys_clone")
    assert mod.py.state["calls"] == 1
    assert seen[0][0] == "kernel_clone"
    assert ("wake_up_new_task", "kernel_clone_replacement [lp]") in seen
    assert not any(s[0] == "copy_process" for s in seen)      # the original body
    assert seen[-1] == ("ret", 4242)
    assert ft.unregister_ftrace_function(ops) == 0
    seen.clear()
    call(k, FORK, "__x64_sys_clone")
    assert any(s[0] == "copy_process" for s in seen)
    assert mod.py.state["calls"] == 1


# ------------------------------------------------------------------ handler errors
def test_a_handler_that_raises_is_logged_and_missed(k: Kernel) -> None:
    fp = Fprobe(lambda fp, ip, r, regs, d: 1 // 0, lambda *a: None)
    assert k.fprobe.register_fprobe(fp, "vfs_read", None) == 0
    call(k, "vfs_read")
    call(k, "vfs_read")
    assert fp.nmissed == 2
    log = "\n".join(k.log)
    assert re.search(r"WARNING: CPU: \d+ PID: \d+ at .*<lambda>: ZeroDivisionError", log)
    assert "Traceback (most recent call last):" in log
    assert fp.rethook is not None and fp.rethook.nr_made == 1   # the node came back
    assert k.fprobe.unregister_fprobe(fp) == 0


def test_kprobe_pre_and_post_handler_regs(k: Kernel) -> None:
    """samples/kprobes/kprobe_example.c: pre_handler sees regs->ip = addr + 1 (as after
    int3), post_handler after the (emulated 5-byte nop) instruction."""
    seen = []
    kp = Kprobe(symbol_name="vfs_read",
                pre_handler=lambda p, regs: seen.append(("pre", regs.ip - p.addr)) or 0,
                post_handler=lambda p, regs, flags: seen.append(("post", regs.ip - p.addr)))
    assert k.kprobes.register_kprobe(kp) == 0
    call(k, "vfs_read")
    assert seen == [("pre", 1), ("post", MCOUNT_INSN_SIZE)]
    k.kprobes.unregister_kprobe(kp)
