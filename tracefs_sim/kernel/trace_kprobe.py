"""Kprobe-based dynamic events: the ``p`` and ``r`` kinds (kernel/trace/trace_kprobe.c),
on a model of the kprobes core they use (kernel/kprobes.c, arch/x86/kernel/kprobes).

Grammar (``__trace_kprobe_create``)::

    p[:[GRP/][EVENT]] [MOD:]SYM[+OFFS]|MEMADDR [FETCHARGS]
    r[MAXACTIVE][:[GRP/][EVENT]] [MOD:]SYM[+0] [FETCHARGS]     (or p ... SYM%return)

Default group ``kprobes``; default names ``p_SYM_OFFS`` / ``r_SYM_OFFS`` (``p_0x%p`` for an
address).  Several definitions with one GRP/EVENT share a ``ProbeEvent`` (the multiprobe
append of trace_fprobe.py, whose event call and printer are reused: the kprobe record
heads and print functions are the fprobe ones).

The kprobes core (``KprobeCore``, ``k.kprobes``) follows kernel/kprobes.c with
CONFIG_KPROBES_ON_FTRACE and x86 IBT:

* ``_kprobe_addr``: SYM+OFFS is re-based on the symbol that contains it; with an endbr64
  at the function start, ``+0`` and ``+4`` both mean the ftrace call site at ``+4``
  (``arch_adjust_kprobe_addr``), which is also the only "function entry";
* a probe on an ftrace location is armed through one shared static ``ftrace_ops``
  (``kprobe_ftrace_ops``, FTRACE_OPS_FL_SAVE_REGS, callback ``kprobe_ftrace_handler``), so
  it shows in ``enabled_functions`` like on the real kernel; any other offset is an int3
  breakpoint, which must be on an instruction boundary (``can_probe`` → -EILSEQ).  Each
  function gets a deterministic instruction layout: endbr64 (4 bytes, when ftrace's
  ``rec->ip`` is start+4), ``call __fentry__`` (5 bytes), then pseudo-random x86 lengths
  seeded by the function address;
* CONFIG_KPROBE_EVENTS_ON_NOTRACE is off: only functions with an ftrace record can be
  probed (``within_notrace_func`` → "Failed to register probe event");
* probes at one address aggregate; a kretprobe is a kprobe at the entry whose pre-handler
  hooks the return (``Ftrace.push_ret_hook``) from a pool of ``maxactive`` instances
  (default ``max(10, 2 * possible CPUs)``, written back into ``rp.maxactive`` — hence the
  ``r10:`` of ``kprobe_events``).

Breakpoint probes fire from the workload: a function whose index is in
``KprobeCore.bp_funcs`` must call ``KprobeCore.breakpoint_hit(idx, parent_ip, regs)``
after its ftrace call site (see ``breakpoint_hit``).

Registers: the common parser (trace_probe.py) has no ``%REG`` support yet, so this module
adds ``regs_query_register_offset`` to it at import (``_install_register_parser``);
fetching is this module's own ``process_fetch_insn`` (FETCH_OP_REG), as in the kernel
where each probe kind has its own.
"""

from __future__ import annotations

import bisect
import errno
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import trace_probe as _tp
from .trace_dynevent import DynEvent, DynEvents
from .trace_fprobe import FENTRY_HEAD_SIZE, FEXIT_HEAD_SIZE, ProbeEvent
from .trace_probe import (
    MAX_ARGSTR_LEN,
    MAX_EVENT_NAME_LEN,
    MAX_TRACE_ARGS,
    PROBE_PRINT_NORMAL,
    PROBE_PRINT_RETURN,
    TP_FLAG_PROFILE,
    TP_FLAG_TRACE,
    TPARG_FL_FENTRY,
    TPARG_FL_FPROBE,
    TPARG_FL_KERNEL,
    TPARG_FL_RETURN,
    TPARG_FL_TEVENT,
    FetchEnv,
    FetchInsn,
    FetchOp,
    ParseContext,
    ProbeErr,
    TraceProbe,
    argv_split,
    compare_arg_type,
    isdigit,
    kstrtol,
    kstrtouint,
    kstrtoul,
    match_command_args,
    sanitize_event_name,
    set_print_fmt,
    store_trace_entry_data,
    traceprobe_expand_dentry_args,
    traceprobe_expand_meta_args,
    traceprobe_finish_parse,
    traceprobe_get_entry_data_size,
    traceprobe_parse_event_name,
    traceprobe_parse_probe_arg,
    traceprobe_update_arg,
)
from .version import map_banner

if TYPE_CHECKING:
    from .core import Kernel

KPROBE_EVENT_SYSTEM = "kprobes"
KRETPROBE_MAXACTIVE_MAX = 4096
KRETPROBE_MAX_DATA_SIZE = 4096
UINT_MAX = 0xFFFFFFFF
M64 = 0xFFFFFFFFFFFFFFFF

TRACE_EVENT_FL_KPROBE = 1 << 6      # trace_events.py TRACE_EVENT_FL_KPROBE

# struct kprobe flags (include/linux/kprobes.h)
KPROBE_FLAG_GONE = 1
KPROBE_FLAG_DISABLED = 2
KPROBE_FLAG_OPTIMIZED = 4
KPROBE_FLAG_FTRACE = 8
KPROBE_HASH_BITS = 6
GOLDEN_RATIO_64 = 0x61C8864680B583EB
JMP32_INSN_SIZE = 5
MAX_INSN_SIZE = 15
SYSCTL_OPTIMIZATION = "debug/kprobes-optimization"
KPROBE_FLAG_ON_FUNC_ENTRY = 16

MCOUNT_INSN_SIZE = 5        # call __fentry__
ENDBR_INSN_SIZE = 4

_Q = struct.Struct("<Q")

# --------------------------------------------------------------------------- registers
# arch/x86/kernel/ptrace.c regoffset_table (x86_64): name -> offsetof(struct pt_regs, name)
PT_REGS_OFFSETS: dict[str, int] = {
    "r15": 0, "r14": 8, "r13": 16, "r12": 24, "r11": 48, "r10": 56, "r9": 64, "r8": 72,
    "bx": 40, "cx": 88, "dx": 96, "si": 104, "di": 112, "bp": 32, "ax": 80,
    "orig_ax": 120, "ip": 128, "cs": 136, "flags": 144, "sp": 152, "ss": 160,
}
_OFFSET_NAMES = {v: k for k, v in PT_REGS_OFFSETS.items()}
# argument registers of the x86_64 calling convention, in order
_ARG_REG_OFFSETS = {112: 0, 104: 1, 96: 2, 88: 3, 72: 4, 64: 5}


def regs_query_register_offset(name: str) -> int:
    """``regs_query_register_offset``: the pt_regs offset of ``name`` or -EINVAL."""
    return PT_REGS_OFFSETS.get(name, -errno.EINVAL)


def _install_register_parser() -> None:
    """Give trace_probe's ``parse_probe_arg`` its ``case '%'`` (named register).

    The common parser only knows the eprobe/fprobe branch of ``%REG`` (BAD_VAR) and logs
    BAD_REG_NAME for everything else; kprobes and uprobes need FETCH_OP_REG for a valid
    x86_64 register name.  The wrapper handles exactly that case and defers to the
    original otherwise, so error texts and carets stay the parser's.  It is skipped when
    trace_probe.py grows its own ``regs_query_register_offset``.
    """
    if hasattr(_tp, "regs_query_register_offset"):
        return
    orig = _tp._parse_probe_arg
    if getattr(orig, "__handles_regs__", False):
        return

    def parse_probe_arg(arg: str, prog: Any, ctx: ParseContext) -> int:
        if arg[:1] == "%" and not ctx.flags & (TPARG_FL_TEVENT | TPARG_FL_FPROBE):
            off = regs_query_register_offset(arg[1:])
            if off >= 0:
                insn = prog.cur()
                insn.op = FetchOp.REG
                insn.param = off
                return 0
        return orig(arg, prog, ctx)

    parse_probe_arg.__handles_regs__ = True  # type: ignore[attr-defined]
    _tp._parse_probe_arg = parse_probe_arg


_install_register_parser()


class PtRegs:
    """The pt_regs a kprobe handler sees, over the workload's register set (mm.Regs).

    ``ip`` is what the handler reads in regs->ip (probe address + 1, as after int3);
    the argument registers come from the call's arguments, ``ax`` from the return value.
    """

    __slots__ = ("src", "ip", "parent_ip", "retval", "user")

    def __init__(self, src: Any, ip: int, parent_ip: int = 0, retval: int | None = None,
                 user: bool = False) -> None:
        self.src = src
        self.ip = ip
        self.parent_ip = parent_ip
        self.retval = retval
        self.user = user

    def get_kernel_argument(self, n: int) -> int:
        src = self.src
        return src.get_kernel_argument(n) & M64 if src is not None else 0

    def return_value(self) -> int:
        if self.retval is not None:
            return self.retval & M64
        src = self.src
        return src.return_value() & M64 if src is not None else 0

    def kernel_stack_nth(self, n: int) -> int:
        src = self.src
        return src.kernel_stack_nth(n) & M64 if src is not None else 0

    def stack_pointer(self) -> int:
        src = self.src
        if src is not None:
            return src.stack_pointer() & M64
        return 0x7FFC_0000_3F00 if self.user else 0xFFFF_C900_0000_3F00

    def get_register(self, offset: int) -> int:
        """``regs_get_register``."""
        n = _ARG_REG_OFFSETS.get(offset)
        if n is not None:
            return self.get_kernel_argument(n)
        name = _OFFSET_NAMES.get(offset)
        if name == "ax":
            return self.return_value()
        if name == "sp":
            return self.stack_pointer()
        if name == "ip":
            return self.ip & M64
        if name == "flags":
            return 0x246
        if name == "cs":
            return 0x33 if self.user else 0x10
        if name == "ss":
            return 0x2B if self.user else 0x18
        if name == "orig_ax":
            return M64
        if name == "bp":
            return (self.stack_pointer() + 0x28) & M64
        return 0


# --------------------------------------------------------------------------- fetching
FetchFn = Callable[[list[FetchInsn], FetchEnv, "bytearray | None", int, int], int]


def kprobe_process_fetch_insn(code: list[FetchInsn], env: FetchEnv, dest: bytearray | None,
                              doff: int, base: int) -> int:
    """trace_kprobe.c ``process_fetch_insn``: FETCH_OP_REG here, the rest is common."""
    pc = 1 if code[0].op == FetchOp.NOP_SYMBOL else 0
    insn = code[pc]
    if insn.op == FetchOp.REG:
        regs = env.regs
        get = getattr(regs, "get_register", None)
        val = get(insn.param) & M64 if get is not None else 0
        return _tp._fetch_bottom(code, pc + 1, val, env, dest, doff, base, None)
    return _tp.process_fetch_insn(code, env, dest, doff, base)


def get_data_size(tp: TraceProbe, env: FetchEnv, fetch: FetchFn) -> int:
    """``__get_data_size`` with the kind's fetch function."""
    total = 0
    for arg in tp.args:
        if arg.dynamic:
            n = fetch(arg.code, env, None, 0, 0)
            if n > 0:
                total += n
    return total


def store_trace_args(buf: bytearray, data_off: int, tp: TraceProbe, env: FetchEnv,
                     header_size: int, maxlen: int, fetch: FetchFn) -> None:
    """``store_trace_args`` (trace_probe_tmpl.h) with the kind's fetch function."""
    base = data_off - header_size
    dyn = data_off + tp.size
    for arg in tp.args:
        doff = data_off + arg.offset
        if arg.dynamic:
            buf[doff:doff + 4] = (((maxlen & 0xFFFF) << 16) | ((dyn - base) & 0xFFFF)).to_bytes(4, "little")
        ret = fetch(arg.code, env, buf, doff, base)
        if arg.dynamic and ret > 0:
            dyn += ret
            maxlen -= ret


# --------------------------------------------------------------------------- insn layout
# A plausible length mix of x86-64 kernel instructions.
_INSN_LENGTHS = (1, 2, 2, 3, 3, 3, 3, 4, 4, 4, 5, 5, 5, 5, 6, 7, 7, 7, 8, 10)


def insn_boundary(start: int, off: int, fentry_at: int) -> bool:
    """Is ``start+off`` on an instruction boundary of the simulated function at ``start``?

    ``fentry_at`` is the offset of the ``call __fentry__`` (0, 4 after an endbr64, or -1
    when the symbol has no ftrace site); the body is deterministic per address.
    """
    if off < 0:
        return False
    pos = 0
    if fentry_at == ENDBR_INSN_SIZE:
        if off < ENDBR_INSN_SIZE:
            return off == 0
        pos = ENDBR_INSN_SIZE
    if fentry_at >= 0:
        if off < pos + MCOUNT_INSN_SIZE:
            return off == pos
        pos += MCOUNT_INSN_SIZE
    state = ((start * 0x9E3779B97F4A7C15) & M64) | 1
    n = len(_INSN_LENGTHS)
    while pos < off:
        state ^= (state << 13) & M64
        state ^= state >> 7
        state ^= (state << 17) & M64
        pos += _INSN_LENGTHS[(state >> 11) % n]
    return pos == off


def _insn_boostable(addr: int) -> bool:
    """Whether the simulated instruction at ``addr`` can run out of line (can_boost()):
    most can; about one in five (indirect jumps, int3, rip-relative forms…) cannot."""
    return ((addr * 0x9E3779B97F4A7C15) & M64) >> 61 != 0 or addr % 3 != 0


def _hash_ptr(addr: int, bits: int) -> int:
    """hash_64(): the bucket of ``addr`` in a table of 2**bits."""
    return ((addr * GOLDEN_RATIO_64) & M64) >> (64 - bits)


# --------------------------------------------------------------------------- kprobes core
class Kprobe:
    """``struct kprobe`` (the fields the simulation uses)."""

    __slots__ = ("addr", "symbol_name", "offset", "pre_handler", "flags", "nmissed", "owner",
                 "registered", "rp")

    def __init__(self, addr: int = 0, symbol_name: str | None = None, offset: int = 0) -> None:
        self.addr = addr
        self.symbol_name = symbol_name
        self.offset = offset
        self.pre_handler: Callable[[Kprobe, PtRegs], int] | None = None
        self.flags = 0
        self.nmissed = 0
        self.owner: Any = None
        self.registered = False
        self.rp: Kretprobe | None = None

    def disabled(self) -> bool:
        return bool(self.flags & (KPROBE_FLAG_DISABLED | KPROBE_FLAG_GONE))


RetHandler = Callable[["Kretprobe", bytearray, int, PtRegs], int]


class Kretprobe:
    """``struct kretprobe`` on rethook: a pool of ``maxactive`` instances."""

    __slots__ = ("kp", "handler", "entry_handler", "maxactive", "nmissed", "data_size",
                 "free", "active")

    def __init__(self, kp: Kprobe, maxactive: int = 0) -> None:
        self.kp = kp
        kp.rp = self
        self.handler: RetHandler | None = None
        self.entry_handler: RetHandler | None = None
        self.maxactive = maxactive
        self.nmissed = 0
        self.data_size = 0
        self.free = 0
        self.active = False


class _Aggr:
    """The probes at one address (the kernel's aggr_kprobe when there are several)."""

    __slots__ = ("addr", "probes", "ftrace", "armed", "func_index", "optimized")

    def __init__(self, addr: int, ftrace: bool, func_index: int) -> None:
        self.addr = addr
        self.probes: list[Kprobe] = []
        self.ftrace = ftrace
        self.armed = False
        self.func_index = func_index
        self.optimized = False    # replaced by a jump (optprobe) instead of an int3

    def all_disabled(self) -> bool:
        return all(p.disabled() for p in self.probes)


# Traceable functions marked NOKPROBE_SYMBOL in 6.12 (kprobes.c, x86 kprobes, notifiers).
NOKPROBE_FUNCTIONS = frozenset((
    "get_kprobe", "aggr_pre_handler", "aggr_post_handler", "opt_pre_handler",
    "pre_handler_kretprobe", "kprobe_ftrace_handler", "kprobe_int3_handler",
    "kprobe_exceptions_notify", "kprobes_inc_nmissed_count", "kprobe_fault_handler",
    "kprobe_debug_handler", "atomic_notifier_call_chain", "notifier_call_chain",
    "kprobe_busy_begin", "kprobe_busy_end", "optimized_callback", "setup_singlestep",
    "reenter_kprobe", "kretprobe_find_ret_addr", "kretprobe_rethook_handler",
    "arch_rethook_prepare", "arch_rethook_fixup_return", "arch_rethook_trampoline_callback",
    "rethook_try_get", "rethook_hook", "rethook_recycle", "rethook_find_ret_addr",
    "rethook_trampoline_handler", "fixup_exception", "dump_kprobe",
))
# [start, end) symbol pairs of the kprobe blacklist areas (generic + x86)
_BLACKLIST_AREAS = (("__kprobes_text_start", "__kprobes_text_end"),
                    ("__entry_text_start", "__entry_text_end"),
                    ("__irqentry_text_start", "__irqentry_text_end"),
                    ("__softirqentry_text_start", "__softirqentry_text_end"))


class _SymIndex:
    """Every text symbol by name: kallsyms_lookup_name, number_of_same_symbols."""

    def __init__(self, ks: Any) -> None:
        self.by_name: dict[str, list[tuple[int, str | None]]] = {}
        for line in ks.text_lines():
            a, _, rest = line.partition(" ")
            rest = rest[2:]
            name, tab, mod = rest.partition("\t")
            m = mod[1:-1] if tab else None
            self.by_name.setdefault(name, []).append((int(a, 16), m))

    def lookup_name(self, name: str) -> int:
        """``kallsyms_lookup_name`` (vmlinux first, then ``[mod:]sym`` in modules)."""
        ents = self.by_name.get(name)
        if ents:
            for a, m in ents:
                if m is None:
                    return a
        mod, colon, sym = name.partition(":")
        if colon:
            for a, m in self.by_name.get(sym, ()):
                if m == mod:
                    return a
            return 0
        return ents[0][0] if ents else 0

    def count(self, mod: str | None, name: str) -> int:
        """``number_of_same_symbols``: vmlinux + every module, or one module."""
        ents = self.by_name.get(name, ())
        if mod is None:
            return len(ents)
        return sum(1 for _a, m in ents if m == mod)


class KprobeCore:
    """kernel/kprobes.c of one kernel: the kprobe table, arming, handlers."""

    def __init__(self, kernel: Kernel | None = None, kallsyms: Any = None, ftrace: Any = None) -> None:
        self.kernel = kernel
        self.ks = kallsyms if kallsyms is not None else (kernel.kallsyms if kernel is not None else None)
        self.ftrace = ftrace if ftrace is not None else getattr(kernel, "ftrace", None)
        self.table: dict[int, _Aggr] = {}
        self.bp_funcs: dict[int, list[_Aggr]] = {}   # int3 probes by ftrace record index
        self.nr_bp_armed = 0
        self.ftrace_enabled = 0                       # kprobe_ftrace_enabled
        self.running = False                          # kprobe_running() on this CPU
        self._syms: _SymIndex | None = None
        self._rec_ips: list[int] | None = None
        self._rec_index: dict[int, int] | None = None
        self._blacklist: list[tuple[int, int]] | None = None
        self.ops: Any = None
        self.allow_optimization = True                # sysctl debug/kprobes-optimization
        if kernel is not None:
            kernel.sysctls[SYSCTL_OPTIMIZATION] = (self.sysctl_read, self.sysctl_write)
            kernel.debugfs["kprobes/list"] = self.list_text
        if self.ftrace is not None:
            from .ftrace import OPS_FL_SAVE_REGS, FtraceOps

            self.ops = FtraceOps(self.kprobe_ftrace_handler, OPS_FL_SAVE_REGS, self,
                                 core_data=True, name="kprobe_ftrace_ops")

    # ------------------------------------------------------------------ symbols
    @property
    def syms(self) -> _SymIndex:
        if self._syms is None:
            self._syms = _SymIndex(self.ks)
        return self._syms

    def lookup_name(self, name: str) -> int:
        return self.syms.lookup_name(name)

    def modules(self) -> list[str]:
        return list(getattr(self.ks, "modules", ()))

    def _records(self) -> tuple[list[int], dict[int, int]]:
        if self._rec_ips is None:
            addrs = self.ftrace.ips if self.ftrace is not None else self.ks.addrs
            self._rec_index = {}
            for i, a in enumerate(addrs):
                self._rec_index.setdefault(a, i)
            self._rec_ips = sorted(self._rec_index)
        assert self._rec_index is not None
        return self._rec_ips, self._rec_index

    def ftrace_location(self, addr: int) -> int | None:
        """The ftrace record index at exactly ``addr`` (ftrace_location(addr) == addr)."""
        return self._records()[1].get(addr)

    def ftrace_location_range(self, start: int, end: int) -> bool:
        ips = self._records()[0]
        i = bisect.bisect_left(ips, start)
        return i < len(ips) and ips[i] <= end

    def fentry_offset(self, start: int) -> int:
        """Where ``call __fentry__`` sits in the function at ``start`` (-1: none)."""
        idx = self._records()[1]
        if start + ENDBR_INSN_SIZE in idx:
            return ENDBR_INSN_SIZE
        if start in idx:
            return 0
        return -1

    def func_index(self, addr: int) -> int:
        """ftrace record index of the function containing ``addr`` (-1: none)."""
        r = self.ks.lookup_addr(addr)
        if r is None:
            return -1
        start = addr - r[1]
        idx = self._records()[1]
        i = idx.get(start + ENDBR_INSN_SIZE)
        if i is None:
            i = idx.get(start)
        return -1 if i is None else i

    # ------------------------------------------------------------------ addresses
    def _kprobe_addr(self, addr: int, symbol: str | None, offset: int) -> tuple[int, bool]:
        """``_kprobe_addr``: (address or -errno, on_func_entry)."""
        if (symbol and addr) or (not symbol and not addr):
            return -errno.EINVAL, False
        if symbol:
            addr = self.lookup_name(symbol)
            if not addr:
                return -errno.ENOENT, False
        addr = (addr + offset) & M64
        r = self.ks.lookup_addr(addr)
        if r is None:
            return -errno.ENOENT, False
        off = r[1]
        start = addr - off
        # arch_adjust_kprobe_addr(): skip the endbr64 at +0
        if self.fentry_offset(start) == ENDBR_INSN_SIZE:
            on_entry = off in (0, ENDBR_INSN_SIZE)
            if on_entry:
                off = ENDBR_INSN_SIZE
        else:
            on_entry = off == 0
        return start + off, on_entry

    def kprobe_on_func_entry(self, addr: int, symbol: str | None, offset: int) -> int:
        a, on_entry = self._kprobe_addr(addr, symbol, offset)
        if a < 0:
            return a
        return 0 if on_entry else -errno.EINVAL

    def _in_blacklist(self, addr: int) -> bool:
        if self._blacklist is None:
            areas = []
            for s, e in _BLACKLIST_AREAS:
                a, b = self.lookup_name(s), self.lookup_name(e)
                if a and b and b > a:
                    areas.append((a, b))
            self._blacklist = areas
        if any(a <= addr < b for a, b in self._blacklist):
            return True
        r = self.ks.lookup_addr(addr)
        if r is None:
            return False
        name = r[0]
        if name.partition(".")[0] in NOKPROBE_FUNCTIONS:
            return True
        # is_cfi_preamble_symbol()
        return name.startswith(("__cfi_", "__pfx_"))

    def _can_probe(self, addr: int) -> bool:
        r = self.ks.lookup_addr(addr)
        if r is None:
            return False
        start = addr - r[1]
        return insn_boundary(start, r[1], self.fentry_offset(start))

    # ------------------------------------------------------------------ registration
    def register_kprobe(self, p: Kprobe) -> int:
        addr, on_entry = self._kprobe_addr(p.addr, p.symbol_name, p.offset)
        if addr < 0:
            return addr
        if p.registered:
            return -errno.EINVAL
        p.addr = addr
        p.flags &= KPROBE_FLAG_DISABLED
        p.nmissed = 0
        # check_kprobe_address_safe()
        rec = self.ftrace_location(addr)
        if rec is not None:
            p.flags |= KPROBE_FLAG_FTRACE
        if self._in_blacklist(addr):
            return -errno.EINVAL
        if on_entry:
            p.flags |= KPROBE_FLAG_ON_FUNC_ENTRY
        ap = self.table.get(addr)
        if ap is not None:
            ap.probes.append(p)
            p.registered = True
            if not ap.armed and not p.disabled():
                ret = self._arm(ap)
                if ret:
                    ap.probes.remove(p)
                    p.registered = False
                    return ret
            return 0
        if rec is None and not self._can_probe(addr):
            return -errno.EILSEQ
        ap = _Aggr(addr, rec is not None, rec if rec is not None else self.func_index(addr))
        ap.probes.append(p)
        self.table[addr] = ap
        p.registered = True
        if not p.disabled():
            ret = self._arm(ap)
            if ret:
                del self.table[addr]
                p.registered = False
                return ret
        return 0

    def unregister_kprobe(self, p: Kprobe) -> None:
        ap = self.table.get(p.addr)
        if ap is None or p not in ap.probes:
            return
        ap.probes.remove(p)
        p.registered = False
        if not ap.probes or ap.all_disabled():
            if ap.armed:
                self._disarm(ap)
        if not ap.probes:
            del self.table[p.addr]

    def enable_kprobe(self, p: Kprobe) -> int:
        ap = self.table.get(p.addr)
        if ap is None or p not in ap.probes or p.flags & KPROBE_FLAG_GONE:
            return -errno.EINVAL
        p.flags &= ~KPROBE_FLAG_DISABLED
        if not ap.armed:
            ret = self._arm(ap)
            if ret:
                p.flags |= KPROBE_FLAG_DISABLED
                return ret
        return 0

    def disable_kprobe(self, p: Kprobe) -> int:
        ap = self.table.get(p.addr)
        if ap is None or p not in ap.probes:
            return -errno.EINVAL
        p.flags |= KPROBE_FLAG_DISABLED
        if ap.armed and ap.all_disabled():
            self._disarm(ap)
        return 0

    def register_kretprobe(self, rp: Kretprobe) -> int:
        kp = rp.kp
        ret = self.kprobe_on_func_entry(kp.addr, kp.symbol_name, kp.offset)
        if ret:
            return ret
        if rp.data_size > KRETPROBE_MAX_DATA_SIZE:
            return -errno.E2BIG
        kp.pre_handler = self._pre_handler_kretprobe
        if rp.maxactive <= 0:
            ncpus = self.kernel.nr_cpus if self.kernel is not None else 1
            rp.maxactive = max(10, 2 * ncpus)
        rp.free = rp.maxactive
        rp.nmissed = 0
        rp.active = True
        ret = self.register_kprobe(kp)
        if ret:
            rp.active = False
        return ret

    def unregister_kretprobe(self, rp: Kretprobe) -> None:
        rp.active = False
        self.unregister_kprobe(rp.kp)

    # ------------------------------------------------------------------ optprobes
    def can_optimize(self, addr: int) -> bool:
        """arch/x86 ``can_optimize()`` + ``copy_optimized_instructions()`` on the simulated
        instruction layout: a 5-byte relative jump must fit in the function, and every
        instruction it covers must be relocatable (boostable) — which instructions are is
        a deterministic property of the address, as their bytes would be."""
        r = self.ks.lookup_addr(addr)
        if r is None or self._in_blacklist(addr):
            return False
        _name, off, size, _mod = r
        if size - off < JMP32_INSN_SIZE:
            return False
        start = addr - off
        end = off + JMP32_INSN_SIZE
        pos = off
        while pos < end:
            n = 1
            while n < MAX_INSN_SIZE and not insn_boundary(start, pos + n, self.fentry_offset(start)):
                n += 1
            if not _insn_boostable(start + pos):
                return False
            pos += n
        return True

    def _optimize(self, ap: _Aggr) -> None:
        """``optimize_kprobe()``: only int3 probes, while allowed and enabled.  The kernel
        queues the work for the optimizer (OPTIMIZE_DELAY); here it is done at once."""
        ap.optimized = (self.allow_optimization and ap.armed and not ap.ftrace
                        and not ap.all_disabled() and self.can_optimize(ap.addr))

    def sysctl_read(self) -> str:
        return f"{int(self.allow_optimization)}\n"

    def sysctl_write(self, text: str) -> None:
        """proc_kprobes_optimization_handler: proc_dointvec_minmax in [0, 1]."""
        from .errors import KernelError

        try:
            val = int(text.strip() or "x", 0)
        except ValueError:
            raise KernelError(errno.EINVAL) from None
        if val not in (0, 1):
            raise KernelError(errno.EINVAL)
        self.allow_optimization = bool(val)
        for ap in self.table.values():
            self._optimize(ap)

    def list_text(self) -> str:
        """debugfs kprobes/list: the kprobe hash table in bucket order (hash_ptr of the
        address, KPROBE_HASH_BITS), newest first in a bucket, one line per probe."""
        buckets: dict[int, list[_Aggr]] = {}
        for ap in self.table.values():
            buckets.setdefault(_hash_ptr(ap.addr, KPROBE_HASH_BITS), []).insert(0, ap)
        out = []
        for b in sorted(buckets):
            for ap in buckets[b]:
                r = self.ks.lookup_addr(ap.addr)
                for p in ap.probes:
                    kind = "r" if p.rp is not None else "k"
                    if r is not None:
                        head = f"{ap.addr:016x}  {kind}  {r[0]}+{r[1]:#x}  {r[3] or ' '} "
                    else:
                        head = f"{ap.addr:016x}  {kind}  {ap.addr:#x} "
                    gone = bool(p.flags & KPROBE_FLAG_GONE)
                    out.append(head + ("[GONE]" if gone else "")
                               + ("[DISABLED]" if p.disabled() and not gone else "")
                               + ("[OPTIMIZED]" if ap.optimized else "")
                               + ("[FTRACE]" if ap.ftrace else "") + "\n")
        return "".join(out)

    # ------------------------------------------------------------------ arming
    def _arm(self, ap: _Aggr) -> int:
        if ap.ftrace:
            ret = self._arm_ftrace(ap.addr)
            if ret:
                return ret
        else:
            self.bp_funcs.setdefault(ap.func_index, []).append(ap)
            self.nr_bp_armed += 1
        ap.armed = True
        self._optimize(ap)
        return 0

    def _disarm(self, ap: _Aggr) -> None:
        if ap.ftrace:
            self._disarm_ftrace(ap.addr)
        else:
            lst = self.bp_funcs.get(ap.func_index)
            if lst is not None and ap in lst:
                lst.remove(ap)
                self.nr_bp_armed -= 1
                if not lst:
                    del self.bp_funcs[ap.func_index]
        ap.armed = False
        ap.optimized = False

    def _arm_ftrace(self, addr: int) -> int:
        """``__arm_kprobe_ftrace`` on kprobe_ftrace_ops."""
        ft = self.ftrace
        if ft is None:
            self.ftrace_enabled += 1
            return 0
        from .errors import KernelError

        try:
            ft.ftrace_set_filter_ip(self.ops, addr, False, False)
        except KernelError as e:
            return -e.errno
        if self.ftrace_enabled == 0:
            try:
                ft.register_ftrace_function(self.ops)
            except KernelError as e:
                try:
                    ft.ftrace_set_filter_ip(self.ops, addr, True, False)
                except KernelError:
                    pass
                return -e.errno
        self.ftrace_enabled += 1
        return 0

    def _disarm_ftrace(self, addr: int) -> None:
        ft = self.ftrace
        if ft is None:
            self.ftrace_enabled -= 1
            return
        from .errors import KernelError

        try:
            if self.ftrace_enabled == 1:
                ft.unregister_ftrace_function(self.ops)
            self.ftrace_enabled -= 1
            ft.ftrace_set_filter_ip(self.ops, addr, True, False)
        except KernelError:
            pass

    # ------------------------------------------------------------------ handlers
    def _run(self, ap: _Aggr, regs: PtRegs) -> None:
        """aggr_pre_handler(): every enabled probe at the address."""
        if self.running:
            for p in ap.probes:
                p.nmissed += 1
            return
        self.running = True
        try:
            for p in list(ap.probes):
                if not p.disabled() and p.pre_handler is not None:
                    p.pre_handler(p, regs)
        finally:
            self.running = False

    def kprobe_ftrace_handler(self, ip: int, parent_ip: int, ops: Any, fregs: Any) -> None:
        """arch/x86/kernel/kprobes/ftrace.c ``kprobe_ftrace_handler``."""
        ap = self.table.get(ip)
        if ap is None or not ap.armed:
            return
        ft = self.ftrace
        bit = ft.recursion_trylock(ip, parent_ip) if ft is not None else 0
        if bit < 0:
            return
        try:
            self._run(ap, PtRegs(fregs, ip + 1, parent_ip))
        finally:
            if ft is not None:
                ft.recursion_unlock(bit)

    def breakpoint_hit(self, idx: int, parent_ip: int, regs: Any) -> None:
        """The int3 probes of function ``idx`` fire (the simulation runs every breakpoint
        of a function once, right after its entry, whatever the offset).

        The workload calls this for a function whose index is in ``bp_funcs``, after its
        ftrace call site, with the same register set it passes to ``func_entry``.
        """
        for ap in list(self.bp_funcs.get(idx, ())):
            if ap.armed:
                self._run(ap, PtRegs(regs, ap.addr + 1, parent_ip))

    def _pre_handler_kretprobe(self, p: Kprobe, regs: PtRegs) -> int:
        """``pre_handler_kretprobe``: take an instance, hook the return."""
        rp = p.rp
        if rp is None or not rp.active:
            return 0
        if rp.free <= 0:
            rp.nmissed += 1
            return 0
        rp.free -= 1
        data = bytearray(rp.data_size)
        if rp.entry_handler is not None and rp.entry_handler(rp, data, 0, regs):
            rp.free += 1
            return 0
        ft = self.ftrace
        k = self.kernel
        if ft is None or k is None:
            rp.free += 1
            return 0
        ft.push_ret_hook(k.sched.current, [self._kretprobe_return, rp, data, regs])
        return 0

    def _kretprobe_return(self, frame: list[Any], retval: int) -> None:
        """The rethook trampoline of a kretprobe instance."""
        rp: Kretprobe = frame[1]
        rp.free += 1
        if not rp.active or rp.handler is None:
            return
        entry: PtRegs = frame[3]
        regs = PtRegs(entry.src, entry.parent_ip, entry.parent_ip, retval)
        rp.handler(rp, frame[2], entry.parent_ip, regs)


# --------------------------------------------------------------------------- trace_kprobe
class TraceKprobe(DynEvent):
    """``struct trace_kprobe``: one ``p``/``r`` definition."""

    def __init__(self, kind: KprobeEvents, group: str, event: str, addr: int,
                 symbol: str | None, offset: int, maxactive: int, nargs: int,
                 is_return: bool) -> None:
        super().__init__(kind)
        self.symbol = symbol
        self.kp = Kprobe(0 if symbol else addr, symbol, offset)
        self.kp.owner = self
        self.rp: Kretprobe | None = None
        if is_return:
            self.rp = Kretprobe(self.kp, maxactive)
            self.rp.handler = kind._kretprobe_dispatcher
        else:
            self.kp.pre_handler = kind._kprobe_dispatcher
        self.nhit = 0
        self.tp = TraceProbe(nr_args=nargs)
        self.event = ProbeEvent(kind, event, group)   # type: ignore[arg-type]
        self.event.probes.append(self)                 # type: ignore[arg-type]
        self.event.call.is_return = is_return
        self.event.call.flags = TRACE_EVENT_FL_KPROBE

    def is_return(self) -> bool:
        return self.rp is not None

    @property
    def name(self) -> str:
        return self.event.name

    @property
    def group(self) -> str:
        return self.event.group

    def missed(self) -> int:
        """``trace_kprobe_missed``."""
        return self.kp.nmissed + (self.rp.nmissed if self.rp is not None else 0)

    def location(self, hash_ptr: Callable[[int], str]) -> str:
        """``SYM+OFFS``, ``SYM`` or ``0x%p`` as show/match print it."""
        if not self.symbol:
            return "0x" + hash_ptr(self.kp.addr)
        if self.kp.offset:
            return f"{self.symbol}+{self.kp.offset}"
        return self.symbol


def _hashed_ptr(addr: int) -> str:
    try:
        from .trace_events import hashed_ptr
    except ImportError:   # pragma: no cover
        return f"{addr:016x}"
    return hashed_ptr(addr)


def split_symbol_offset(symbol: str) -> tuple[int, str, int]:
    """``traceprobe_split_symbol_offset``: (ret, symbol, offset)."""
    cut = min((p for p in (symbol.find("+"), symbol.find("-")) if p >= 0), default=-1)
    if cut < 0:
        return 0, symbol, 0
    ret, off = kstrtol(symbol[cut:], 0)
    if ret:
        return ret, symbol, 0
    return 0, symbol[:cut], off


class KprobeEvents:
    """The ``trace_kprobe_ops`` dyn_event kind of one kernel."""

    def __init__(self, dyn: DynEvents, core: KprobeCore, *, events: Any = None, btf: Any = None,
                 kernel: Kernel | None = None) -> None:
        self.dyn = dyn
        self.core = core
        self.events = events
        self.btf = btf
        self.kernel = kernel

    # --------------------------------------------------------------- helpers
    def _log_set(self, index: int) -> None:
        self.dyn.probe_log.set_index(index)

    def _log_err(self, offset: int, err: ProbeErr) -> None:
        self.dyn.probe_log.err(offset, err)

    def probes(self) -> list[TraceKprobe]:
        return [ev for ev in self.dyn.events if isinstance(ev, TraceKprobe)]

    def find(self, event: str, group: str) -> TraceKprobe | None:
        for tk in self.probes():
            if tk.name == event and tk.group == group:
                return tk
        return None

    def _printk(self, text: str) -> None:
        if self.kernel is not None:
            self.kernel.printk(text)

    # --------------------------------------------------------------- dyn_event ops
    def create(self, raw_command: str) -> int:
        argv = argv_split(raw_command)
        if not argv:
            return 0
        return self._create(argv)

    def show(self, ev: DynEvent) -> str:
        assert isinstance(ev, TraceKprobe)
        out = ["r" if ev.is_return() else "p"]
        if ev.rp is not None and ev.rp.maxactive:
            out.append(str(ev.rp.maxactive))
        out.append(f":{ev.group}/{ev.name} {ev.location(_hashed_ptr)}")
        for a in ev.tp.args:
            out.append(f" {a.name}={a.comm}")
        out.append("\n")
        return "".join(out)

    def is_busy(self, ev: DynEvent) -> bool:
        assert isinstance(ev, TraceKprobe)
        return ev.event.is_enabled()

    def free(self, ev: DynEvent) -> int:
        assert isinstance(ev, TraceKprobe)
        return self._unregister_trace_kprobe(ev)

    def match(self, system: str | None, event: str, argv: list[str], ev: DynEvent) -> bool:
        assert isinstance(ev, TraceKprobe)
        if event and ev.name != event:
            return False
        if system is not None and ev.group != system:
            return False
        if not argv:
            return True
        if ev.location(_hashed_ptr)[:MAX_ARGSTR_LEN] != argv[0]:
            return False
        return match_command_args(ev.tp, argv[1:])

    # --------------------------------------------------------------- files
    def profile_text(self) -> str:
        """``kprobe_profile``: name, hits, misses (``"  %-44s %15lu %15lu\\n"``)."""
        return "".join(f"  {tk.name:<44} {tk.nhit:>15} {tk.missed():>15}\n"
                       for tk in self.probes())

    def run_command(self, raw_command: str) -> int:
        """``create_or_delete_trace_kprobe``: one line written to ``kprobe_events``."""
        if raw_command[:1] == "-":
            return self.dyn.release(raw_command, self)
        ret = self.dyn.create_of(raw_command, self)
        return -errno.EINVAL if ret == -errno.ECANCELED else ret

    # --------------------------------------------------------------- parsing
    def _create(self, argv: list[str]) -> int:
        c = argv[0][0]
        if c == "r":
            is_return = True
        elif c == "p":
            is_return = False
        else:
            return -errno.ECANCELED
        if len(argv) < 2:
            return -errno.ECANCELED
        log = self.dyn.probe_log
        log.init("trace_kprobe", argv)
        ctx = ParseContext(flags=TPARG_FL_KERNEL, btf=self.btf, log=log)
        try:
            return self._create_locked(argv, is_return, ctx)
        finally:
            traceprobe_finish_parse(ctx)
            log.clear()

    def _create_locked(self, argv: list[str], is_return: bool, ctx: ParseContext) -> int:
        a0 = argv[0]
        colon = a0.find(":", 1)
        event: str | None = a0[colon + 1:] if colon >= 0 else None
        group = KPROBE_EVENT_SYSTEM
        maxactive = 0
        if a0[1:2] and isdigit(a0[1]):
            if not is_return:
                self._log_err(1, ProbeErr.BAD_MAXACT_TYPE)
                return -errno.EINVAL
            length = (colon - 1) if colon >= 0 else len(a0) - 1
            if length > MAX_EVENT_NAME_LEN - 1:
                self._log_err(1, ProbeErr.BAD_MAXACT)
                return -errno.EINVAL
            err, maxactive = kstrtouint(a0[1:1 + length], 0)
            if err or not maxactive:
                self._log_err(1, ProbeErr.BAD_MAXACT)
                return -errno.EINVAL
            if maxactive > KRETPROBE_MAXACTIVE_MAX:
                self._log_err(1, ProbeErr.MAXACT_TOO_BIG)
                return -errno.EINVAL

        symbol: str | None = None
        offset = 0
        err, addr = kstrtoul(argv[1], 0)
        if err:
            addr = 0
            self._log_set(1)
            if "/" in argv[1] and ":" in argv[1]:
                return -errno.ECANCELED         # a uprobe
            symbol = argv[1]
            pct = symbol.find("%")
            if pct >= 0:
                if symbol[pct:] == "%return":
                    symbol = symbol[:pct]
                    is_return = True
                else:
                    self._log_err(pct, ProbeErr.BAD_ADDR_SUFFIX)
                    return -errno.EINVAL
            ret, symbol, offset = split_symbol_offset(symbol)
            if ret or offset < 0 or offset > UINT_MAX:
                self._log_err(0, ProbeErr.BAD_PROBE_ADDR)
                return -errno.EINVAL
            ret = self._validate_probe_symbol(symbol)
            if ret:
                self._log_err(0, ProbeErr.NON_UNIQ_SYMBOL if ret == -errno.EADDRNOTAVAIL
                              else ProbeErr.BAD_PROBE_ADDR)
                return -errno.EINVAL
            if is_return:
                ctx.flags |= TPARG_FL_RETURN
            ret = self.core.kprobe_on_func_entry(0, symbol, offset)
            if ret == 0 and not is_return:
                ctx.flags |= TPARG_FL_FENTRY
            if ret == -errno.EINVAL and is_return:
                self._log_err(0, ProbeErr.BAD_RETPROBE)
                return -errno.EINVAL

        self._log_set(0)
        if event is not None:
            ret, ev_name, grp = traceprobe_parse_event_name(event, colon + 1, self.dyn.probe_log)
            if ret:
                return -errno.EINVAL
            event = ev_name
            if grp is not None:
                group = grp
        if not event:
            c = "r" if is_return else "p"
            buf = f"{c}_{symbol}_{offset}" if symbol else f"{c}_0x{_hashed_ptr(addr)}"
            event = sanitize_event_name(buf[:MAX_EVENT_NAME_LEN - 1])

        args = argv[2:]
        ctx.funcname = symbol
        ret, new_argv = traceprobe_expand_meta_args(args, ctx)
        if ret < 0:
            return ret
        if new_argv is not None:
            args = new_argv
        if len(args) > MAX_TRACE_ARGS:
            return -errno.E2BIG
        ret, args = traceprobe_expand_dentry_args(args)
        if ret:
            return ret

        tk = TraceKprobe(self, group, event, addr, symbol, offset, maxactive, len(args), is_return)
        for i, a in enumerate(args):
            self._log_set(i + 2)
            ctx.offset = 0
            ret = traceprobe_parse_probe_arg(tk.tp, i, a, ctx)
            if ret:
                return ret
        if tk.rp is not None and tk.tp.entry_arg is not None:
            tk.rp.entry_handler = self._kretprobe_entry_handler
            tk.rp.data_size = traceprobe_get_entry_data_size(tk.tp)
        tk.event.call.print_fmt = set_print_fmt(
            tk.tp, PROBE_PRINT_RETURN if is_return else PROBE_PRINT_NORMAL)

        ret = self._register_trace_kprobe(tk)
        if ret:
            self._log_set(1)
            if ret == -errno.EILSEQ:
                self._log_err(0, ProbeErr.BAD_INSN_BNDRY)
            elif ret == -errno.ENOENT:
                self._log_err(0, ProbeErr.BAD_PROBE_ADDR)
            elif ret not in (-errno.ENOMEM, -errno.EEXIST):
                self._log_err(0, ProbeErr.FAIL_REG_PROBE)
        return ret

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

    def __register(self, tk: TraceKprobe) -> int:
        """``__register_trace_kprobe``."""
        if tk.kp.registered:
            return -errno.EINVAL
        if self._within_notrace_func(tk):
            addr = self._address(tk)
            self._printk(f"trace_kprobe: Could not probe notrace function {self.core.ks.format_ps(addr)}")
            return -errno.EINVAL
        for a in tk.tp.args:
            ret = traceprobe_update_arg(a, self.core.lookup_name)
            if ret:
                return ret
        if tk.event.is_enabled():
            tk.kp.flags &= ~KPROBE_FLAG_DISABLED
        else:
            tk.kp.flags |= KPROBE_FLAG_DISABLED
        if tk.rp is not None:
            return self.core.register_kretprobe(tk.rp)
        return self.core.register_kprobe(tk.kp)

    def __unregister(self, tk: TraceKprobe) -> None:
        """``__unregister_trace_kprobe``."""
        if tk.kp.registered:
            if tk.rp is not None:
                self.core.unregister_kretprobe(tk.rp)
            else:
                self.core.unregister_kprobe(tk.kp)
            if tk.kp.symbol_name:
                tk.kp.addr = 0

    def _register_event_call(self, tk: TraceKprobe) -> int:
        if self.events is None:
            return 0
        return self.events.add_event_call(tk.event.call)

    def _unregister_event_call(self, tk: TraceKprobe) -> int:
        if self.events is None:
            return 0
        return self.events.remove_event_call(tk.event.call)

    def _register_trace_kprobe(self, tk: TraceKprobe) -> int:
        old = self.find(tk.name, tk.group)
        if old is not None:
            if tk.is_return() != old.is_return():
                self._log_set(0)
                self._log_err(0, ProbeErr.DIFF_PROBE_TYPE)
                return -errno.EEXIST
            return self._append_trace_kprobe(tk, old)
        ret = self._register_event_call(tk)
        if ret:
            if ret == -errno.EEXIST:
                self._log_set(0)
                self._log_err(0, ProbeErr.EVENT_EXIST)
            else:
                self._printk(f"trace_kprobe: Failed to register probe event({ret})")
            return ret
        ret = self.__register(tk)
        if ret == -errno.ENOENT and not self._module_exist(tk):
            self._printk("trace_kprobe: This probe might be able to register after target "
                         "module is loaded. Continue.")
            ret = 0
        if ret < 0:
            self._unregister_event_call(tk)
        else:
            self.dyn.add(tk)
        return ret

    @staticmethod
    def _same_kprobe(orig: TraceKprobe, comp: TraceKprobe) -> bool:
        for o in orig.event.probes:
            assert isinstance(o, TraceKprobe)
            if (o.symbol or "unknown") != (comp.symbol or "unknown") or o.kp.offset != comp.kp.offset:
                continue
            if all(o.tp.args[i].comm == comp.tp.args[i].comm for i in range(o.tp.nr_args)):
                return True
        return False

    def _append_trace_kprobe(self, tk: TraceKprobe, to: TraceKprobe) -> int:
        ret = compare_arg_type(tk.tp, to.tp)
        if ret:
            self._log_set(ret + 1)
            self._log_err(0, ProbeErr.DIFF_ARG_TYPE)
            return -errno.EEXIST
        if self._same_kprobe(to, tk):
            self._log_set(0)
            self._log_err(0, ProbeErr.SAME_PROBE)
            return -errno.EEXIST
        tk.event = to.event
        to.event.probes.append(tk)   # type: ignore[arg-type]
        ret = self.__register(tk)
        if ret == -errno.ENOENT and not self._module_exist(tk):
            ret = 0
        if ret:
            to.event.probes.remove(tk)   # type: ignore[arg-type]
        else:
            self.dyn.add(tk)
        return ret

    def _unregister_trace_kprobe(self, tk: TraceKprobe) -> int:
        pe = tk.event
        if len(pe.probes) <= 1:
            if pe.is_enabled():
                return -errno.EBUSY
            if pe.call.refcnt:
                return -errno.EBUSY
            if self._unregister_event_call(tk):
                return -errno.EBUSY
        self.__unregister(tk)
        self.dyn.remove(tk)
        if tk in pe.probes:
            pe.probes.remove(tk)   # type: ignore[arg-type]
        return 0

    # --------------------------------------------------------------- enable/disable
    def _enable_one(self, tk: TraceKprobe) -> int:
        if tk.kp.registered and not tk.kp.flags & KPROBE_FLAG_GONE:
            return self.core.enable_kprobe(tk.kp)
        return 0

    def _disable_all(self, pe: ProbeEvent) -> None:
        for tk in pe.probes:
            assert isinstance(tk, TraceKprobe)
            if tk.kp.registered:
                self.core.disable_kprobe(tk.kp)

    def enable(self, pe: ProbeEvent, file: Any) -> int:
        """``enable_trace_kprobe`` (file None: the perf/profile side)."""
        enabled = pe.is_enabled()
        if file is not None:
            pe.files.append(file)
            pe.flags |= TP_FLAG_TRACE
        else:
            pe.flags |= TP_FLAG_PROFILE
        if enabled:
            return 0
        ret = 0
        for tk in pe.probes:
            assert isinstance(tk, TraceKprobe)
            ret = self._enable_one(tk)
            if ret:
                break
        if ret:
            self._disable_all(pe)
            if file is not None:
                pe.files = [f for f in pe.files if f is not file]
                if not pe.files:
                    pe.flags &= ~TP_FLAG_TRACE
            else:
                pe.flags &= ~TP_FLAG_PROFILE
        return ret

    def disable(self, pe: ProbeEvent, file: Any) -> int:
        """``disable_trace_kprobe``."""
        if file is not None:
            if not any(f is file for f in pe.files):
                return -errno.ENOENT
            if len(pe.files) == 1:
                pe.flags &= ~TP_FLAG_TRACE
                if not pe.is_enabled():
                    self._disable_all(pe)
            pe.files = [f for f in pe.files if f is not file]
        else:
            pe.flags &= ~TP_FLAG_PROFILE
            if not pe.is_enabled():
                self._disable_all(pe)
        return 0

    # --------------------------------------------------------------- firing
    def _env(self, regs: PtRegs, edata: bytearray | None) -> FetchEnv:
        k = self.kernel
        comm = b""
        mem: Any = _NoMem()
        sprint: Callable[[int], str] = _hex_addr
        if k is not None:
            comm = k.sched.current.comm.encode("latin-1", "replace")[:15]
            mem = getattr(k, "mem", None) or mem
            sprint = self.core.ks.format_pS
        return FetchEnv(regs, mem, comm, edata, sprint)

    def _kprobe_dispatcher(self, kp: Kprobe, regs: PtRegs) -> int:
        tk: TraceKprobe = kp.owner
        tk.nhit += 1
        if tk.event.flags & TP_FLAG_TRACE:
            env = self._env(regs, None)
            for file in list(tk.event.files):
                self._write(tk, file, env, FENTRY_HEAD_SIZE, (kp.addr,))
        return 0

    def _kretprobe_entry_handler(self, rp: Kretprobe, data: bytearray, _ret: int,
                                 regs: PtRegs) -> int:
        tk: TraceKprobe = rp.kp.owner
        if tk.tp.entry_arg is not None:
            store_trace_entry_data(data, tk.tp, regs)
        return 0

    def _kretprobe_dispatcher(self, rp: Kretprobe, data: bytearray, ret_addr: int,
                              regs: PtRegs) -> int:
        tk: TraceKprobe = rp.kp.owner
        tk.nhit += 1
        if tk.event.flags & TP_FLAG_TRACE:
            env = self._env(regs, data)
            for file in list(tk.event.files):
                self._write(tk, file, env, FEXIT_HEAD_SIZE, (rp.kp.addr, ret_addr))
        return 0

    def _write(self, tk: TraceKprobe, file: Any, env: FetchEnv, head: int,
               words: tuple[int, ...]) -> None:
        """__kprobe_trace_func / __kretprobe_trace_func for one linked event file."""
        if getattr(file, "soft_disabled", False):
            return
        k = self.kernel
        if k is None:
            return
        tr = file.tr
        dsize = get_data_size(tk.tp, env, kprobe_process_fetch_insn)
        size = head + tk.tp.size + dsize
        cpu = k.sched.cpu
        off = tr.event_reserve(cpu, tk.event.call.type_id, size)
        if off < 0:
            return
        buf = tr.event_buf(cpu)
        buf[off + 8:off + size] = bytes(size - 8)
        for i, w in enumerate(words):
            _Q.pack_into(buf, off + 8 + 8 * i, w & M64)
        store_trace_args(buf, off + head, tk.tp, env, head, dsize, kprobe_process_fetch_insn)
        commit = getattr(file, "commit", None)
        if commit is not None:
            commit(cpu, off, size)
        else:
            tr.event_commit(cpu)


def _hex_addr(addr: int) -> str:
    return f"0x{addr:x}"


class _NoMem:
    """No simulated memory: every access faults."""

    def read(self, addr: int, size: int, user: bool = False) -> bytes | None:
        return None

    def read_str(self, addr: int, maxlen: int, user: bool = False) -> bytes | None:
        return None


def boot(kernel: Kernel) -> KprobeEvents:
    """core_initcall(init_kprobe_trace_early): the kind registered with dyn_event, on the
    kprobes core (``k.kprobes``)."""
    map_banner(kernel.mem)     # @linux_proc_banner fetches read .rodata
    kind = KprobeEvents(kernel.dynevent, kernel.kprobes, events=kernel.events, btf=kernel.btf,
                        kernel=kernel)
    kernel.dynevent.register(kind)
    return kind
