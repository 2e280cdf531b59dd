"""Kprobe-based dynamic events: the ``p`` and ``r`` kinds (kernel/trace/trace_kprobe.c),
on the kprobes core (kprobes.py, ``k.kprobes``).

Grammar (``__trace_kprobe_create``)::

    p[:[GRP/][EVENT]] [MOD:]SYM[+OFFS]|MEMADDR [FETCHARGS]
    r[MAXACTIVE][:[GRP/][EVENT]] [MOD:]SYM[+0] [FETCHARGS]     (or p ... SYM%return)

Default group ``kprobes``; default names ``p_SYM_OFFS`` / ``r_SYM_OFFS`` (``p_0x%p`` for an
address).  Several definitions with one GRP/EVENT share a ``TraceProbeEvent`` (the
multiprobe append of trace_probe.py).  CONFIG_KPROBE_EVENTS_ON_NOTRACE is off: only
functions with an ftrace record can be probed (``within_notrace_func`` → "Failed to
register probe event").  Fetching adds ``%REG`` (FETCH_OP_REG) to the common fetch code,
as the kernel's trace_kprobe.c ``process_fetch_insn`` does.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from .kprobes import KPROBE_FLAG_DISABLED, KPROBE_FLAG_GONE, Kprobe, KprobeCore, Kretprobe
from .lib import isdigit, kstrtol, kstrtoul
from .ptrace import M64, PtRegs
from .trace_events_fmt import hashed_ptr
from .trace_events_h import TRACE_EVENT_FL_KPROBE
from .trace_probe import (
    PROBE_HEAD_SIZE,
    PROBE_RET_HEAD_SIZE,
    TP_FLAG_TRACE,
    TPARG_FL_FENTRY,
    TPARG_FL_KERNEL,
    TPARG_FL_RETURN,
    FetchOp,
    ParseContext,
    ProbeDynEvent,
    ProbeErr,
    TraceProbeKind,
)
from .trace_probe_tmpl import (
    func_probe_printer,
    process_fetch_insn,
    process_fetch_insn_bottom,
    store_trace_entry_data,
    trace_probe_trace_func,
)
from .version import map_banner

if TYPE_CHECKING:
    from .core import Kernel
    from .trace_dynevent import DynEvent
    from .trace_probe import FetchEnv, FetchInsn, TraceProbeEvent

KPROBE_EVENT_SYSTEM = "kprobes"
KRETPROBE_MAXACTIVE_MAX = 4096
UINT_MAX = 0xFFFFFFFF


def kprobe_process_fetch_insn(code: list[FetchInsn], env: FetchEnv, dest: bytearray | None,
                              doff: int, base: int) -> int:
    """trace_kprobe.c ``process_fetch_insn``: FETCH_OP_REG here, the rest is common."""
    pc = 1 if code[0].op == FetchOp.NOP_SYMBOL else 0
    insn = code[pc]
    if insn.op == FetchOp.REG:
        regs = env.regs
        assert isinstance(regs, PtRegs)
        return process_fetch_insn_bottom(code, pc + 1, regs.get_register(insn.param) & M64,
                                         env, dest, doff, base, None)
    return process_fetch_insn(code, env, dest, doff, base)


class TraceKprobe(ProbeDynEvent):
    """``struct trace_kprobe``: one ``p``/``r`` definition and its kprobe/kretprobe."""

    event: TraceProbeEvent[TraceKprobe]
    kind: KprobeEvents

    def __init__(self, kind: KprobeEvents, group: str, event: str, addr: int,
                 symbol: str | None, offset: int, maxactive: int, nargs: int,
                 is_return: bool) -> None:
        super().__init__(kind, group, event, nargs, TRACE_EVENT_FL_KPROBE)
        self.symbol = symbol
        self.kp = Kprobe(0 if symbol else addr, symbol, offset)
        self.kp.owner = self
        self.rp: Kretprobe | None = None
        if is_return:
            self.rp = Kretprobe(self.kp, maxactive)
            self.rp.handler = self.kretprobe_dispatcher
        else:
            self.kp.pre_handler = self.kprobe_dispatcher
        self.nhit = 0
        self.event.call.printer = func_probe_printer(self.event, is_return)

    def is_return(self) -> bool:
        return self.rp is not None

    def missed(self) -> int:
        """``trace_kprobe_missed``."""
        return self.kp.nmissed + (self.rp.nmissed if self.rp is not None else 0)

    def location(self) -> str:
        """``SYM+OFFS``, ``SYM`` or ``0x%p`` as show/match print it."""
        if not self.symbol:
            return "0x" + hashed_ptr(self.kp.addr)
        if self.kp.offset:
            return f"{self.symbol}+{self.kp.offset}"
        return self.symbol

    # --------------------------------------------------------------- firing
    def kprobe_dispatcher(self, kp: Kprobe, regs: PtRegs) -> int:
        """kprobe_dispatcher() → kprobe_trace_func()."""
        self.nhit += 1
        pe = self.event
        if pe.flags & TP_FLAG_TRACE:
            trace_probe_trace_func(pe, self.tp, self.kind.fetch_env(regs),
                                   PROBE_HEAD_SIZE, (kp.addr,), kprobe_process_fetch_insn)
        return 0

    def kretprobe_entry_handler(self, rp: Kretprobe, data: bytearray, _ret: int,
                                regs: PtRegs) -> int:
        """The entry handler of a return probe with ``$argN``: save the parameters."""
        if self.tp.entry_arg is not None:
            store_trace_entry_data(data, self.tp, regs)
        return 0

    def kretprobe_dispatcher(self, rp: Kretprobe, data: bytearray, ret_addr: int,
                             regs: PtRegs) -> int:
        """kretprobe_dispatcher() → kretprobe_trace_func()."""
        self.nhit += 1
        pe = self.event
        if pe.flags & TP_FLAG_TRACE:
            trace_probe_trace_func(pe, self.tp, self.kind.fetch_env(regs, data),
                                   PROBE_RET_HEAD_SIZE, (rp.kp.addr, ret_addr),
                                   kprobe_process_fetch_insn)
        return 0


def split_symbol_offset(symbol: str) -> tuple[int, str, int]:
    """``traceprobe_split_symbol_offset``: (ret, symbol, offset)."""
    cut = min((p for p in (symbol.find("+"), symbol.find("-")) if p >= 0), default=-1)
    if cut < 0:
        return 0, symbol, 0
    ret, off = kstrtol(symbol[cut:], 0)
    if ret:
        return ret, symbol, 0
    return 0, symbol[:cut], off


class KprobeEvents(TraceProbeKind[TraceKprobe]):
    """The ``trace_kprobe_ops`` dyn_event kind of one kernel."""

    probe_class = TraceKprobe
    log_subsystem = "trace_kprobe"

    def __init__(self, kernel: Kernel) -> None:
        super().__init__(kernel)
        self.core: KprobeCore = kernel.kprobes
        self.btf = kernel.btf

    # --------------------------------------------------------------- dyn_event ops
    def show(self, ev: DynEvent) -> str:
        assert isinstance(ev, TraceKprobe)
        out = ["r" if ev.is_return() else "p"]
        if ev.rp is not None and ev.rp.maxactive:
            out.append(str(ev.rp.maxactive))
        out.append(f":{ev.group}/{ev.name} {ev.location()}")
        return "".join(out) + ev.tp.show_args() + "\n"

    def location(self, p: TraceKprobe) -> str:
        return p.location()

    # --------------------------------------------------------------- files
    def profile_text(self) -> str:
        """``kprobe_profile``: name, hits, misses (``"  %-44s %15lu %15lu\\n"``)."""
        return "".join(f"  {tk.name:<44} {tk.nhit:>15} {tk.missed():>15}\n"
                       for tk in self.probes())

    # --------------------------------------------------------------- parsing
    def parse(self, argv: list[str]) -> int:
        """__trace_kprobe_create()."""
        c = argv[0][0]
        if c == "r":
            is_return = True
        elif c == "p":
            is_return = False
        else:
            return -errno.ECANCELED
        if len(argv) < 2:
            return -errno.ECANCELED
        ctx = ParseContext(flags=TPARG_FL_KERNEL, btf=self.btf, log=self.log)
        with self.parsing(argv, ctx):
            return self._create(argv, is_return, ctx)

    def _create(self, argv: list[str], is_return: bool, ctx: ParseContext) -> int:
        a0 = argv[0]
        colon, event = self.event_part(a0)
        if a0[1:2] and isdigit(a0[1]) and not is_return:
            self.log_err(1, ProbeErr.BAD_MAXACT_TYPE)
            return -errno.EINVAL
        ret, maxactive = self.parse_maxactive(a0, colon, KRETPROBE_MAXACTIVE_MAX)
        if ret:
            return ret

        symbol: str | None = None
        offset = 0
        err, addr = kstrtoul(argv[1], 0)
        if err:
            addr = 0
            self.log_set_index(1)
            if "/" in argv[1] and ":" in argv[1]:
                return -errno.ECANCELED         # a uprobe
            ret, symbol, suffix = self.parse_return_suffix(argv[1], 0)
            if ret:
                return ret
            is_return |= suffix
            ret, symbol, offset = split_symbol_offset(symbol)
            if ret or offset < 0 or offset > UINT_MAX:
                self.log_err(0, ProbeErr.BAD_PROBE_ADDR)
                return -errno.EINVAL
            ret = self._validate_probe_symbol(symbol)
            if ret:
                self.log_err(0, ProbeErr.NON_UNIQ_SYMBOL if ret == -errno.EADDRNOTAVAIL
                             else ProbeErr.BAD_PROBE_ADDR)
                return -errno.EINVAL
            if is_return:
                ctx.flags |= TPARG_FL_RETURN
            ret = self.core.kprobe_on_func_entry(0, symbol, offset)
            if ret == 0 and not is_return:
                ctx.flags |= TPARG_FL_FENTRY
            if ret == -errno.EINVAL and is_return:
                self.log_err(0, ProbeErr.BAD_RETPROBE)
                return -errno.EINVAL

        c = "r" if is_return else "p"
        ret, name, group = self.name_probe_event(
            event, colon + 1, KPROBE_EVENT_SYSTEM,
            f"{c}_{symbol}_{offset}" if symbol else f"{c}_0x{hashed_ptr(addr)}")
        if ret:
            return ret

        ctx.funcname = symbol
        ret, args = self.expand_args(argv[2:], ctx)
        if ret:
            return ret
        tk = TraceKprobe(self, group, name, addr, symbol, offset, maxactive, len(args), is_return)
        return self.create_probe(tk, args, ctx, is_return)

    def setup_entry_data(self, p: TraceKprobe) -> None:
        assert p.rp is not None
        p.rp.entry_handler = p.kretprobe_entry_handler
        p.rp.data_size = p.tp.entry_data_size()

    def _validate_probe_symbol(self, symbol: str) -> int:
        """``validate_probe_symbol``: EADDRNOTAVAIL when not unique, ENOENT when absent."""
        mod: str | None = None
        mod_name, colon, sym = symbol.partition(":")
        if colon:
            if mod_name not in self.core.modules():
                return 0
            mod = mod_name
        else:
            sym = symbol
        count = self.core.syms.count(mod, sym)
        if count > 1:
            return -errno.EADDRNOTAVAIL
        if count == 0:
            return -errno.ENOENT
        return 0

    def _module_exist(self, tk: TraceKprobe) -> bool:
        """``trace_kprobe_module_exist``."""
        if not tk.symbol:
            return False
        mod, colon, _ = tk.symbol.partition(":")
        if not colon:
            return True
        return mod in self.core.modules()

    # --------------------------------------------------------------- registration
    def _address(self, tk: TraceKprobe) -> int:
        """``trace_kprobe_address``."""
        if tk.symbol:
            a = self.core.lookup_name(tk.symbol)
            return (a + tk.kp.offset) & M64 if a else 0
        return tk.kp.addr

    def _within_notrace_func(self, tk: TraceKprobe) -> bool:
        core = self.core

        def notrace(addr: int) -> bool:
            r = core.ks.lookup_addr(addr) if addr else None
            if r is None:
                return False
            start = addr - r[1]
            return not core.ftrace_location_range(start, start + r[2] - 1)

        addr = self._address(tk)
        if not notrace(addr):
            return False
        r = core.ks.lookup_addr(addr)
        if r is not None:
            name = r[0]
            dot = name.find(".")
            if dot < 0:
                return True
            base = core.lookup_name(name[:dot])
            if base:
                return notrace(base)
        return True

    def same_location(self, a: TraceKprobe, b: TraceKprobe) -> bool:
        """trace_kprobe_has_same_kprobe(): trace_kprobe_symbol() ("unknown" for an
        address) and the offset."""
        return (a.symbol or "unknown") == (b.symbol or "unknown") and a.kp.offset == b.kp.offset

    def probe_type_differs(self, p: TraceKprobe, old: TraceKprobe) -> bool:
        return p.is_return() != old.is_return()

    def register_probe(self, p: TraceKprobe) -> int:
        """``__register_trace_kprobe``; a probe on a module not loaded yet waits for it."""
        ret = self._register_kprobe(p)
        if ret == -errno.ENOENT and not self._module_exist(p):
            self.kernel.printk("trace_kprobe: This probe might be able to register after "
                               "target module is loaded. Continue.")
            ret = 0
        return ret

    def _register_kprobe(self, tk: TraceKprobe) -> int:
        if tk.kp.registered:
            return -errno.EINVAL
        if self._within_notrace_func(tk):
            addr = self._address(tk)
            self.kernel.printk(f"trace_kprobe: Could not probe notrace function "
                               f"{self.core.ks.format_ps(addr)}")
            return -errno.EINVAL
        ret = self.update_args(tk, self.core.lookup_name)
        if ret:
            return ret
        if tk.event.is_enabled():
            tk.kp.flags &= ~KPROBE_FLAG_DISABLED
        else:
            tk.kp.flags |= KPROBE_FLAG_DISABLED
        if tk.rp is not None:
            return self.core.register_kretprobe(tk.rp)
        return self.core.register_kprobe(tk.kp)

    def unregister_probe(self, p: TraceKprobe) -> None:
        """``__unregister_trace_kprobe``."""
        if p.kp.registered:
            if p.rp is not None:
                self.core.unregister_kretprobe(p.rp)
            else:
                self.core.unregister_kprobe(p.kp)
            if p.kp.symbol_name:
                p.kp.addr = 0

    # --------------------------------------------------------------- enable/disable
    def enable_probes(self, pe: TraceProbeEvent[TraceKprobe]) -> int:
        """``__enable_trace_kprobe`` for each probe not gone."""
        for tk in pe.probes:
            if tk.kp.registered and not tk.kp.flags & KPROBE_FLAG_GONE:
                ret = self.core.enable_kprobe(tk.kp)
                if ret:
                    return ret
        return 0

    def disable_probes(self, pe: TraceProbeEvent[TraceKprobe]) -> None:
        for tk in pe.probes:
            if tk.kp.registered:
                self.core.disable_kprobe(tk.kp)


def boot(kernel: Kernel) -> KprobeEvents:
    """core_initcall(init_kprobe_trace_early): the kind registered with dyn_event, on the
    kprobes core (``k.kprobes``)."""
    map_banner(kernel.mem)     # @linux_proc_banner fetches read .rodata
    kind = KprobeEvents(kernel)
    kernel.dynevent.register(kind)
    return kind
