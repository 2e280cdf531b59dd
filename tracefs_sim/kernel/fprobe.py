"""fprobe: a function entry/exit probe on top of ftrace (kernel/trace/fprobe.c, 6.12).

In 6.12 each ``Fprobe`` owns an ``ftrace_ops`` (FTRACE_OPS_FL_SAVE_REGS) whose filter
selects the probed functions; the exit side uses a ``Rethook`` with a pool of
``nr_maxactive`` nodes (default: number of probed functions × possible CPUs × 2).
When the pool is empty at an entry, ``nmissed`` counts it and neither handler runs
for that call.  ``FPROBE_FL_DISABLED`` soft-disables both handlers.

``FprobeCore`` is the per-kernel part.  It drives kernel/ftrace.py by the kernel API
names (``ftrace_set_filter(ops, glob, reset)``, ``ftrace_set_notrace``,
``ftrace_set_filter_ips``, ``register_ftrace_function``, ``unregister_ftrace_function``,
``ftrace_free_filter``; they raise KernelError, turned into -errno here) with an
``FtraceOps(func, OPS_FL_SAVE_REGS, fp)``.  The exit side is hooked with
``Ftrace.push_ret_hook(current, frame)``: when the call returns, ftrace runs
``frame[0](frame, retval)`` — our rethook trampoline, which calls the exit handler
with the entry's return address and a regs view holding the return value.

``fregs`` (whatever the call site passes to ``func_entry``, None included) is handed to
the handlers as pt_regs; probe events read ``get_kernel_argument(n)`` etc. from it.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import KernelError
from .ftrace import OPS_FL_SAVE_REGS, FtraceOps, ksym
from .mm import PtRegs
from .rethook import Rethook, RethookNode, rethook_alloc

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
    """``struct fprobe``."""

    def __init__(self, entry_handler: EntryHandler | None = None,
                 exit_handler: ExitHandler | None = None, entry_data_size: int = 0,
                 nr_maxactive: int = 0, flags: int = 0) -> None:
        self.ops: FtraceOps | None = None
        self.nmissed = 0
        self.flags = flags
        self.rethook: Rethook[Fprobe] | None = None
        self.entry_data_size = entry_data_size
        self.nr_maxactive = nr_maxactive
        self.entry_handler = entry_handler
        self.exit_handler = exit_handler
        self.owner: Any = None        # container_of(): the user's structure, any type
        self.registered = False
        self.core: FprobeCore | None = None

    def reset(self) -> None:
        """``memset(&tf->fp, 0, ...)`` after unregistering (keeps the handlers' owner)."""
        self.ops = None
        self.nmissed = 0
        self.flags = 0
        self.rethook = None
        self.registered = False

    def disabled(self) -> bool:
        return bool(self.flags & FPROBE_FL_DISABLED)


def disable_fprobe(fp: Fprobe | None) -> None:
    if fp is not None:
        fp.flags |= FPROBE_FL_DISABLED


def enable_fprobe(fp: Fprobe | None) -> None:
    if fp is not None:
        fp.flags &= ~FPROBE_FL_DISABLED


def _call(fn: Callable[..., None], *args: object) -> int:
    """Call an ftrace API of kernel/ftrace.py (it raises KernelError): 0 or -errno."""
    try:
        fn(*args)
    except KernelError as e:
        return -e.errno
    return 0


class _RetRegs:
    """pt_regs at the function return: the return value plus the entry registers."""

    __slots__ = ("entry", "retval")

    def __init__(self, entry: PtRegs | None, retval: int) -> None:
        self.entry = entry
        self.retval = retval

    def return_value(self) -> int:
        return self.retval

    def get_kernel_argument(self, n: int) -> int:
        return self.entry.get_kernel_argument(n) if self.entry is not None else 0

    def kernel_stack_nth(self, n: int) -> int:
        return self.entry.kernel_stack_nth(n) if self.entry is not None else 0

    def stack_pointer(self) -> int:
        return self.entry.stack_pointer() if self.entry is not None else 0


class FprobeCore:
    """The fprobe library of one kernel."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.ftrace: Ftrace = kernel.ftrace

    # ------------------------------------------------------------------ handlers
    def _make_ops(self, fp: Fprobe) -> FtraceOps:
        @ksym("fprobe_handler")   # %pS in enabled_functions
        def func(ip: int, parent_ip: int, ops: FtraceOps, fregs: PtRegs | None) -> None:
            self._handler(fp, ip, parent_ip, fregs)

        return FtraceOps(func, OPS_FL_SAVE_REGS, fp, name="fprobe")

    def _handler(self, fp: Fprobe, ip: int, parent_ip: int, fregs: PtRegs | None) -> None:
        """``fprobe_handler`` → ``__fprobe_handler``."""
        if fp.disabled():
            return
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
        ret = 0
        if fp.entry_handler is not None:
            ret = fp.entry_handler(fp, ip, parent_ip, fregs, entry_data)
        if rh is not None:
            if ret:
                rh.rethook.recycle(rh)
            else:
                # rethook_hook(): on the task's return-hook stack of kernel/ftrace.py
                rh.ret_addr = parent_ip
                self.ftrace.push_ret_hook(self.kernel.sched.current, [self._ret_frame, rh, fregs])

    def _ret_frame(self, frame: list[Any], retval: int) -> None:
        """The rethook trampoline for one hooked call (frame = [cb, node, entry regs])."""
        rh: RethookNode[Fprobe] = frame[1]
        handler = rh.rethook.handler
        if handler is not None:
            handler(rh, rh.rethook.data, rh.ret_addr, _RetRegs(frame[2], retval))
        rh.rethook.recycle(rh)

    def _exit_handler(self, rh: RethookNode[Fprobe], fp: Fprobe, ret_ip: int, regs: PtRegs) -> None:
        """``fprobe_exit_handler``."""
        if fp.disabled() or fp.exit_handler is None:
            return
        fp.exit_handler(fp, rh.entry_ip, ret_ip, regs,
                        rh.data if fp.entry_data_size else None)

    # ------------------------------------------------------------------ registration
    def _init(self, fp: Fprobe) -> FtraceOps:
        fp.nmissed = 0
        fp.core = self
        ops = fp.ops = self._make_ops(fp)
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
        rh = rethook_alloc(fp, self._exit_handler, fp.entry_data_size, num)
        if isinstance(rh, int):
            return rh
        fp.rethook = rh
        return 0

    def _fail_cleanup(self, fp: Fprobe) -> None:
        if fp.rethook is not None:
            fp.rethook.free()
            fp.rethook = None
        if fp.ops is not None:
            _call(self.ftrace.ftrace_free_filter, fp.ops)

    def register_fprobe(self, fp: Fprobe, filter: str | None, notfilter: str | None) -> int:
        """Probe the functions matching the glob ``filter`` minus ``notfilter``."""
        if fp is None or filter is None:
            return -errno.EINVAL
        ft = self.ftrace
        ops = self._init(fp)
        ret = _call(ft.ftrace_set_filter, ops, filter, False)
        if ret:
            return ret
        if notfilter:
            ret = _call(ft.ftrace_set_notrace, ops, notfilter, False)
            if ret:
                self._fail_cleanup(fp)
                return ret
        return self._arm(fp, len(ops.filter_hash))

    def register_fprobe_ips(self, fp: Fprobe, addrs: list[int]) -> int:
        """Probe the given ftrace locations."""
        if fp is None or not addrs:
            return -errno.EINVAL
        ops = self._init(fp)
        ret = _call(self.ftrace.ftrace_set_filter_ips, ops, list(addrs), False, False)
        if ret:
            return ret
        return self._arm(fp, len(addrs))

    def _arm(self, fp: Fprobe, num: int) -> int:
        """The common tail of register_fprobe*(): rethook for ``num`` sites, then the ops."""
        ret = self._init_rethook(fp, num)
        if not ret:
            ret = _call(self.ftrace.register_ftrace_function, fp.ops)
        if ret:
            self._fail_cleanup(fp)
        else:
            fp.registered = True
        return ret

    def register_fprobe_syms(self, fp: Fprobe, syms: list[str]) -> int:
        """Probe the named functions (all must exist: -ENOENT otherwise)."""
        if fp is None or not syms:
            return -errno.EINVAL
        addrs = self._lookup_symbols(sorted(syms))
        if addrs is None:
            return -errno.ENOENT
        return self.register_fprobe_ips(fp, addrs)

    def _lookup_symbols(self, syms: list[str]) -> list[int] | None:
        """ftrace_lookup_symbols(): the ftrace location of each (traceable) symbol."""
        ks, ips = self.kernel.kallsyms, self.ftrace.ips
        out = []
        for name in syms:
            i = ks.index_of(name)
            if i is None:
                return None
            out.append(ips[i])
        return out

    def unregister_fprobe(self, fp: Fprobe) -> int:
        if fp is None or not fp.registered:
            return -errno.EINVAL
        if fp.rethook is not None:
            fp.rethook.stop()
        ft = self.ftrace
        ret = _call(ft.unregister_ftrace_function, fp.ops)
        if ret < 0:
            return ret
        if fp.rethook is not None:
            fp.rethook.free()
        _call(ft.ftrace_free_filter, fp.ops)
        fp.registered = False
        return ret


def fprobe_is_registered(fp: Fprobe | None) -> bool:
    return fp is not None and fp.registered
