"""A port of the kernel's samples/ftrace/ftrace-ops.c to the simulated kernel: a
benchmark (and self-test) of custom ``ftrace_ops``.

``nr_ops_relevant`` ops trace the relevant tracee, ``nr_ops_irrelevant`` the irrelevant
one; init calls the relevant tracee ``nr_function_calls`` times and reports the time
per call.  With ``check_count`` each ops counts its calls and init checks the counts
(``Counter called N times (expected M)`` when one is wrong).  Unless ``persist``, the ops
go again and init fails with -EINVAL on purpose, as the C sample does, so nothing is
left to unload; with ``persist=1`` they stay (see ``enabled_functions``) until rmmod.
``save_regs``, ``assist_recursion``, ``assist_rcu`` add FTRACE_OPS_FL_SAVE_REGS,
FTRACE_OPS_FL_RECURSION, FTRACE_OPS_FL_RCU.

The C sample's tracees are two noinline functions of its own module; functions of a
Python module have no ftrace records in the simulation, so the port traces two kernel
functions that are as empty and that the simulated machine never calls by itself:
``do_nothing`` (relevant) and ``noop_ret`` (irrelevant).  The time per call is the
simulated kernel's ktime_get() (virtual, hence 0, in a seeded mount).

    tracefs-sim insmod /tmp/t examples/ftrace_ops.py nr_function_calls=1000 check_count=1
    tracefs-sim dmesg /tmp/t        # insmod reports "Invalid parameters": by design
"""

from __future__ import annotations

from typing import Any

from tracefs_sim.kernel.ftrace import (
    FTRACE_OPS_FL_RCU,
    FTRACE_OPS_FL_RECURSION,
    FTRACE_OPS_FL_SAVE_REGS,
    FtraceOps,
    OpsFunc,
)
from tracefs_sim.kernel.mm import Regs
from tracefs_sim.kernel.module import module_param

MODNAME = "ftrace_ops"          # KBUILD_MODNAME of ftrace-ops.c
EINVAL = 22
TRACEE_RELEVANT = "do_nothing"
TRACEE_IRRELEVANT = "noop_ret"


class SampleOps:
    """``struct sample_ops``: the ops and its counter (container_of(op) is ``op.owner``)."""

    def __init__(self, func: OpsFunc, flags: int) -> None:
        self.ops = FtraceOps(func, flags, name=MODNAME)
        self.ops.owner = self
        self.count = 0


def ops_func_nop(ip: int, parent_ip: int, op: FtraceOps, fregs: Regs | None) -> None:
    """do nothing"""


def ops_func_count(ip: int, parent_ip: int, op: FtraceOps, fregs: Regs | None) -> None:
    op.owner.count += 1


class _State:
    kernel: Any = None
    relevant: list[SampleOps] = []
    irrelevant: list[SampleOps] = []
    check_count = False


state = _State()


def _pr(text: str) -> None:
    state.kernel.printk(f"{MODNAME}: {text}")


def _warn_on_once(cond: bool, what: str) -> None:
    if cond:
        _pr(f"WARNING: {what}")


def ops_alloc_init(tracee: str, func: OpsFunc, flags: int, nr: int) -> list[SampleOps]:
    ft = state.kernel.ftrace
    addr = state.kernel.kallsyms.addr_of(tracee) or 0
    ops = []
    for _ in range(nr):
        s = SampleOps(func, flags)
        _warn_on_once(bool(ft.ftrace_set_filter_ip(s.ops, addr, 0, 0)), "ftrace_set_filter_ip")
        _warn_on_once(bool(ft.register_ftrace_function(s.ops)), "register_ftrace_function")
        ops.append(s)
    return ops


def ops_destroy(ops: list[SampleOps]) -> None:
    ft = state.kernel.ftrace
    for s in ops:
        _warn_on_once(bool(ft.unregister_ftrace_function(s.ops)), "unregister_ftrace_function")
        ft.ftrace_free_filter(s.ops)
    ops.clear()


def ops_check(ops: list[SampleOps], expected_count: int) -> None:
    if not ops or not state.check_count:
        return
    for s in ops:
        if s.count == expected_count:
            continue
        _pr(f"Counter called {s.count} times (expected {expected_count})")


def _ps(func_or_name: OpsFunc | str) -> str:
    """``%ps``: a kernel function by name, or a function of this module."""
    k = state.kernel
    if isinstance(func_or_name, str):
        return func_or_name
    return k.trace.output.sym(k.modules.addr_of(func_or_name), 0)


def init_module(kernel: Any, nr_function_calls: Any = 100000, nr_ops_relevant: Any = 1,
                nr_ops_irrelevant: Any = 0, save_regs: Any = False, assist_recursion: Any = False,
                assist_rcu: Any = False, check_count: Any = False, persist: Any = False) -> int:
    """ftrace_ops_sample_init()."""
    state.kernel = kernel
    params = {}
    for name, value, kind in (("nr_function_calls", nr_function_calls, int),
                              ("nr_ops_relevant", nr_ops_relevant, int),
                              ("nr_ops_irrelevant", nr_ops_irrelevant, int),
                              ("save_regs", save_regs, bool),
                              ("assist_recursion", assist_recursion, bool),
                              ("assist_rcu", assist_rcu, bool),
                              ("check_count", check_count, bool), ("persist", persist, bool)):
        err, params[name] = module_param(kernel, MODNAME, name, value, kind)
        if err:
            return err
    flags = 0
    if params["save_regs"]:         # x86-64 has DYNAMIC_FTRACE_WITH_REGS
        flags |= FTRACE_OPS_FL_SAVE_REGS
    if params["assist_recursion"]:
        flags |= FTRACE_OPS_FL_RECURSION
    if params["assist_rcu"]:
        flags |= FTRACE_OPS_FL_RCU
    state.check_count = bool(params["check_count"])
    tracer: OpsFunc = ops_func_count if state.check_count else ops_func_nop
    yes = {True: "YES", False: "NO"}
    for line in ("registering:",
                 f"  relevant ops: {params['nr_ops_relevant']}",
                 f"    tracee: {_ps(TRACEE_RELEVANT)}",
                 f"    tracer: {_ps(tracer)}",
                 f"  irrelevant ops: {params['nr_ops_irrelevant']}",
                 f"    tracee: {_ps(TRACEE_IRRELEVANT)}",
                 f"    tracer: {_ps(tracer)}",
                 f"  saving registers: {yes[bool(params['save_regs'])]}",
                 f"  assist recursion: {yes[bool(params['assist_recursion'])]}",
                 f"  assist RCU: {yes[bool(params['assist_rcu'])]}"):
        _pr(line)
    state.relevant = ops_alloc_init(TRACEE_RELEVANT, tracer, flags, params["nr_ops_relevant"])
    state.irrelevant = ops_alloc_init(TRACEE_IRRELEVANT, tracer, flags, params["nr_ops_irrelevant"])
    n = params["nr_function_calls"]
    start = kernel.boot_clock.ns()
    for _ in range(n):
        kernel.modules.call(init_module, TRACEE_RELEVANT)    # tracee_relevant()
    end = kernel.boot_clock.ns()
    ops_check(state.relevant, n)
    ops_check(state.irrelevant, 0)
    period = end - start
    _pr(f"Attempted {n} calls to {_ps(TRACEE_RELEVANT)} in {period}ns "
        f"({period // n if n else 0}ns / call)")
    if params["persist"]:
        return 0
    ops_destroy(state.relevant)
    ops_destroy(state.irrelevant)
    # The benchmark completed successfully, but there's no reason to keep the module
    # around. Return an error so the user doesn't have to manually unload the module.
    return -EINVAL


def cleanup_module(kernel: Any) -> None:
    """ftrace_ops_sample_exit()."""
    ops_destroy(state.relevant)
    ops_destroy(state.irrelevant)
