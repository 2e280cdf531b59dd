"""The kprobes core (kernel/kprobes.c, arch/x86/kernel/kprobes) that kprobe events use.

``KprobeCore`` (``k.kprobes``) follows kernel/kprobes.c with CONFIG_KPROBES_ON_FTRACE
and x86 IBT:

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
* probes at one address aggregate; a kretprobe is a kprobe at the entry whose pre-handler
  hooks the return (``Ftrace.push_ret_hook``) from a pool of ``maxactive`` instances
  (default ``max(10, 2 * possible CPUs)``, written back into ``rp.maxactive`` — hence the
  ``r10:`` of ``kprobe_events``);
* optprobes (``/proc/sys/debug/kprobes-optimization``) and the debugfs ``kprobes/list``.

Breakpoint probes fire from the workload: a function whose index is in
``KprobeCore.bp_funcs`` must call ``KprobeCore.breakpoint_hit(idx, parent_ip, regs)``
after its ftrace call site (see ``breakpoint_hit``).

``current_kprobe`` is per CPU as in the kernel: ``kprobe_running()`` is the probe whose
handlers run on this CPU (or the ``kprobe_busy`` placeholder between
``kprobe_busy_begin()`` and ``kprobe_busy_end()``, which fprobe's
FPROBE_FL_KPROBE_SHARED handlers use); a probe hit meanwhile is missed (``nmissed``).
A probe's ``pre_handler(p, regs)`` and ``post_handler(p, regs, flags)`` run as
aggr_pre_handler/aggr_post_handler run them; on an ftrace-based probe ``regs.ip`` is
the probe address + 1 in the pre-handler and address + MCOUNT_INSN_SIZE in the
post-handler, and a pre-handler that returns non-zero keeps the ``regs.ip`` it set (the
call continues there, as kprobe_ftrace_handler leaves it).  A handler that raises is
reported in the kernel log and counted in the probe's ``nmissed``.
"""

from __future__ import annotations

import bisect
import errno
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import KernelError
from .ftrace_ops import MCOUNT_INSN_SIZE, OPS_FL_SAVE_REGS, FtraceOps, ftrace_get_regs
from .mm import Regs
from .ptrace import M64, PtRegs

if TYPE_CHECKING:
    from .core import Kernel
    from .kallsyms import Kallsyms
    from .trace_kprobe import TraceKprobe

KRETPROBE_MAX_DATA_SIZE = 4096

# struct kprobe flags (include/linux/kprobes.h)
KPROBE_FLAG_GONE = 1
KPROBE_FLAG_DISABLED = 2
KPROBE_FLAG_OPTIMIZED = 4
KPROBE_FLAG_FTRACE = 8
KPROBE_FLAG_ON_FUNC_ENTRY = 16
KPROBE_HASH_BITS = 6
GOLDEN_RATIO_64 = 0x61C8864680B583EB
JMP32_INSN_SIZE = 5
MAX_INSN_SIZE = 15
SYSCTL_OPTIMIZATION = "debug/kprobes-optimization"

ENDBR_INSN_SIZE = 4


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

    __slots__ = ("addr", "symbol_name", "offset", "pre_handler", "post_handler", "flags",
                 "nmissed", "owner", "registered", "rp")

    def __init__(self, addr: int = 0, symbol_name: str | None = None, offset: int = 0,
                 pre_handler: Callable[[Kprobe, PtRegs], int] | None = None,
                 post_handler: Callable[[Kprobe, PtRegs, int], None] | None = None) -> None:
        self.addr = addr
        self.symbol_name = symbol_name
        self.offset = offset
        self.pre_handler = pre_handler
        self.post_handler = post_handler
        self.flags = 0
        self.nmissed = 0
        self.owner: TraceKprobe | None = None      # container_of(): the probe event
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

    def __init__(self, ks: Kallsyms) -> None:
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

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.ks = kernel.kallsyms
        self.ftrace = kernel.ftrace
        self.table: dict[int, _Aggr] = {}
        self.bp_funcs: dict[int, list[_Aggr]] = {}   # int3 probes by ftrace record index
        self.nr_bp_armed = 0
        self.bp_gen = 0     # bumped when an int3 probe is armed or disarmed (CallSites.live)
        self.ftrace_enabled = 0                       # kprobe_ftrace_enabled
        # per-CPU current_kprobe: the probe whose handlers run there (kprobe_running())
        self.current_kprobe: list[Kprobe | None] = [None] * kernel.nr_cpus
        self.kprobe_busy = Kprobe(symbol_name="get_kprobe")   # .addr = get_kprobe
        self._syms: _SymIndex | None = None
        self._rec_ips: list[int] | None = None
        self._rec_index: dict[int, int] | None = None
        self._blacklist: list[tuple[int, int]] | None = None
        self.allow_optimization = True                # sysctl debug/kprobes-optimization
        kernel.sysctls[SYSCTL_OPTIMIZATION] = (self.sysctl_read, self.sysctl_write)
        kernel.debugfs["kprobes/list"] = self.list_text
        # its text, kept until the table, a probe's flags or an optimization changes
        # (the host's debugfs mirror compares it after every request)
        self._list: str | None = None
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
        return list(self.ks.modules)

    def _records(self) -> tuple[list[int], dict[int, int]]:
        if self._rec_ips is None:
            addrs = self.ftrace.ips
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
        self._list = None
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

    def _aggr_of(self, p: Kprobe) -> _Aggr | None:
        """The aggregate ``p`` is registered on, about to change (its cached list text goes)."""
        self._list = None
        ap = self.table.get(p.addr)
        return ap if ap is not None and p in ap.probes else None

    def unregister_kprobe(self, p: Kprobe) -> None:
        ap = self._aggr_of(p)
        if ap is None:
            return
        ap.probes.remove(p)
        p.registered = False
        if not ap.probes or ap.all_disabled():
            if ap.armed:
                self._disarm(ap)
        if not ap.probes:
            del self.table[p.addr]

    def enable_kprobe(self, p: Kprobe) -> int:
        ap = self._aggr_of(p)
        if ap is None or p.flags & KPROBE_FLAG_GONE:
            return -errno.EINVAL
        p.flags &= ~KPROBE_FLAG_DISABLED
        if not ap.armed:
            ret = self._arm(ap)
            if ret:
                p.flags |= KPROBE_FLAG_DISABLED
                return ret
        return 0

    def disable_kprobe(self, p: Kprobe) -> int:
        ap = self._aggr_of(p)
        if ap is None:
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
            rp.maxactive = max(10, 2 * self.kernel.nr_cpus)
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
        self._list = None
        ap.optimized = (self.allow_optimization and ap.armed and not ap.ftrace
                        and not ap.all_disabled() and self.can_optimize(ap.addr))

    def sysctl_read(self) -> str:
        return f"{int(self.allow_optimization)}\n"

    def sysctl_write(self, text: str) -> None:
        """proc_kprobes_optimization_handler: proc_dointvec_minmax in [0, 1]."""
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
        if self._list is not None:
            return self._list
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
        self._list = "".join(out)
        return self._list

    # ------------------------------------------------------------------ arming
    def _arm(self, ap: _Aggr) -> int:
        if ap.ftrace:
            ret = self._arm_ftrace(ap.addr)
            if ret:
                return ret
        else:
            self.bp_funcs.setdefault(ap.func_index, []).append(ap)
            self.nr_bp_armed += 1
            self.bp_gen += 1
        ap.armed = True
        self._optimize(ap)
        return 0

    def _disarm(self, ap: _Aggr) -> None:
        self._list = None
        if ap.ftrace:
            self._disarm_ftrace(ap.addr)
        else:
            lst = self.bp_funcs.get(ap.func_index)
            if lst is not None and ap in lst:
                lst.remove(ap)
                self.nr_bp_armed -= 1
                self.bp_gen += 1
                if not lst:
                    del self.bp_funcs[ap.func_index]
        ap.armed = False
        ap.optimized = False

    def _arm_ftrace(self, addr: int) -> int:
        """``__arm_kprobe_ftrace`` on kprobe_ftrace_ops."""
        ft = self.ftrace
        ret = ft.ftrace_set_filter_ip(self.ops, addr, 0, 0)
        if ret:
            return ret
        if self.ftrace_enabled == 0:
            ret = ft.register_ftrace_function(self.ops)
            if ret:
                ft.ftrace_set_filter_ip(self.ops, addr, 1, 0)
                return ret
        self.ftrace_enabled += 1
        return 0

    def _disarm_ftrace(self, addr: int) -> None:
        """``__disarm_kprobe_ftrace``: errors only WARN there."""
        ft = self.ftrace
        if self.ftrace_enabled == 1:
            if ft.unregister_ftrace_function(self.ops):
                return
        self.ftrace_enabled -= 1
        ft.ftrace_set_filter_ip(self.ops, addr, 1, 0)

    # ------------------------------------------------------------------ handlers
    def kprobe_running(self) -> Kprobe | None:
        """kprobe_running(): the kprobe whose handlers run on this CPU, if any."""
        return self.current_kprobe[self.kernel.sched.cpu]

    @property
    def running(self) -> bool:
        """kprobe_running() is not NULL (the simulator's older spelling)."""
        return self.kprobe_running() is not None

    def kprobe_busy_begin(self) -> None:
        """kprobe_busy_begin(): as if a kprobe ran here (kprobes hit meanwhile are missed)."""
        self.current_kprobe[self.kernel.sched.cpu] = self.kprobe_busy

    def kprobe_busy_end(self) -> None:
        self.current_kprobe[self.kernel.sched.cpu] = None

    def _run(self, ap: _Aggr, regs: PtRegs, post_ip: int) -> int:
        """aggr_pre_handler() then aggr_post_handler() (with ``regs.ip`` = ``post_ip``,
        after the probed instruction), as the probe's current_kprobe: every enabled
        probe at the address; a kprobe already running on this CPU makes it a miss
        (kprobes_inc_nmissed_count).  Returns non-zero when a pre-handler asked to skip
        the instruction (it set regs.ip)."""
        cpu = self.kernel.sched.cpu
        if self.current_kprobe[cpu] is not None:
            for p in ap.probes:
                p.nmissed += 1
            return 0
        probes = list(ap.probes)
        self.current_kprobe[cpu] = probes[0] if probes else None
        try:
            for p in probes:
                if not p.disabled() and p.pre_handler is not None:
                    if self._handler(p, p.pre_handler, p, regs):
                        return 1
            regs.ip = post_ip
            for p in probes:
                if not p.disabled() and p.post_handler is not None:
                    self._handler(p, p.post_handler, p, regs, 0)
            return 0
        finally:
            self.current_kprobe[cpu] = None

    def _handler(self, p: Kprobe, fn: Callable[..., int | None], *args: object) -> int:
        try:
            return fn(*args) or 0
        except Exception as e:
            self.kernel.modules.handler_raised(fn, e)
            p.nmissed += 1
            return 0

    def kprobe_ftrace_handler(self, ip: int, parent_ip: int, ops: FtraceOps,
                              fregs: Regs | None) -> None:
        """arch/x86/kernel/kprobes/ftrace.c ``kprobe_ftrace_handler``."""
        ap = self.table.get(ip)
        if ap is None or not ap.armed:
            return
        bit = self.ftrace.recursion_trylock(ip, parent_ip)
        if bit >= 0:
            try:
                regs = ftrace_get_regs(fregs)
                # the handlers see regs->ip = ip + 1, as after an int3
                view = PtRegs(regs, ip + 1, parent_ip)
                if self._run(ap, view, ip + MCOUNT_INSN_SIZE) and regs is not None:
                    regs.ip = view.ip    # a pre-handler moved the ip: the call goes there
            finally:
                self.ftrace.recursion_unlock(bit)

    def _next_insn(self, addr: int) -> int:
        """The address of the instruction after the one at ``addr``."""
        r = self.ks.lookup_addr(addr)
        if r is None:
            return addr + 1
        start = addr - r[1]
        fentry = self.fentry_offset(start)
        n = 1
        while n < MAX_INSN_SIZE and not insn_boundary(start, r[1] + n, fentry):
            n += 1
        return addr + n

    def breakpoint_hit(self, idx: int, parent_ip: int, regs: Regs | None) -> None:
        """The int3 probes of function ``idx`` fire (the simulation runs every breakpoint
        of a function once, right after its entry, whatever the offset).

        The workload calls this for a function whose index is in ``bp_funcs``, after its
        ftrace call site, with the same register set it passes to ``func_entry``.
        """
        for ap in list(self.bp_funcs.get(idx, ())):
            if ap.armed:
                post = any(p.post_handler is not None for p in ap.probes)
                # after the single-step, regs->ip is the next instruction
                self._run(ap, PtRegs(regs, ap.addr + 1, parent_ip),
                          self._next_insn(ap.addr) if post else ap.addr + 1)

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
        if rp.entry_handler is not None and self._handler(p, rp.entry_handler, rp, data, 0, regs):
            rp.free += 1
            return 0
        self.ftrace.push_ret_hook(self.kernel.sched.current,
                                  [self._kretprobe_return, rp, data, regs])
        return 0

    def _kretprobe_return(self, frame: list[Any], retval: int) -> None:
        """The rethook trampoline of a kretprobe instance (``frame`` is the return-hook
        frame pushed above: this method, the kretprobe, its data and the entry regs)."""
        rp: Kretprobe = frame[1]
        rp.free += 1
        if not rp.active or rp.handler is None:
            return
        entry: PtRegs = frame[3]
        regs = PtRegs(entry.src, entry.parent_ip, entry.parent_ip, retval)
        self._handler(rp.kp, rp.handler, rp, frame[2], entry.parent_ip, regs)


