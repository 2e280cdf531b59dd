"""A livepatch in the style of the kernel's samples/livepatch/livepatch-sample.c, on the
simulated kernel: a function of the running kernel is replaced by one of this module.

The C sample replaces cmdline_proc_show() (``cat /proc/cmdline``), which the simulated
machine never runs; this port replaces ``rw_verify_area()``, which every read and write
through the mount runs.  The replacement does what 6.12's rw_verify_area() does and the
simulated original leaves out: it asks ``security_file_permission()`` (which runs the
LSM hooks), so the tracers show the replacement's call tree under the patched
function, its callees with ``livepatch_rw_verify_area [livepatch_sample]`` as parent:

    tracefs-sim insmod /tmp/t examples/livepatch_sample.py
    echo function_graph > /tmp/t/current_tracer; cat /tmp/t/README > /dev/null
    grep -A3 'rw_verify_area() {' /tmp/t/trace

The simulated kernel has no livepatch core (kernel/livepatch/), so the module does what
klp_enable_patch() does for one function of vmlinux, the way kernel/livepatch/patch.c
does it: an ftrace_ops (FTRACE_OPS_FL_DYNAMIC | FTRACE_OPS_FL_IPMODIFY |
FTRACE_OPS_FL_PERMANENT, no SAVE_REGS: x86-64 has DYNAMIC_FTRACE_WITH_ARGS) filtered
on the function's ftrace location, whose callback ``klp_ftrace_handler`` moves the
instruction pointer to the new function; the per-task transition is immediate.  There is
no /sys/kernel/livepatch: unloading the module disables the patch first.
"""

from __future__ import annotations

from typing import Any

from tracefs_sim.kernel.ftrace import (
    FTRACE_OPS_FL_DYNAMIC,
    FTRACE_OPS_FL_IPMODIFY,
    FTRACE_OPS_FL_PERMANENT,
    FtraceOps,
    ftrace_regs_set_instruction_pointer,
)
from tracefs_sim.kernel.mm import Regs

MODNAME = "livepatch_sample"


def livepatch_rw_verify_area(read_write: int, file: int, ppos: int, count: int) -> int:
    """The new rw_verify_area(): the file's LSM permission check, then 0 (allowed)."""
    state.kernel.modules.call(livepatch_rw_verify_area, "security_file_permission")
    return 0


class KlpFunc:
    """``struct klp_func`` with the ``struct klp_ops`` of its function."""

    def __init__(self, old_name: str, new_func: Any) -> None:
        self.old_name = old_name
        self.new_func = new_func
        self.new_addr = 0
        self.fops = FtraceOps(klp_ftrace_handler,
                              FTRACE_OPS_FL_DYNAMIC | FTRACE_OPS_FL_IPMODIFY | FTRACE_OPS_FL_PERMANENT,
                              name="klp_ops")
        self.fops.owner = self        # container_of(fops, struct klp_ops, fops)
        self.patched = False


def klp_ftrace_handler(ip: int, parent_ip: int, fops: FtraceOps, fregs: Regs | None) -> None:
    """kernel/livepatch/patch.c: send the call to the newest function of the stack."""
    ft = state.kernel.ftrace
    bit = ft.ftrace_test_recursion_trylock(ip, parent_ip)
    if bit < 0:
        return
    try:
        func: KlpFunc = fops.owner
        if fregs is not None:
            ftrace_regs_set_instruction_pointer(fregs, func.new_addr)
    finally:
        ft.ftrace_test_recursion_unlock(bit)


class _State:
    kernel: Any = None
    funcs: list[KlpFunc] = []


state = _State()


def _pr(text: str) -> None:
    state.kernel.printk(f"livepatch: {text}")


def klp_patch_func(func: KlpFunc) -> int:
    k = state.kernel
    old_addr = k.kallsyms.addr_of(func.old_name)
    if not old_addr:
        _pr(f"symbol '{func.old_name}' not found in symbol table")
        return -22
    ftrace_loc = k.ftrace.ftrace_location(old_addr)
    if ftrace_loc is None:
        _pr(f"failed to find location for function '{func.old_name}'")
        return -22
    func.new_addr = k.modules.addr_of(func.new_func)
    ft = k.ftrace
    ret = ft.ftrace_set_filter_ip(func.fops, ft.ips[ftrace_loc], 0, 0)
    if ret:
        _pr(f"failed to set ftrace filter for function '{func.old_name}' ({ret})")
        return ret
    ret = ft.register_ftrace_function(func.fops)
    if ret:
        _pr(f"failed to register ftrace handler for function '{func.old_name}' ({ret})")
        ft.ftrace_set_filter_ip(func.fops, ft.ips[ftrace_loc], 1, 0)
        return ret
    func.patched = True
    return 0


def klp_unpatch_func(func: KlpFunc) -> None:
    ft = state.kernel.ftrace
    if func.patched:
        ft.unregister_ftrace_function(func.fops)
        ft.ftrace_free_filter(func.fops)
        func.patched = False


def klp_enable_patch(funcs: list[KlpFunc]) -> int:
    _pr(f"enabling patch '{MODNAME}'")
    _pr(f"'{MODNAME}': starting patching transition")
    for func in funcs:
        ret = klp_patch_func(func)
        if ret:
            _pr("failed to patch object 'vmlinux'")
            for f in funcs:
                klp_unpatch_func(f)
            _pr(f"failed to enable patch '{MODNAME}'")
            return ret
    _pr(f"'{MODNAME}': patching complete")
    return 0


def init_module(kernel: Any) -> int:
    """livepatch_init(): klp_enable_patch(&patch)."""
    state.kernel = kernel
    state.funcs = [KlpFunc("rw_verify_area", livepatch_rw_verify_area)]
    return klp_enable_patch(state.funcs)


def cleanup_module(kernel: Any) -> None:
    """``echo 0 > /sys/kernel/livepatch/livepatch_sample/enabled``, then livepatch_exit()."""
    _pr(f"'{MODNAME}': starting unpatching transition")
    for func in state.funcs:
        klp_unpatch_func(func)
    _pr(f"'{MODNAME}': unpatching complete")
