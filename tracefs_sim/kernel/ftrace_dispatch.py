"""What a patched call site reaches (kernel/trace/ftrace.c, arch/x86/kernel/ftrace.c):
trampolines, ``ftrace_caller`` and the list function.

A site whose record has ``FL_TRAMP_EN`` calls the trampoline of the one ops that wants
it (``FtraceOps.site``: that ops' ``tramp_func`` with the record's ip); any other
enabled site calls ``ftrace_caller``, which calls ``ftrace_trace_function``: the only
ops' function directly, or ``arch_ftrace_ops_list_func``, which runs every registered
ops whose hashes take the record.  ``update_ftrace_function()`` re-derives that choice
whenever the ops list or an ops' function changes.

Like ftrace_caller/ftrace_regs_caller, every entry fills the call's ``ftrace_regs``:
``ip`` = rec->ip + MCOUNT_INSN_SIZE (the return address of ``call __fentry__``) and ``cs``
= KERNEL_CS when all registers were saved (the site's record has FL_REGS_EN, or the ops'
own trampoline was built for FTRACE_OPS_FL_SAVE_REGS), else 0, so ftrace_get_regs()
answers as on x86-64.  A callback may move ``ip`` (IPMODIFY): the call site continues
there (kernel/workload/callsite.py).  An ops with FTRACE_OPS_FL_RCU is skipped while RCU
is not watching the CPU (kernel/rcu.py).  A callback that raises is reported in the
kernel log (``Modules.handler_raised``) and the call goes on, as a WARN would.

This is the hot path of every traced call: the closures bind what they read, and the
list function walks a tuple snapshot of the ops list.
"""

from __future__ import annotations

from itertools import compress
from typing import TYPE_CHECKING

from .ftrace_ops import (
    FL_REGS_EN,
    KERNEL_CS,
    MCOUNT_INSN_SIZE,
    OPS_FL_ALLOC_TRAMP,
    OPS_FL_DYNAMIC,
    OPS_FL_RCU,
    OPS_FL_RECURSION,
    OPS_FL_SAVE_REGS,
    OPS_FL_STUB,
    FtraceOps,
    OpsFunc,
    SiteFunc,
    ftrace_stub,
)

if TYPE_CHECKING:
    from .ftrace import Ftrace
    from .mm import Regs

# trace_recursion.h: the first bit of the list function's recursion context
TRACE_LIST_START = 5


class FtraceDispatch:
    """Trampolines and ``ftrace_trace_function`` of one kernel's ftrace."""

    def __init__(self, ft: Ftrace) -> None:
        self.ft = ft
        self.ips = ft.ips
        self.flags = ft.flags
        self._trylock = ft.recursion_trylock
        self._unlock = ft.recursion_unlock
        self._rcu_is_watching = ft.k.rcu.rcu_is_watching
        # ftrace_trace_function and function_trace_op: what ftrace_caller calls
        self.trace_func: OpsFunc = ftrace_stub
        self.function_trace_op: FtraceOps | None = None
        self._trace_site: SiteFunc = self._stub_site
        self._ops_snapshot: tuple[FtraceOps, ...] = ()
        self._tramp_next = self._tramp_base()
        self._tramp_free: list[int] = []

    # ------------------------------------------------------------------ trampolines
    def _tramp_base(self) -> int:
        """Trampolines are allocated after the last module's text (module_alloc)."""
        top = max(compress(self.ips, self.ft.mods), default=0)   # a record's mod is None or a name
        if not top:
            return 0xFFFFFFFFC0667000
        return ((top + 0xFFF) & ~0xFFF) + 0x2F000

    def _alloc_tramp(self) -> int:
        if self._tramp_free:
            self._tramp_free.sort()
            return self._tramp_free.pop(0)
        addr = self._tramp_next
        self._tramp_next += 0x1000
        return addr

    def ops_get_func(self, ops: FtraceOps) -> OpsFunc:
        """ftrace_ops_get_func(): the assist function when ftrace must add recursion."""
        if ops.flags & (OPS_FL_RECURSION | OPS_FL_RCU):
            return self.ftrace_ops_assist_func
        return ops.func

    def update_trampoline(self, ops: FtraceOps) -> None:
        """ftrace_update_trampoline() + x86's arch_ftrace_update_trampoline()."""
        if not ops.trampoline:
            ops.trampoline = self._alloc_tramp()
            ops.trampoline_size = 0x1000
            ops.flags |= OPS_FL_ALLOC_TRAMP
        ops.tramp_func = self.ops_get_func(ops)
        if ops.site is None:
            ips = self.ips
            raised = self._raised

            def site(i: int, pip: int, fregs: Regs | None, _op: FtraceOps = ops,
                     _ips: list[int] = ips, _save: int = OPS_FL_SAVE_REGS) -> None:
                # the ops' trampoline: a copy of ftrace_regs_caller for a SAVE_REGS ops,
                # else of ftrace_caller
                ip = _ips[i]
                if fregs is not None:
                    fregs.ip = ip + MCOUNT_INSN_SIZE
                    fregs.cs = KERNEL_CS if _op.flags & _save else 0
                try:
                    _op.tramp_func(ip, pip, _op, fregs)
                except Exception as e:
                    raised(_op, e)

            ops.site = site

    def trampoline_free(self, ops: FtraceOps) -> None:
        if ops.flags & OPS_FL_ALLOC_TRAMP and ops.trampoline:
            self._tramp_free.append(ops.trampoline)
            ops.trampoline = 0
            ops.trampoline_size = 0
            ops.flags &= ~OPS_FL_ALLOC_TRAMP

    def tramp_ops_any_other(self, i: int, exclude: FtraceOps | None) -> FtraceOps | None:
        """ftrace_find_tramp_ops_any_other(): another ops with a trampoline wanting ``i``."""
        for op in self.ft.ops_list:
            if op is exclude or not op.trampoline:
                continue
            if op.func_hash.contains(i):
                return op
        return None

    def find_tramp_ops_new(self, i: int) -> FtraceOps | None:
        """ftrace_find_tramp_ops_new(): the ops whose trampoline a site now calls."""
        for op in self.ft.ops_list:
            if op.func_hash.contains(i):
                return op
        return None

    def site_for(self, i: int, tramp_en: bool) -> SiteFunc:
        """What the call site of record ``i`` is patched to call (ftrace_make_call)."""
        if tramp_en:
            op = self.find_tramp_ops_new(i)
            if op is not None and op.site is not None:
                return op.site
        return self._caller_site

    # ------------------------------------------------------------------ the list function
    def _raised(self, op: FtraceOps, exc: Exception) -> None:
        """A callback raised: into the kernel log with its traceback (the call goes on)."""
        self.ft.k.modules.handler_raised(op.func, exc)

    def ftrace_ops_assist_func(self, ip: int, pip: int, op: FtraceOps, fregs: Regs | None) -> None:
        """For an ops with FTRACE_OPS_FL_RECURSION or FTRACE_OPS_FL_RCU: the recursion
        lock, and no call while RCU is not watching."""
        bit = self._trylock(ip, pip, TRACE_LIST_START)
        if bit < 0:
            return
        try:
            if not op.flags & OPS_FL_RCU or self._rcu_is_watching():
                op.func(ip, pip, op, fregs)
        finally:
            self._unlock(bit)

    def arch_ftrace_ops_list_func(self, ip: int, pip: int, op: FtraceOps | None, fregs: Regs | None) -> None:
        """__ftrace_ops_list_func() entered with an ip (used by direct callers)."""
        i = self.ft.ip_to_index(ip)
        if i is not None:
            self._list_site(i, pip, fregs)

    def _list_site(self, i: int, pip: int, fregs: Regs | None) -> None:
        """ftrace_caller → arch_ftrace_ops_list_func for record ``i``."""
        ip = self.ips[i]
        regs = self.flags[i] & FL_REGS_EN
        if fregs is not None:
            fregs.ip = ip + MCOUNT_INSN_SIZE
            fregs.cs = KERNEL_CS if regs else 0
        bit = self._trylock(ip, pip, TRACE_LIST_START)
        if bit < 0:
            return
        try:
            for op in self._ops_snapshot:
                fl = op.flags
                if fl & OPS_FL_STUB:
                    continue
                if fl & OPS_FL_SAVE_REGS and not regs:
                    continue
                if fl & OPS_FL_RCU and not self._rcu_is_watching():
                    continue
                fh = op.func_hash
                f = fh.filter_hash
                if (f.ents or f.flags) and i not in f.ents:
                    continue
                if i in fh.notrace_hash.ents:
                    continue
                try:
                    op.func(ip, pip, op, fregs)
                except Exception as e:
                    self._raised(op, e)
        finally:
            self._unlock(bit)

    def _stub_site(self, i: int, pip: int, fregs: Regs | None) -> None:
        return None

    def _caller_site(self, i: int, pip: int, fregs: Regs | None) -> None:
        """ftrace_caller without a private trampoline: calls ftrace_trace_function."""
        self._trace_site(i, pip, fregs)

    def update_ftrace_function(self) -> None:
        """update_ftrace_function(): what ftrace_caller calls."""
        ops_list = self.ft.ops_list
        self._ops_snapshot = tuple(ops_list)
        if not ops_list:
            self.trace_func = ftrace_stub
            self.function_trace_op = None
            self._trace_site = self._stub_site
            return
        op = ops_list[0]
        if len(ops_list) == 1 and not op.flags & (OPS_FL_DYNAMIC | OPS_FL_RCU):
            func = self.ops_get_func(op)
        else:
            func = self.arch_ftrace_ops_list_func
        self.trace_func = func
        if func == self.arch_ftrace_ops_list_func:
            self.function_trace_op = None
            self._trace_site = self._list_site
            return
        self.function_trace_op = op
        ips = self.ips
        flags = self.flags
        raised = self._raised

        def direct(i: int, pip: int, fregs: Regs | None, _f: OpsFunc = func,
                   _op: FtraceOps = op) -> None:
            # ftrace_caller, or ftrace_regs_caller where the record wants the registers
            ip = ips[i]
            if fregs is not None:
                fregs.ip = ip + MCOUNT_INSN_SIZE
                fregs.cs = KERNEL_CS if flags[i] & FL_REGS_EN else 0
            try:
                _f(ip, pip, _op, fregs)
            except Exception as e:
                raised(_op, e)

        self._trace_site = direct

    def ops_quiet(self) -> bool:
        """Every registered ops says its callback can leave no trace now."""
        for op in self.ft.ops_list:
            q = op.quiet
            if q is None or not q():
                return False
        return True
