"""fprobe: a function entry/exit probe on top of ftrace (kernel/trace/fprobe.c, 6.12).

In 6.12 each ``Fprobe`` embeds an ``ftrace_ops`` (``fp.ops``, there from the start:
flags a module sets before registering, FTRACE_OPS_FL_RECURSION or FTRACE_OPS_FL_RCU,
are kept and honoured) whose filter selects the probed functions; the exit side uses a
``Rethook`` with a pool of ``nr_maxactive`` nodes (default: number of probed functions ×
possible CPUs × 2).  When the pool is empty at an entry, ``nmissed`` counts it and
neither handler runs for that call.  ``FPROBE_FL_DISABLED`` soft-disables both handlers.

The ops' callback is ``fprobe_handler`` (``fprobe_kprobe_handler`` with
FPROBE_FL_KPROBE_SHARED): it takes ftrace_test_recursion_trylock() first (the context
bit, then the transition bit; a third nesting in one context is a miss, counted in
``nmissed``), and the shared variant also counts a miss while a kprobe runs and marks a
kprobe busy (kprobe_busy_begin/end) around the handlers, so a kprobe hit inside them is
missed as inside a kprobe.  The exit handler takes the recursion lock again.

The handlers get pt_regs as 6.12 gives them: ``ftrace_get_regs(fregs)`` at the entry
(the ops has FTRACE_OPS_FL_SAVE_REGS: ``ip`` = the probed ftrace location +
MCOUNT_INSN_SIZE, ``cs`` = __KERNEL_CS), the rethook trampoline's at the exit (``ip`` =
the real return address, the return value in ``ax``).

``FprobeCore`` (``kernel.fprobe``) is the per-kernel part: register_fprobe(),
register_fprobe_ips(fp, addrs, num), register_fprobe_syms(fp, syms, num),
unregister_fprobe(), each 0 or -errno as in C.  Registering an fprobe that is
registered already is -EBUSY and changes nothing.  A handler that raises is reported
in the kernel log (``Modules.handler_raised``) and counted in ``nmissed``.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .ftrace_ops import OPS_FL_ENABLED, OPS_FL_SAVE_REGS, FtraceOps, ftrace_get_regs
from .mm import PtRegs, Regs
from .rethook import Rethook, RethookNode, rethook_alloc, rethook_hook

if TYPE_CHECKING:
    from .core import Kernel
    from .ftrace import Ftrace

FPROBE_FL_DISABLED = 1
FPROBE_FL_KPROBE_SHARED = 2

# (fp, entry ip, return address, regs, entry data): the entry handler returns non-zero
# to skip the exit handler of this call
EntryHandler = Callable[["Fprobe", int, int, "PtRegs | None", "bytearray | None"], int]
ExitHandler = Callable[["Fprobe", int, int, PtRegs, "bytearray | None"], None]


class Fprobe:
    """``struct fprobe``: the embedded ``ops``, the counters and the handlers."""

    def __init__(self, entry_handler: EntryHandler | None = None,
                 exit_handler: ExitHandler | None = None, entry_data_size: int = 0,
                 nr_maxactive: int = 0, flags: int = 0) -> None:
        # what its ops answers to FtraceOps.quiet (a user of the fprobe may say more)
        self.quiet: Callable[[], bool] = self.disabled
        self.ops = _embedded_ops(self)
        self.nmissed = 0
        self.flags = flags
        self.rethook: Rethook[Fprobe] | None = None
        self.entry_data_size = entry_data_size
        self.nr_maxactive = nr_maxactive
        self.entry_handler = entry_handler
        self.exit_handler = exit_handler
        self.owner: Any = None        # container_of(): the user's structure, any type

    @property
    def registered(self) -> bool:
        """fprobe_is_registered()."""
        return fprobe_is_registered(self)

    def reset(self) -> None:
        """``memset(&tf->fp, 0, ...)`` after unregistering (keeps the handlers and the
        owner: trace_fprobe registers the same probe again)."""
        self.ops = _embedded_ops(self)
        self.nmissed = 0
        self.flags = 0
        self.rethook = None

    def disabled(self) -> bool:
        return bool(self.flags & FPROBE_FL_DISABLED)


def _embedded_ops(fp: Fprobe) -> FtraceOps:
    ops = FtraceOps(name="fprobe")
    ops.owner = fp                # container_of(ops, struct fprobe, ops)
    # a disabled fprobe's handler returns at once (trace_fprobe registers its probe
    # disabled when the event is defined): its call sites can leave no mark
    ops.quiet = fp.quiet
    return ops


def fprobe_disabled(fp: Fprobe | None) -> bool:
    return fp is not None and bool(fp.flags & FPROBE_FL_DISABLED)


def fprobe_shared_with_kprobes(fp: Fprobe | None) -> bool:
    return fp is not None and bool(fp.flags & FPROBE_FL_KPROBE_SHARED)


def disable_fprobe(fp: Fprobe | None) -> None:
    if fp is not None:
        fp.flags |= FPROBE_FL_DISABLED


def enable_fprobe(fp: Fprobe | None) -> None:
    if fp is not None:
        fp.flags &= ~FPROBE_FL_DISABLED


def fprobe_is_registered(fp: Fprobe | None) -> bool:
    """fprobe_is_registered(): the ops was set up by register_fprobe*() (its saved_func
    is an fprobe handler; unregister_fprobe() leaves it, as in C)."""
    if fp is None:
        return False
    saved = fp.ops.saved_func
    return saved is not None and saved.__name__ in ("fprobe_handler", "fprobe_kprobe_handler")


class FprobeCore:
    """The fprobe library of one kernel."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.ftrace: Ftrace = kernel.ftrace
        self._trylock = kernel.ftrace.recursion_trylock
        self._unlock = kernel.ftrace.recursion_unlock
        self._sched = kernel.sched

    # ------------------------------------------------------------------ handlers
    # The per-hit path: the ops' callback runs for every probed call, so the plain
    # variant is the ops' function itself (the shared one adds a frame in front of it).
    def fprobe_handler(self, ip: int, parent_ip: int, ops: FtraceOps, fregs: Regs | None,
                       kprobe_shared: bool = False) -> None:
        """fprobe_handler(): the recursion lock, then __fprobe_handler().  With
        ``kprobe_shared`` (fprobe_kprobe_handler()): no handler while a kprobe runs on
        this CPU (a miss), and the kprobe machinery busy around them."""
        fp: Fprobe = ops.owner
        if fp.flags & FPROBE_FL_DISABLED:
            return
        bit = self._trylock(ip, parent_ip)
        if bit < 0:
            fp.nmissed += 1
            return
        try:
            if not kprobe_shared:
                self._fprobe_entry(fp, ip, parent_ip, fregs)
                return
            kp = self.kernel.kprobes
            if kp.kprobe_running() is not None:
                fp.nmissed += 1
                return
            kp.kprobe_busy_begin()
            try:
                self._fprobe_entry(fp, ip, parent_ip, fregs)
            finally:
                kp.kprobe_busy_end()
        finally:
            self._unlock(bit)

    def fprobe_kprobe_handler(self, ip: int, parent_ip: int, ops: FtraceOps,
                              fregs: Regs | None) -> None:
        """The callback of an fprobe shared with kprobes (FPROBE_FL_KPROBE_SHARED)."""
        self.fprobe_handler(ip, parent_ip, ops, fregs, True)

    def _fprobe_entry(self, fp: Fprobe, ip: int, parent_ip: int, fregs: Regs | None) -> None:
        """__fprobe_handler(): a rethook node for the exit side, the entry handler."""
        rh: RethookNode[Fprobe] | None = None
        entry_data = None
        if fp.exit_handler is not None:
            rh = fp.rethook.try_get() if fp.rethook is not None else None
            if rh is None:
                fp.nmissed += 1
                return
            rh.entry_ip = ip
            rh.entry_parent_ip = parent_ip
            if fp.entry_data_size:
                entry_data = rh.data
                entry_data[:] = bytes(len(entry_data))
        regs = ftrace_get_regs(fregs)
        ret = 0
        handler = fp.entry_handler
        if handler is not None:
            try:
                ret = handler(fp, ip, parent_ip, regs, entry_data)
            except Exception as e:
                self.kernel.modules.handler_raised(handler, e)
                fp.nmissed += 1
                ret = 1     # no exit handler for a call whose entry handler failed
        if rh is not None:
            if ret:
                rh.rethook.recycle(rh)
            else:
                rethook_hook(rh, regs, parent_ip, self._sched.current)

    def fprobe_exit_handler(self, rh: RethookNode[Fprobe], fp: Fprobe, ret_ip: int,
                            regs: Regs) -> None:
        """``fprobe_exit_handler``: the rethook's handler, under the recursion lock."""
        if fp.flags & FPROBE_FL_DISABLED or fp.exit_handler is None:
            return
        bit = self._trylock(rh.entry_ip, rh.entry_parent_ip)
        if bit < 0:
            fp.nmissed += 1
            return
        try:
            fp.exit_handler(fp, rh.entry_ip, ret_ip, regs,
                            rh.data if fp.entry_data_size else None)
        except Exception as e:
            self.kernel.modules.handler_raised(fp.exit_handler, e)
            fp.nmissed += 1
        finally:
            self._unlock(bit)

    # ------------------------------------------------------------------ registration
    def _init(self, fp: Fprobe) -> FtraceOps:
        """fprobe_init(): the ops' callback and FTRACE_OPS_FL_SAVE_REGS (the flags the
        module set are kept)."""
        fp.nmissed = 0
        ops = fp.ops
        ops.func = self.fprobe_kprobe_handler if fprobe_shared_with_kprobes(fp) else self.fprobe_handler
        ops.flags |= OPS_FL_SAVE_REGS
        return ops

    def _init_rethook(self, fp: Fprobe, num: int) -> int:
        if fp.exit_handler is None:
            fp.rethook = None
            return 0
        if fp.nr_maxactive:
            num = fp.nr_maxactive
        else:
            num *= self.kernel.nr_cpus * 2
        if num <= 0:
            return -errno.EINVAL
        rh = rethook_alloc(fp, self.fprobe_exit_handler, fp.entry_data_size, num)
        if isinstance(rh, int):
            return rh
        fp.rethook = rh
        return 0

    def _fail_cleanup(self, fp: Fprobe) -> None:
        if fp.rethook is not None:
            fp.rethook.free()
            fp.rethook = None
        self.ftrace.ftrace_free_filter(fp.ops)

    @staticmethod
    def _live(fp: Fprobe) -> bool:
        """Already registered and live: register_ftrace_function() would say -EBUSY.
        6.12 finds out only after fprobe_init() and the filter change (and loses the
        rethook on the way); here the probe is refused before anything changes."""
        return bool(fp.ops.flags & OPS_FL_ENABLED)

    def register_fprobe(self, fp: Fprobe, filter: str | None, notfilter: str | None) -> int:  # noqa: A002
        """Probe the functions matching the glob ``filter`` minus ``notfilter``."""
        if fp is None or filter is None:
            return -errno.EINVAL
        if self._live(fp):
            return -errno.EBUSY
        ft = self.ftrace
        ops = self._init(fp)
        ret = ft.ftrace_set_filter(ops, filter, len(filter), 0)
        if ret:
            return ret
        if notfilter:
            ret = ft.ftrace_set_notrace(ops, notfilter, len(notfilter), 0)
            if ret:
                self._fail_cleanup(fp)
                return ret
        return self._arm(fp, len(ops.filter_hash))

    def register_fprobe_ips(self, fp: Fprobe, addrs: Sequence[int], num: int | None = None) -> int:
        """Probe the ftrace locations ``addrs[:num]`` (``num`` defaults to all)."""
        if num is None:
            num = len(addrs)
        if fp is None or not addrs or num <= 0:
            return -errno.EINVAL
        if self._live(fp):
            return -errno.EBUSY
        ops = self._init(fp)
        ret = self.ftrace.ftrace_set_filter_ips(ops, addrs, num, 0, 0)
        if ret:
            return ret
        return self._arm(fp, num)

    def _arm(self, fp: Fprobe, num: int) -> int:
        """The common tail of register_fprobe*(): rethook for ``num`` sites, then the ops."""
        ret = self._init_rethook(fp, num)
        if not ret:
            ret = self.ftrace.register_ftrace_function(fp.ops)
        if ret:
            self._fail_cleanup(fp)
        return ret

    def register_fprobe_syms(self, fp: Fprobe, syms: Sequence[str], num: int | None = None) -> int:
        """Probe the named functions ``syms[:num]`` (all must exist: -ENOENT otherwise)."""
        if num is None:
            num = len(syms)
        if fp is None or not syms or num <= 0:
            return -errno.EINVAL
        addrs = self.ftrace_lookup_symbols(sorted(syms[:num]))
        if isinstance(addrs, int):
            return -errno.ENOENT
        return self.register_fprobe_ips(fp, addrs, num)

    def ftrace_lookup_symbols(self, sorted_syms: Sequence[str]) -> list[int] | int:
        """ftrace_lookup_symbols(): the address of each symbol, the first of its name
        that has an ftrace location (the function's start: before an endbr64), or
        -ESRCH when one has none."""
        ks = self.kernel.kallsyms
        out = []
        for name in sorted_syms:
            i = ks.index_of(name)
            if i is None:
                return -errno.ESRCH
            out.append(ks.func_start(i))
        return out

    def unregister_fprobe(self, fp: Fprobe) -> int:
        if not fprobe_is_registered(fp):
            return -errno.EINVAL
        if fp.rethook is not None:
            fp.rethook.stop()
        ft = self.ftrace
        ret = ft.unregister_ftrace_function(fp.ops)
        if ret < 0:
            return ret
        if fp.rethook is not None:
            fp.rethook.free()
        ft.ftrace_free_filter(fp.ops)
        return ret
