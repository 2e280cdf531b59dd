"""An ftrace_ops client as a kernel module: count the calls of the functions of a filter.

The smallest user of the ftrace core (kernel/ftrace.py), as a C module would write it
with ``register_ftrace_function()``: an ``ftrace_ops`` whose callback counts hits per
function, filtered with ``ftrace_set_filter()`` (the glob language of set_ftrace_filter).
While it is loaded its functions show in ``enabled_functions`` with the ops' trampoline
and the callback's name.  Load it into a running mount:

    scripts/mount /tmp/t --module examples/ftrace_ops_counter.py --module-arg filter='vfs_*'

then use the mount (``cat /tmp/t/trace``…); at unmount the counts go to the kernel log
(the mount's stderr), the busiest first.  Parameters: ``filter`` (default ``vfs_*``),
``notrace`` (functions to leave out), ``top`` (how many lines the summary prints).
"""

from __future__ import annotations

from typing import Any

from tracefs_sim.kernel.ftrace import FtraceOps

MODNAME = "ftrace_ops_counter"


class _State:
    kernel: Any = None
    ops: FtraceOps | None = None
    hits: dict[int, int] = {}   # record index -> calls
    filter = ""
    top = 10


state = _State()


def counter_func(ip: int, parent_ip: int, op: FtraceOps, fregs: Any) -> None:
    """The ftrace_ops callback: runs at the entry of every filtered function."""
    i = state.kernel.ftrace.ip_to_index(ip)
    if i is not None:
        state.hits[i] = state.hits.get(i, 0) + 1


def counts() -> dict[str, int]:
    """Calls so far per function name."""
    ft = state.kernel.ftrace
    return {ft.rec_name(i): n for i, n in state.hits.items()}


def init_module(kernel: Any, filter: str = "vfs_*", notrace: str = "", top: Any = 10) -> int:  # noqa: A002
    state.kernel = kernel
    state.hits = {}
    state.filter = filter
    state.top = int(top)
    ft = kernel.ftrace
    ops = FtraceOps(func=counter_func, name=MODNAME)
    ret = ft.ftrace_set_filter(ops, filter, len(filter), 1)
    if not ret and notrace:
        ret = ft.ftrace_set_notrace(ops, notrace, len(notrace), 1)
    if not ret:
        ret = ft.register_ftrace_function(ops)
    if ret:  # -EINVAL: the filter matched nothing
        kernel.printk(f"{MODNAME}: cannot trace {filter!r}: error {ret}")
        ft.ftrace_free_filter(ops)
        return ret
    state.ops = ops
    kernel.printk(f"{MODNAME}: counting calls of {filter}")
    return 0


def cleanup_module(kernel: Any) -> None:
    if state.ops is None:
        return
    kernel.ftrace.unregister_ftrace_function(state.ops)
    state.ops = None
    c = counts()
    kernel.printk(f"{MODNAME}: {sum(c.values())} calls of {len(c)} functions of {state.filter}")
    for name, n in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:state.top]:
        kernel.printk(f"{MODNAME}: {n:10d} {name}")
