"""Dynamic ftrace (kernel/trace/ftrace.c): the ftrace core of one kernel and its API.

``Ftrace`` holds what ftrace.c keeps in globals (the records, ``ftrace_ops_list``,
``global_ops``) and offers the kernel's API by its C names: register_ftrace_function,
ftrace_set_filter(_ip/_ips), ftrace_set_notrace, ftrace_free_filter, the subops
calls, register_ftrace_command, register_ftrace_function_probe…  The work is done by
one part per concern, each in its own module and reachable as an attribute:

==================  ==========================  ============================================
``ft.records``      ftrace_records.py           dyn_ftrace records, name/ip lookups, globs,
                                                ``:mod:`` and index matching
``ft.update``       ftrace_update.py            ops register/unregister, hash updates,
                                                record accounting, call-site patching
``ft.dispatch``     ftrace_dispatch.py          trampolines, ftrace_caller, list function
``ft.pid``          ftrace_pid.py               set_ftrace_pid/notrace_pid, function-fork
``ft.probes``       ftrace_probe.py             func:cmd commands, function probes
(functions)         ftrace_iter.py              filter files' iterator, enabled_functions
(types)             ftrace_ops.py               ftrace_ops, ftrace_hash, flags (ftrace.h)
==================  ==========================  ============================================

This module knows nothing of tracers or ring buffers: its clients are
``FtraceOps.func`` callbacks and the function commands (kernel/ftrace_cmds.py).

Call-site protocol (what the workload does for function ``i``)
--------------------------------------------------------------
``site_func[i]`` is what the patched ``call __fentry__`` at the start of function ``i``
reaches: ``None`` while the site is a NOP (one list lookup), else a callable
``f(i, parent_ip, fregs)`` — the ops' own trampoline when exactly one ops owns the
site, else ``ftrace_caller`` → ``ftrace_ops_list_func``::

    f = ftrace.site_func[i]
    if f is None:
        body()
    else:
        rs = sched.current.ret_stack          # the task's return-hook stack
        n = len(rs)
        f(i, parent_ip, fregs)                # entry callbacks (may push return hooks)
        body()
        if len(rs) != n:                      # someone hooked the return
            ftrace.func_return(rs, n, retval)

``fregs`` is the register set of the call (``mm.Regs``, or None; fprobe/kprobe events
read args from it).  Return hooks (fgraph's shadow stack, rethook) are frames pushed on
``task.ret_stack`` by entry callbacks with ``push_ret_hook``; ``func_return`` pops them
LIFO and calls ``frame[0](frame, retval)``.  ``func_entry``/``func_exit`` wrap the
protocol for callers that prefer a token.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import ftrace_ops
from .errors import KernelError
from .ftrace_dispatch import TRACE_LIST_START, FtraceDispatch
from .ftrace_iter import (
    FTRACE_BUFF_MAX,
    ITER_ADDRS,
    ITER_DO_PROBES,
    ITER_ENABLED,
    ITER_FILTER,
    ITER_MOD,
    ITER_NOTRACE,
    ITER_PRINTALL,
    ITER_PROBE,
    ITER_TOUCHED,
    RegexIter,
    ftrace_regex_open,
)
from .ftrace_ops import *  # noqa: F403 - re-exported: the names of include/linux/ftrace.h
from .ftrace_ops import (
    OPS_FL_DELETED,
    OPS_FL_ENABLED,
    OPS_FL_INITIALIZED,
    OPS_FL_PID,
    FtraceHash,
    FtraceOps,
    OpsFunc,
    ftrace_stub,
)
from .ftrace_pid import FtracePids
from .ftrace_probe import CommandFunc, FtraceProbes, FuncProbe, FuncProbeOps, ModLoad
from .ftrace_records import (
    ENTRY_SIZE,
    MATCH_END_ONLY,
    MATCH_FRONT_ONLY,
    MATCH_FULL,
    MATCH_GLOB,
    MATCH_INDEX,
    MATCH_MIDDLE_ONLY,
    FtraceRecords,
    Glob,
    filter_parse_regex,
)
from .ftrace_update import FtraceUpdate
from .sched import TRACE_FLAG_HARDIRQ, TRACE_FLAG_NMI, TRACE_FLAG_SOFTIRQ

if TYPE_CHECKING:
    from .core import Kernel
    from .mm import Regs
    from .sched import Task
    from .trace import TraceArray

# with the names of ftrace_ops.py (include/linux/ftrace.h), the public API of this module
__all__ = [
    "ENTRY_SIZE", "FTRACE_BUFF_MAX", "ITER_ADDRS", "ITER_DO_PROBES", "ITER_ENABLED", "ITER_FILTER",
    "ITER_MOD", "ITER_NOTRACE", "ITER_PRINTALL", "ITER_PROBE", "ITER_TOUCHED", "MATCH_END_ONLY",
    "MATCH_FRONT_ONLY", "MATCH_FULL", "MATCH_GLOB", "MATCH_INDEX", "MATCH_MIDDLE_ONLY",
    "TRACE_CTX_NORMAL", "TRACE_CTX_TRANSITION", "TRACE_FTRACE_START", "TRACE_LIST_START",
    "CommandFunc", "Ftrace", "FuncProbe", "FuncProbeOps", "Glob", "ModLoad", "RegexIter",
    "RetFrame", "RetToken", "TrFtraceState", "boot", "filter_parse_regex", "new_trace_ops",
    *ftrace_ops.__all__,
]

# trace_recursion.h: the context bits of trace_test_and_set_recursion()
TRACE_FTRACE_START = 0
TRACE_CTX_NORMAL = 3
TRACE_CTX_TRANSITION = 4
_IRQ_CTX_MASK = TRACE_FLAG_NMI | TRACE_FLAG_HARDIRQ | TRACE_FLAG_SOFTIRQ
# interrupt_context_level() of each combination of the context flags (NMI 3, hardirq 2,
# softirq 1, task 0): one index instead of three tests on the hot path
_CTX_LEVEL = [3 if f & TRACE_FLAG_NMI else 2 if f & TRACE_FLAG_HARDIRQ else
              1 if f & TRACE_FLAG_SOFTIRQ else 0 for f in range(_IRQ_CTX_MASK + 1)]

# A return hook on task.ret_stack: [handler, the hooker's data...]; handler(frame, retval)
RetFrame = list[Any]
RetToken = tuple[list[RetFrame], int]


@dataclass
class TrFtraceState:
    """The ftrace parts of ``struct trace_array``: func_probes, mod_trace, mod_notrace,
    the function pid lists and the function-fork option."""

    func_probes: list[FuncProbe] = field(default_factory=list)
    mod_trace: list[ModLoad] = field(default_factory=list)
    mod_notrace: list[ModLoad] = field(default_factory=list)
    function_pids: set[int] | None = None  # set_ftrace_pid
    function_no_pids: set[int] | None = None  # set_ftrace_notrace_pid
    follow_fork: bool = False  # the function-fork option


class Ftrace:
    """The dynamic ftrace core of one kernel (see the module docstring for its parts)."""

    def __init__(self, kernel: Kernel) -> None:
        self.k = kernel
        self._sched = kernel.sched
        records = self.records = FtraceRecords(kernel.kallsyms)
        # the record arrays, shared with the parts: the call sites read them directly
        self.names = records.names
        self.ips = records.ips
        self.mods = records.mods
        self.flags = records.flags
        self.site_func = records.site_func
        self.nr_records = records.nr_records
        self.nr_active = 0  # sites with something attached (Workload.quiet)
        self.site_gen = 0   # bumped when call sites are patched (CallSites.live)
        # ftrace_ops_list (newest first, like add_ftrace_ops())
        self.ops_list: list[FtraceOps] = []
        self.global_ops = FtraceOps(flags=OPS_FL_INITIALIZED | OPS_FL_PID, core_data=True,
                                    name="global_ops")
        self.recursion_misses = 0
        self.dispatch = FtraceDispatch(self)
        self.pid = FtracePids(self)
        self.update = FtraceUpdate(self)
        self.probes = FtraceProbes(self)

    # ------------------------------------------------------------------ records
    def rec_name(self, i: int) -> str:
        """print_rec()/%ps of a record: ``name`` or ``name [module]``."""
        return self.records.rec_name(i)

    def ip_to_index(self, ip: int) -> int | None:
        """The record whose rec->ip is exactly ``ip``."""
        return self.records.ip_to_index(ip)

    def ftrace_location(self, ip: int) -> int | None:
        """ftrace_location(): the record at ``ip`` or at the start of its function."""
        return self.records.ftrace_location(ip)

    # ------------------------------------------------------------------ recursion
    def recursion_trylock(self, ip: int, pip: int, start: int = TRACE_FTRACE_START) -> int:
        """trace_test_and_set_recursion(): the bit taken, or -1 (a miss, counted)."""
        sched = self._sched
        task = sched.current
        val = task.trace_recursion
        bit = TRACE_CTX_NORMAL - _CTX_LEVEL[sched.irq_flags & _IRQ_CTX_MASK] + start
        if val & (1 << bit):
            bit = TRACE_CTX_TRANSITION + start
            if val & (1 << bit):
                self.recursion_misses += 1
                return -1
        task.trace_recursion = val | (1 << bit)
        return bit

    def recursion_unlock(self, bit: int) -> None:
        """trace_clear_recursion()."""
        self._sched.current.trace_recursion &= ~(1 << bit)

    # ------------------------------------------------------------------ call sites
    @staticmethod
    def push_ret_hook(task: Task, frame: RetFrame) -> None:
        """Entry callbacks hook the return: ``frame[0](frame, retval)`` runs at return."""
        task.ret_stack.append(frame)

    @staticmethod
    def func_return(rs: list[RetFrame], n: int, retval: int = 0) -> None:
        """The function returns: run the return hooks pushed since depth ``n`` (LIFO)."""
        while len(rs) > n:
            frame = rs.pop()
            frame[0](frame, retval)

    def func_entry(self, i: int, parent_ip: int, fregs: Regs | None = None) -> RetToken | None:
        """Token form of the protocol: returns None or what ``func_exit`` needs."""
        f = self.site_func[i]
        if f is None:
            return None
        rs = self._sched.current.ret_stack
        n = len(rs)
        f(i, parent_ip, fregs)
        return (rs, n) if len(rs) != n else None

    def func_exit(self, i: int, token: RetToken | None, retval: int = 0) -> None:
        if token is not None:
            # func_return() inline: this runs at every hooked return
            rs, n = token
            while len(rs) > n:
                frame = rs.pop()
                frame[0](frame, retval)

    def ops_quiet(self) -> bool:
        """Every registered ops says its callback can leave no trace now."""
        return self.dispatch.ops_quiet()

    # ------------------------------------------------------------------ ftrace_ops API
    # The C functions of include/linux/ftrace.h, with their C shapes: 0 or -errno.
    def register_ftrace_function(self, ops: FtraceOps) -> int:
        """register_ftrace_function(): 0, -EBUSY (already registered), -EINVAL…"""
        return _errno(self.register_ops, ops)

    def unregister_ftrace_function(self, ops: FtraceOps) -> int:
        return _errno(self.unregister_ops, ops)

    def ftrace_set_filter(self, ops: FtraceOps, buf: str | None, len: int, reset: int) -> int:  # noqa: A002
        """ftrace_set_filter(ops, buf, len, reset): the glob ``buf[:len]`` (no commands,
        no ``:mod:``) added to the ops' filter (after emptying it when ``reset``);
        ``buf`` None with ``reset`` traces every function.  -EINVAL when it matches
        nothing."""
        return _errno(self.set_filter, ops, _cbuf(buf, len), bool(reset))

    def ftrace_set_notrace(self, ops: FtraceOps, buf: str | None, len: int, reset: int) -> int:  # noqa: A002
        """ftrace_set_notrace(ops, buf, len, reset): as ftrace_set_filter, for the
        ops' notrace list."""
        return _errno(self.set_notrace, ops, _cbuf(buf, len), bool(reset))

    def ftrace_set_filter_ip(self, ops: FtraceOps, ip: int, remove: int, reset: int) -> int:
        """ftrace_set_filter_ip(): ``ip`` must be an ftrace location (or the start of a
        function whose ftrace location follows an endbr64)."""
        return _errno(self.set_filter_ip, ops, ip, bool(remove), bool(reset))

    def ftrace_set_filter_ips(self, ops: FtraceOps, ips: Sequence[int], cnt: int, remove: int,
                              reset: int) -> int:
        """ftrace_set_filter_ips(ops, ips, cnt, remove, reset): the first ``cnt``."""
        return _errno(self.set_filter_ips, ops, ips[:cnt], bool(remove), bool(reset))

    @staticmethod
    def ftrace_free_filter(ops: FtraceOps) -> None:
        """ftrace_free_filter(): empty both hashes (not of a registered ops: WARN_ON)."""
        if ops.flags & OPS_FL_ENABLED:
            return
        ops.func_hash.filter_hash = FtraceHash()
        ops.func_hash.notrace_hash = FtraceHash()

    def ftrace_ops_get_func(self, ops: FtraceOps) -> OpsFunc:
        """ftrace_ops_get_func(): what a trampoline calls for ``ops``."""
        return self.dispatch.ops_get_func(ops)

    def ftrace_test_recursion_trylock(self, ip: int, parent_ip: int) -> int:
        """ftrace_test_recursion_trylock(): the bit taken (>= 0) or -1 on recursion in
        the same context (the context bit, then the transition bit, then a miss)."""
        return self.recursion_trylock(ip, parent_ip, TRACE_FTRACE_START)

    def ftrace_test_recursion_unlock(self, bit: int) -> None:
        self.recursion_unlock(bit)

    # The same operations as Python spellings (the simulator's own callers use them):
    # they raise KernelError where the C functions return -errno.
    def register_ops(self, ops: FtraceOps) -> None:
        """register_ftrace_function(), raising KernelError."""
        ops.flags |= OPS_FL_INITIALIZED
        self.update.ftrace_startup(ops)

    def unregister_ops(self, ops: FtraceOps) -> None:
        self.update.ftrace_shutdown(ops)

    def set_filter(self, ops: FtraceOps, buf: str | None, reset: bool = False) -> None:
        """``buf`` is ONE glob (no commands, no :mod:)."""
        self.update.set_hash(ops, buf, None, False, reset, True)

    def set_notrace(self, ops: FtraceOps, buf: str | None, reset: bool = False) -> None:
        self.update.set_hash(ops, buf, None, False, reset, False)

    def set_filter_ip(self, ops: FtraceOps, ip: int, remove: bool = False,
                      reset: bool = False) -> None:
        self.update.set_hash(ops, None, [ip], remove, reset, True)

    def set_filter_ips(self, ops: FtraceOps, ips: Iterable[int], remove: bool = False,
                       reset: bool = False) -> None:
        self.update.set_hash(ops, None, list(ips), remove, reset, True)

    def ftrace_startup_subops(self, ops: FtraceOps, subops: FtraceOps) -> None:
        """ftrace_startup_subops(): add a subops (an fgraph user) to a manager ops."""
        self.update.ftrace_startup_subops(ops, subops)

    def ftrace_shutdown_subops(self, ops: FtraceOps, subops: FtraceOps) -> None:
        self.update.ftrace_shutdown_subops(ops, subops)

    # ------------------------------------------------------------------ commands/probes
    def register_ftrace_command(self, name: str, func: CommandFunc) -> None:
        self.probes.register_ftrace_command(name, func)

    def unregister_ftrace_command(self, name: str) -> None:
        self.probes.unregister_ftrace_command(name)

    def register_ftrace_function_probe(self, glob: str, tr: TraceArray, probe_ops: FuncProbeOps,
                                       data: object) -> int:
        """register_ftrace_function_probe(): returns the number of new functions."""
        return self.probes.register_ftrace_function_probe(glob, tr, probe_ops, data)

    def unregister_ftrace_function_probe_func(self, glob: str | None, tr: TraceArray,
                                              probe_ops: FuncProbeOps) -> None:
        self.probes.unregister_ftrace_function_probe_func(glob, tr, probe_ops)

    def regex_open(self, tr: TraceArray | None, ops: FtraceOps | None, flag: int, read: bool,
                   write: bool, trunc: bool) -> RegexIter:
        """ftrace_regex_open(): a filter file of ``ops`` (default: the array's)."""
        if ops is None:
            ops = tr.ops if tr is not None and tr.ops is not None else self.global_ops
        return ftrace_regex_open(self, tr, ops, flag, write, trunc)

    # ------------------------------------------------------------------ pids
    def ftrace_pid_follow_fork(self, tr: TraceArray, enable: bool) -> None:
        """The function-fork option of ``tr``."""
        self.pid.ftrace_pid_follow_fork(tr, enable)

    def sched_process_fork(self, tr: TraceArray, parent: Task, child: Task) -> None:
        self.pid.sched_process_fork(tr, parent, child)

    def sched_process_free(self, tr: TraceArray, task: Task) -> None:
        self.pid.sched_process_free(tr, task)

    # ------------------------------------------------------------------ trace arrays
    def init_global_array_ops(self, tr: TraceArray) -> None:
        """ftrace_init_global_array_ops(): the top level uses global_ops."""
        tr.ops = self.global_ops
        self.global_ops.private = tr

    def instance_create(self, tr: TraceArray) -> None:
        """ftrace_allocate_ftrace_ops() for a new instance."""
        if tr.ops is None:
            tr.ops = new_trace_ops(tr)

    def instance_destroy(self, tr: TraceArray) -> None:
        """clear_ftrace_function_probes() + ftrace_destroy_function_files()."""
        self.probes.clear_ftrace_function_probes(tr)
        ops = tr.ops
        if ops is None or ops is self.global_ops:
            return
        if ops.flags & OPS_FL_ENABLED:
            try:
                self.update.ftrace_shutdown(ops)
            except KernelError:
                pass
        ops.flags |= OPS_FL_DELETED
        self.ftrace_free_filter(ops)
        st = tr.ftrace_state
        st.mod_trace.clear()
        st.mod_notrace.clear()


def _errno(fn: Callable[..., None], *args: object) -> int:
    """Call a raising spelling: 0, or the KernelError's -errno (the C convention)."""
    try:
        fn(*args)
    except KernelError as e:
        return -e.errno
    return 0


def _cbuf(buf: str | None, n: int) -> str | None:
    """``buf`` of ``n`` bytes as the C functions take it (NULL stays None)."""
    if buf is None:
        return None
    if isinstance(n, bool) or not isinstance(n, int):
        # the simulator's old 3-argument shape was (ops, buf, reset): fail loudly
        raise TypeError("ftrace_set_filter/notrace(ops, buf, len, reset): len must be an int")
    return buf[:n]


def new_trace_ops(tr: TraceArray) -> FtraceOps:
    """ftrace_allocate_ftrace_ops(): an instance's function-tracer ops (FL_PID)."""
    return FtraceOps(ftrace_stub, OPS_FL_PID, private=tr, name="trace_ops")


def boot(kernel: Kernel) -> Ftrace:
    """Initcall: the records, global_ops for the top-level trace array, and the
    per-instance ops (``tr.ops``) created/destroyed with ``instances/NAME``."""
    ft = Ftrace(kernel)
    tracing = kernel.trace
    ft.init_global_array_ops(tracing.global_trace)
    tracing.instance_hooks.append((ft.instance_create, ft.instance_destroy))
    return ft
