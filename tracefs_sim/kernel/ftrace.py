"""Dynamic ftrace (kernel/trace/ftrace.c): call-site records, ftrace_ops, hashes, filters.

One ``dyn_ftrace`` record per traceable function, indexed like
``available_filter_functions`` (``kallsyms.names/addrs/mods``).  A record is just an int
of flags in ``Ftrace.flags[i]`` (low 19 bits: how many ops want the site; high bits:
``FL_ENABLED``, ``FL_REGS``… exactly as include/linux/ftrace.h).  Hashes are dicts of
record indices.  This module knows nothing of tracers or ring buffers: its clients are
``FtraceOps.func`` callbacks and function-probe commands (``register_ftrace_command``).

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

``fregs`` is an opaque register set (``None`` is fine; fprobe/kprobe events read args
from it).  Return hooks (fgraph's shadow stack, rethook) are frames pushed on
``task.ret_stack`` by entry callbacks with ``push_ret_hook``; ``func_return`` pops them
LIFO and calls ``frame[0](frame, retval)``.  ``func_entry``/``func_exit`` wrap the
protocol for callers that prefer a token.

Filter language (set_ftrace_filter, ftrace_set_filter): ``filter_parse_regex`` types
(full, ``foo*``, ``*foo``, ``*foo*``, glob with ``?``/``[]``/``\\``, digits = 1-based index),
``!`` removes, ``FUNC:CMD[:PARAM]`` runs a registered command (``mod``, ``traceon``…).
"""

from __future__ import annotations

import bisect
import errno
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import KernelError
from .lib import MASK64, PAGE_SIZE, glob_to_regex, kstrtoul
from .trace_parser import TraceParser, write_words

if TYPE_CHECKING:
    from .core import Kernel

# ----------------------------------------------------------------------- ftrace_ops flags
OPS_FL_ENABLED = 1 << 0
OPS_FL_DYNAMIC = 1 << 1
OPS_FL_SAVE_REGS = 1 << 2
OPS_FL_SAVE_REGS_IF_SUPPORTED = 1 << 3
OPS_FL_RECURSION = 1 << 4
OPS_FL_STUB = 1 << 5
OPS_FL_INITIALIZED = 1 << 6
OPS_FL_DELETED = 1 << 7
OPS_FL_ADDING = 1 << 8
OPS_FL_REMOVING = 1 << 9
OPS_FL_MODIFYING = 1 << 10
OPS_FL_ALLOC_TRAMP = 1 << 11
OPS_FL_IPMODIFY = 1 << 12
OPS_FL_PID = 1 << 13
OPS_FL_RCU = 1 << 14
OPS_FL_TRACE_ARRAY = 1 << 15
OPS_FL_PERMANENT = 1 << 16
OPS_FL_DIRECT = 1 << 17
OPS_FL_SUBOP = 1 << 18
OPS_FL_SAVE_ARGS = OPS_FL_SAVE_REGS  # x86_64 has DYNAMIC_FTRACE_WITH_REGS

# ------------------------------------------------------------------- dyn_ftrace flags
FL_ENABLED = 1 << 31
FL_REGS = 1 << 30
FL_REGS_EN = 1 << 29
FL_TRAMP = 1 << 28
FL_TRAMP_EN = 1 << 27
FL_IPMODIFY = 1 << 26
FL_DISABLED = 1 << 25
FL_DIRECT = 1 << 24
FL_DIRECT_EN = 1 << 23
FL_CALL_OPS = 1 << 22
FL_CALL_OPS_EN = 1 << 21
FL_TOUCHED = 1 << 20
FL_MODIFIED = 1 << 19
REF_MAX_SHIFT = 19
REF_MAX = (1 << REF_MAX_SHIFT) - 1
NOCLEAR_FLAGS = FL_DISABLED | FL_TOUCHED | FL_MODIFIED

HASH_FL_MOD = 1 << 0
HASH_DEFAULT_BITS = 10
HASH_MAX_BITS = 12

# enum regex_type (trace.h)
MATCH_FULL, MATCH_FRONT_ONLY, MATCH_MIDDLE_ONLY, MATCH_END_ONLY, MATCH_GLOB, MATCH_INDEX = range(6)

# ftrace_iterator flags
ITER_FILTER = 1 << 0
ITER_NOTRACE = 1 << 1
ITER_PRINTALL = 1 << 2
ITER_DO_PROBES = 1 << 3
ITER_PROBE = 1 << 4
ITER_MOD = 1 << 5
ITER_ENABLED = 1 << 6
ITER_TOUCHED = 1 << 7
ITER_ADDRS = 1 << 8

# KSYM_SYMBOL_LEN (666 on x86_64) + 4: the parser buffer of the filter files
FTRACE_BUFF_MAX = 670
# sizeof(struct dyn_ftrace) on x86_64 and PAGE_SIZE, for dyn_ftrace_total_info
ENTRY_SIZE = 16

# trace_recursion.h
TRACE_FTRACE_START = 0
TRACE_LIST_START = 5
TRACE_CTX_NORMAL = 3
TRACE_CTX_TRANSITION = 4
_NMI, _HARDIRQ, _SOFTIRQ = 0x40, 0x08, 0x10  # TRACE_FLAG_* bits of sched.irq_flags

GOLDEN_RATIO_64 = 0x61C8864680B583EB

# Sizes of the kernel functions that appear as %pS in enabled_functions (from the
# reference kernel where known).  Callables name their symbol with ``__ksym__``.
KSYM_SIZES: dict[str, int] = {
    "function_trace_call": 0x110, "ftrace_stub": 0x20, "arch_ftrace_ops_list_func": 0x1D0,
    "fprobe_handler": 0x240, "kprobe_ftrace_handler": 0x1D0, "ftrace_graph_func": 0x20,
    "ftrace_ops_assist_func": 0x100, "ftrace_pid_func": 0x50, "function_stack_trace_call": 0x160,
    "function_no_repeats_trace_call": 0x1A0, "function_stack_no_repeats_trace_call": 0x1C0,
    "function_trace_probe_call": 0x60, "fprobe_kprobe_handler": 0x2B0,
}


def ksym(name: str, size: int | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: the kernel symbol a Python callback stands for (shown by %pS)."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.__ksym__ = name  # type: ignore[attr-defined]
        if size is not None:
            fn.__ksym_size__ = size  # type: ignore[attr-defined]
        return fn

    return deco


def sym_name(fn: object) -> str:
    return getattr(fn, "__ksym__", None) or getattr(fn, "__name__", None) or "ftrace_stub"


def sym_ps(fn: object, kallsyms: Any = None) -> str:
    """``%pS`` of a kernel function: ``name+0x0/0xSIZE`` (sizes of the reference kernel
    where known, else the simulated kallsyms', else 0x100)."""
    name = sym_name(fn)
    size = getattr(fn, "__ksym_size__", None) or KSYM_SIZES.get(name)
    if size is None and kallsyms is not None:
        addr = kallsyms.addr_of(name) if hasattr(kallsyms, "addr_of") else None
        r = kallsyms.lookup_addr(addr) if addr else None
        if r is not None:
            size = r[2]
    return f"{name}+0x0/{size or 0x100:#x}"


def hash_64(val: int, bits: int) -> int:
    """include/linux/hash.h hash_64() (the bucket of an ip in an ftrace_hash)."""
    if bits == 0:
        return 0
    return ((val * GOLDEN_RATIO_64) & MASK64) >> (64 - bits)


def fls(x: int) -> int:
    return x.bit_length()


# --------------------------------------------------------------------------- hashes
class FtraceHash:
    """``struct ftrace_hash``: a set of record indices (insertion-ordered) and flags.

    An empty hash with HASH_FL_MOD set is *not* empty (ftrace_hash_empty()): a filter
    waiting for a module matches nothing.
    """

    __slots__ = ("ents", "flags")

    def __init__(self, ents: Iterable[int] = (), flags: int = 0) -> None:
        self.ents: dict[int, None] = dict.fromkeys(ents)
        self.flags = flags

    def empty(self) -> bool:
        return not self.ents and not (self.flags & HASH_FL_MOD)

    def copy(self) -> FtraceHash:
        h = FtraceHash.__new__(FtraceHash)
        h.ents = self.ents.copy()
        h.flags = self.flags
        return h

    def __contains__(self, i: int) -> bool:
        return i in self.ents

    def __len__(self) -> int:
        return len(self.ents)

    def __iter__(self):  # noqa: ANN204
        return iter(self.ents)

    def __repr__(self) -> str:
        return f"FtraceHash({list(self.ents)[:8]}{'…' if len(self.ents) > 8 else ''}, flags={self.flags})"


def ops_equal(a: FtraceHash, b: FtraceHash) -> bool:
    if a.empty():
        return b.empty()
    if b.empty():
        return False
    return a.ents.keys() == b.ents.keys()


class OpsHash:
    """``struct ftrace_ops_hash``: the filter and notrace hashes (may be shared)."""

    __slots__ = ("filter_hash", "notrace_hash")

    def __init__(self) -> None:
        self.filter_hash = FtraceHash()
        self.notrace_hash = FtraceHash()

    def contains(self, i: int) -> bool:
        """hash_contains_ip(): in filter (or filter empty) and not in notrace."""
        f = self.filter_hash
        if (f.ents or f.flags) and i not in f.ents:
            return False
        return i not in self.notrace_hash.ents


# --------------------------------------------------------------------------- ftrace_ops
OpsFunc = Callable[[int, int, "FtraceOps", Any], None]


class FtraceOps:
    """``struct ftrace_ops``.  ``func(ip, parent_ip, ops, fregs)`` is the callback.

    ``core_data=True`` marks a statically allocated ops (global_ops, graph_ops…): it is
    not FL_DYNAMIC, keeps its trampoline across unregister, and when it is the only ops
    the call sites may call it without the list function.
    """

    __slots__ = ("func", "flags", "private", "local_hash", "func_hash", "saved_func",
                 "trampoline", "trampoline_size", "subop_list", "managed", "old_hash",
                 "tramp_func", "site", "core_data", "name", "owner", "quiet", "__weakref__")

    def __init__(self, func: OpsFunc | None = None, flags: int = 0, private: object = None,
                 core_data: bool = False, name: str = "") -> None:
        self.func: OpsFunc = func if func is not None else _ftrace_stub
        self.flags = flags
        self.private = private
        self.local_hash = OpsHash()
        self.func_hash = self.local_hash
        self.saved_func: OpsFunc | None = None
        self.trampoline = 0
        self.trampoline_size = 0
        self.subop_list: list[FtraceOps] = []
        self.managed: FtraceOps | None = None
        self.old_hash: OpsHash | None = None
        self.tramp_func: OpsFunc = self.func
        self.site: Callable[[int, int, Any], None] | None = None
        self.core_data = core_data
        self.name = name
        self.owner: Any = None  # container_of(): the fgraph_ops/fprobe embedding this ops
        # the simulator's own: True while the callback can leave no trace at all (a
        # function tracer whose ring buffer records nothing), so the simulated machine
        # may skip the calls it would make (Workload.quiet)
        self.quiet: Callable[[], bool] | None = None

    @property
    def filter_hash(self) -> FtraceHash:
        return self.func_hash.filter_hash

    @property
    def notrace_hash(self) -> FtraceHash:
        return self.func_hash.notrace_hash

    def __repr__(self) -> str:
        return f"<FtraceOps {self.name or sym_name(self.func)} flags={self.flags:#x}>"


@ksym("ftrace_stub")
def _ftrace_stub(ip: int, parent_ip: int, op: FtraceOps, fregs: Any) -> None:
    return None


# ------------------------------------------------------------------- glob matching
@dataclass(slots=True)
class Glob:
    """``struct ftrace_glob`` after filter_parse_regex()."""

    type: int
    search: str
    negate: bool

    @property
    def len(self) -> int:
        return len(self.search)


def filter_parse_regex(buff: str) -> Glob:
    """trace_events_filter.c filter_parse_regex(): type, search string and '!'."""
    negate = buff.startswith("!")
    if negate:
        buff = buff[1:]
    if buff[:1].isdigit() and buff[:1].isascii():
        return Glob(MATCH_INDEX, buff, negate)
    typ = MATCH_FULL
    search = buff
    n = len(buff)
    for i, c in enumerate(buff):
        if c == "*":
            if i == 0:
                typ = MATCH_END_ONLY
            elif i == n - 1:
                typ = MATCH_MIDDLE_ONLY if typ == MATCH_END_ONLY else MATCH_FRONT_ONLY
                search = buff[:i]
                break
            else:
                return Glob(MATCH_GLOB, buff, negate)
        elif c in "[?\\":
            return Glob(MATCH_GLOB, buff, negate)
    if buff.startswith("*"):
        search = search[1:]
    return Glob(typ, search, negate)




# ----------------------------------------------------------------------- probes & cmds
@dataclass(eq=False)
class FuncProbeOps:
    """``struct ftrace_probe_ops``: one kind of function probe (traceoff, snapshot…).

    ``func(ip, parent_ip, tr, probe_ops, data)``; ``print(ip, probe_ops, data) -> str``
    (one line with its newline); ``init(probe_ops, tr, ip, init_data, probe) -> None``
    stores per-ip data in ``probe.data`` (raise KernelError to fail);
    ``free(probe_ops, tr, ip, probe)`` with ``ip == 0`` frees everything.
    """

    name: str
    func: Callable[..., None]
    print: Callable[..., str] | None = None
    init: Callable[..., None] | None = None
    free: Callable[..., None] | None = None


@dataclass(eq=False)
class FuncProbe:
    """``struct ftrace_func_probe``: a probe_ops instance of one trace_array."""

    probe_ops: FuncProbeOps
    tr: Any
    ops: FtraceOps
    data: Any = None
    ref: int = 0


CommandFunc = Callable[[Any, FtraceHash, str, str, "str | None", bool], None]


@dataclass(slots=True)
class ModLoad:
    """``struct ftrace_mod_load``: a ``FUNC:mod:MODULE`` cached for a module not loaded."""

    func: str
    module: str
    enable: bool


@dataclass
class TrFtraceState:
    """The ftrace parts of ``struct trace_array``: func_probes, mod_trace, mod_notrace."""

    func_probes: list[FuncProbe] = field(default_factory=list)
    mod_trace: list[ModLoad] = field(default_factory=list)
    mod_notrace: list[ModLoad] = field(default_factory=list)
    function_pids: set[int] | None = None  # set_ftrace_pid
    function_no_pids: set[int] | None = None  # set_ftrace_notrace_pid
    follow_fork: bool = False  # the function-fork option


# =========================================================================== Ftrace
class Ftrace:
    """The dynamic ftrace core of one kernel."""

    def __init__(self, kernel: Kernel) -> None:
        self.k = kernel
        ks = kernel.kallsyms  # type: ignore[attr-defined]
        self.kallsyms = ks
        self.names: list[str] = list(ks.names)
        self._match_cache: dict[tuple[int, str, int], tuple[int, ...]] = {}
        self._by_mod: dict[str | None, list[int]] = {}
        self._by_mod_key = -1
        self.ips: list[int] = list(ks.addrs)
        self.mods: list[str | None] = [m or None for m in ks.mods]
        n = len(self.names)
        self.nr_records = n
        self.flags: list[int] = [0] * n
        self.site_func: list[Callable[[int, int, Any], None] | None] = [None] * n
        self.nr_active = 0
        self._ip_index: dict[int, int] | None = None
        self._by_name: dict[str, list[int]] | None = None
        self._joined: str | None = None
        self._sorted: tuple[list[str], list[int]] | None = None
        self.nr_disabled = 0  # records with FL_DISABLED (none in the reference kernel)
        self._line_starts: list[int] | None = None
        self._avail_text: str | None = None
        self._avail_addrs_text: str | None = None
        # ftrace_ops_list (newest first, like add_ftrace_ops()) and the derived state
        self.ops_list: list[FtraceOps] = []
        self.start_up = 0
        self.trace_func: OpsFunc = _ftrace_stub
        self.function_trace_op: FtraceOps | None = None
        self._trace_site: Callable[[int, int, Any], None] = self._stub_site
        self.removed_ops: FtraceOps | None = None
        self.recursion_misses = 0
        self.commands: dict[str, CommandFunc] = {}
        self._tramp_next = self._tramp_base()
        self._tramp_free: list[int] = []
        self.global_ops = FtraceOps(flags=OPS_FL_INITIALIZED | OPS_FL_PID, core_data=True,
                                    name="global_ops")
        self.register_ftrace_command("mod", self._mod_callback)

    # ------------------------------------------------------------------ names
    def rec_name(self, i: int) -> str:
        """print_rec()/%ps of a record: ``name`` or ``name [module]``."""
        m = self.mods[i]
        return f"{self.names[i]} [{m}]" if m else self.names[i]

    def ip_to_index(self, ip: int) -> int | None:
        """ftrace_location(): the record at ``ip`` (exact rec->ip)."""
        if self._ip_index is None:
            self._ip_index = {a: i for i, a in enumerate(self.ips)}
        return self._ip_index.get(ip)

    def ftrace_location(self, ip: int) -> int | None:
        """ftrace_location(): the record at ``ip``, or the one of the function that
        starts at ``ip`` (sym+0 maps to its __fentry__ site, after the endbr64)."""
        i = self.ip_to_index(ip)
        if i is None:
            res = self.k.kallsyms.lookup_addr(ip)
            if res is not None and res[1] == 0:
                j = bisect.bisect_left(self.ips, ip)
                if j < len(self.ips) and self.ips[j] < ip + res[2]:
                    i = j
        return i

    def _name_index(self) -> dict[str, list[int]]:
        if self._by_name is None:
            d: dict[str, list[int]] = {}
            for i, nm in enumerate(self.names):
                d.setdefault(nm, []).append(i)
            self._by_name = d
        return self._by_name

    def _sorted_names(self) -> tuple[list[str], list[int]]:
        if self._sorted is None:
            order = sorted(range(self.nr_records), key=self.names.__getitem__)
            self._sorted = ([self.names[i] for i in order], order)
        return self._sorted

    def _joined_names(self) -> tuple[str, list[int]]:
        if self._joined is None:
            self._joined = "\n".join(self.names) + "\n"
            starts = []
            pos = 0
            for nm in self.names:
                starts.append(pos)
                pos += len(nm) + 1
            self._line_starts = starts
        assert self._line_starts is not None
        return self._joined, self._line_starts

    # ------------------------------------------------------------------ matching
    def _match_func(self, g: Glob, cand: Iterable[int] | None = None) -> list[int]:
        """ftrace_match() of every record name (or of ``cand``) against ``g``.  Scans of
        every record are remembered per pattern (the record list only grows by modules):
        a write repeating one glob thousands of times scans once."""
        if cand is not None or g.type == MATCH_FULL:
            return self._match_func_scan(g, cand)
        key = (g.type, g.search, self.nr_records)
        hit = self._match_cache.get(key)
        if hit is None:
            hit = tuple(self._match_func_scan(g, None))
            if len(self._match_cache) >= 64:
                del self._match_cache[next(iter(self._match_cache))]
            self._match_cache[key] = hit
        return list(hit)

    def _match_func_scan(self, g: Glob, cand: Iterable[int] | None) -> list[int]:
        names = self.names
        typ, s = g.type, g.search
        if typ == MATCH_FULL:
            hits = self._name_index().get(s, [])
            if cand is None:
                return list(hits)
            cs = set(cand)
            return [i for i in hits if i in cs]
        if typ != MATCH_GLOB and not s:  # "*", "**", "foo" with nothing left: everything
            return list(range(self.nr_records)) if cand is None else list(cand)
        if cand is None:
            if typ == MATCH_MIDDLE_ONLY:
                return [i for i, nm in enumerate(names) if s in nm]
            if typ == MATCH_END_ONLY:
                return [i for i, nm in enumerate(names) if nm.endswith(s)]
            if typ == MATCH_FRONT_ONLY:
                snames, sidx = self._sorted_names()
                lo = bisect.bisect_left(snames, s)
                out = []
                for j in range(lo, len(snames)):
                    if not snames[j].startswith(s):
                        break
                    out.append(sidx[j])
                out.sort()
                return out
            rx = self._regex_for(g)
            joined, starts = self._joined_names()
            out = []
            for m in rx.finditer(joined):
                out.append(bisect.bisect_right(starts, m.start()) - 1)
            return out
        cands = list(cand)
        if typ == MATCH_FRONT_ONLY:
            return [i for i in cands if names[i].startswith(s)]
        if typ == MATCH_MIDDLE_ONLY:
            return [i for i in cands if s in names[i]]
        if typ == MATCH_END_ONLY:
            return [i for i in cands if names[i].endswith(s)]
        if typ == MATCH_GLOB:
            rx = re.compile(glob_to_regex(s), re.S)
            return [i for i in cands if rx.fullmatch(names[i])]
        return []

    @staticmethod
    def _regex_for(g: Glob) -> re.Pattern[str]:
        s = re.escape(g.search)
        if g.type == MATCH_FRONT_ONLY:
            body = s + "[^\n]*"
        elif g.type == MATCH_MIDDLE_ONLY:
            body = "[^\n]*" + s + "[^\n]*"
        elif g.type == MATCH_END_ONLY:
            body = "[^\n]*" + s
        else:
            body = glob_to_regex(g.search, multiline=True)
        return re.compile("^" + body + "$", re.M)

    @staticmethod
    def _match_str(text: str, g: Glob) -> bool:
        """ftrace_match() of one string."""
        typ, s = g.type, g.search
        if typ == MATCH_FULL:
            return text == s
        if typ == MATCH_FRONT_ONLY:
            return text.startswith(s)
        if typ == MATCH_MIDDLE_ONLY:
            return s in text
        if typ == MATCH_END_ONLY:
            return text.endswith(s)
        if typ == MATCH_GLOB:
            return re.fullmatch(glob_to_regex(s), text, re.S) is not None
        return False  # MATCH_INDEX: ftrace_match has no case for it

    def _records_by_mod(self) -> dict[str | None, list[int]]:
        """Record indexes per module (None: the core kernel), rebuilt when records change."""
        key = self.nr_records
        if self._by_mod_key != key:
            groups: dict[str | None, list[int]] = {}
            for i, m in enumerate(self.mods):
                groups.setdefault(m, []).append(i)
            self._by_mod, self._by_mod_key = groups, key
        return self._by_mod

    def _match_record_set(self, func_g: Glob, mod_g: Glob | None, exclude_mod: bool) -> list[int]:
        """The records ftrace_match_record() accepts (DISABLED records skipped)."""
        if mod_g is None:
            hits = self._match_func(func_g)
        else:
            mods = self.mods
            if not mod_g.len:
                # blank module glob: module records, or core ones when negated
                if exclude_mod:
                    cand = [i for i, m in enumerate(mods) if m is None]
                else:
                    cand = [i for i, m in enumerate(mods) if m is not None]
            else:
                # match each module name once, then take its records (in record order)
                cand = sorted(i for m, idx in self._records_by_mod().items()
                              if (m is not None and self._match_str(m, mod_g)) != exclude_mod
                              for i in idx)
            hits = cand if not func_g.len else self._match_func(func_g, cand)
        if not self.nr_disabled:
            return hits
        flags = self.flags
        return [i for i in hits if not flags[i] & FL_DISABLED]

    def match_records(self, hash_: FtraceHash, func: str | None, mod: str | None) -> int:
        """match_records(): add (or with '!' remove) matching records; 1 if any matched."""
        func_g = filter_parse_regex(func) if func is not None else Glob(MATCH_FULL, "", False)
        mod_g: Glob | None = None
        exclude_mod = False
        if mod is not None:
            mod_g = filter_parse_regex(mod)
            exclude_mod = mod_g.negate
        clear = func_g.negate
        if func_g.type == MATCH_INDEX:
            return self._add_rec_by_index(hash_, func_g, clear)
        hits = self._match_record_set(func_g, mod_g, exclude_mod)
        ents = hash_.ents
        if clear:
            for i in hits:
                ents.pop(i, None)
        else:
            ents.update(dict.fromkeys(hits))
        return 1 if hits else 0

    def _add_rec_by_index(self, hash_: FtraceHash, g: Glob, clear: bool) -> int:
        err, idx = kstrtoul(g.search)
        if err:
            return 0
        idx -= 1
        if idx < 0 or idx >= self.nr_records:
            return 0
        if clear:
            hash_.ents.pop(idx, None)
        elif idx not in hash_.ents:
            hash_.ents[idx] = None
        return 1

    def ftrace_match_records(self, hash_: FtraceHash, buff: str) -> int:
        return self.match_records(hash_, buff, None)

    # ------------------------------------------------------------------ trampolines
    def _tramp_base(self) -> int:
        top = 0
        for a, m in zip(self.ips, self.mods, strict=False):
            if m is not None and a > top:
                top = a
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
            return self._ops_assist_func
        return ops.func

    def _update_trampoline(self, ops: FtraceOps) -> None:
        """ftrace_update_trampoline() + x86's arch_ftrace_update_trampoline()."""
        if not ops.trampoline:
            ops.trampoline = self._alloc_tramp()
            ops.trampoline_size = 0x1000
            ops.flags |= OPS_FL_ALLOC_TRAMP
        ops.tramp_func = self.ops_get_func(ops)
        if ops.site is None:
            ips = self.ips

            def site(i: int, pip: int, fregs: Any, _op: FtraceOps = ops, _ips: list[int] = ips) -> None:
                _op.tramp_func(_ips[i], pip, _op, fregs)

            ops.site = site

    def _trampoline_free(self, ops: FtraceOps) -> None:
        if ops.flags & OPS_FL_ALLOC_TRAMP and ops.trampoline:
            self._tramp_free.append(ops.trampoline)
            ops.trampoline = 0
            ops.trampoline_size = 0
            ops.flags &= ~OPS_FL_ALLOC_TRAMP

    # ------------------------------------------------------------------ recursion
    def recursion_trylock(self, ip: int, pip: int, start: int = TRACE_FTRACE_START) -> int:
        """trace_test_and_set_recursion(): the bit taken, or -1 (a miss, counted)."""
        sched = self.k.sched  # type: ignore[attr-defined]
        task = sched.current
        val = task.trace_recursion
        irq = sched.irq_flags
        level = 3 if irq & _NMI else 2 if irq & _HARDIRQ else 1 if irq & _SOFTIRQ else 0
        bit = TRACE_CTX_NORMAL - level + start
        if val & (1 << bit):
            bit = TRACE_CTX_TRANSITION + start
            if val & (1 << bit):
                self.recursion_misses += 1
                return -1
        task.trace_recursion = val | (1 << bit)
        return bit

    def recursion_unlock(self, bit: int) -> None:
        task = self.k.sched.current  # type: ignore[attr-defined]
        task.trace_recursion &= ~(1 << bit)

    # ------------------------------------------------------------------ dispatch
    @ksym("ftrace_ops_assist_func")
    def _ops_assist_func(self, ip: int, pip: int, op: FtraceOps, fregs: Any) -> None:
        bit = self.recursion_trylock(ip, pip, TRACE_LIST_START)
        if bit < 0:
            return
        try:
            op.func(ip, pip, op, fregs)
        finally:
            self.recursion_unlock(bit)

    @ksym("arch_ftrace_ops_list_func")
    def ops_list_func(self, ip: int, pip: int, op: FtraceOps | None, fregs: Any) -> None:
        """__ftrace_ops_list_func() entered with an ip (used by direct callers)."""
        i = self.ip_to_index(ip)
        if i is not None:
            self._list_site(i, pip, fregs)

    def _list_site(self, i: int, pip: int, fregs: Any) -> None:
        """ftrace_caller → arch_ftrace_ops_list_func for record ``i``."""
        ip = self.ips[i]
        bit = self.recursion_trylock(ip, pip, TRACE_LIST_START)
        if bit < 0:
            return
        try:
            regs = self.flags[i] & FL_REGS_EN
            for op in self._ops_snapshot:
                fl = op.flags
                if fl & OPS_FL_STUB:
                    continue
                if fl & OPS_FL_SAVE_REGS and not regs:
                    continue
                fh = op.func_hash
                f = fh.filter_hash
                if (f.ents or f.flags) and i not in f.ents:
                    continue
                if i in fh.notrace_hash.ents:
                    continue
                op.func(ip, pip, op, fregs)
        finally:
            self.recursion_unlock(bit)

    def _stub_site(self, i: int, pip: int, fregs: Any) -> None:
        return None

    def _caller_site(self, i: int, pip: int, fregs: Any) -> None:
        """ftrace_caller without a private trampoline: calls ftrace_trace_function."""
        self._trace_site(i, pip, fregs)

    _ops_snapshot: tuple[FtraceOps, ...] = ()

    def _update_ftrace_function(self) -> None:
        """update_ftrace_function(): what ftrace_caller calls."""
        self._ops_snapshot = tuple(self.ops_list)
        if not self.ops_list:
            self.trace_func = _ftrace_stub
            self.function_trace_op = None
            self._trace_site = self._stub_site
            return
        if len(self.ops_list) == 1:
            op = self.ops_list[0]
            if op.flags & (OPS_FL_DYNAMIC | OPS_FL_RCU):
                func: OpsFunc = self.ops_list_func
            else:
                func = self.ops_get_func(op)
        else:
            op = None  # type: ignore[assignment]
            func = self.ops_list_func
        self.trace_func = func
        if func == self.ops_list_func:
            self.function_trace_op = None
            self._trace_site = self._list_site
        else:
            self.function_trace_op = op
            ips = self.ips

            def direct(i: int, pip: int, fregs: Any, _f: OpsFunc = func, _op: FtraceOps = op) -> None:
                _f(ips[i], pip, _op, fregs)

            self._trace_site = direct

    # ------------------------------------------------------------------ pid filtering
    def pids_enabled(self, ops: FtraceOps) -> bool:
        """ftrace_pids_enabled(): the ops filters on its trace array's pid lists."""
        if not ops.flags & OPS_FL_PID or ops.private is None:
            return False
        st = ops.private.ftrace_state
        return st.function_pids is not None or st.function_no_pids is not None

    def trace_task(self, tr: Any, task: Any = None) -> bool:
        """!trace_ignore_this_task(function_pids, function_no_pids, task): the check
        ftrace_filter_pid_sched_switch_probe() caches in ftrace_ignore_pid."""
        st = tr.ftrace_state
        if task is None:
            task = self.k.sched.current  # type: ignore[attr-defined]
        pids, no_pids = st.function_pids, st.function_no_pids
        if pids is not None and task.pid not in pids:
            return False
        return not (no_pids is not None and task.pid in no_pids)

    def _make_pid_func(self, ops: FtraceOps) -> OpsFunc:
        trace_task = self.trace_task

        @ksym("ftrace_pid_func")
        def ftrace_pid_func(ip: int, pip: int, op: FtraceOps, fregs: Any) -> None:
            tr = op.private
            if tr is not None and not trace_task(tr):
                return
            assert op.saved_func is not None
            op.saved_func(ip, pip, op, fregs)

        return ftrace_pid_func

    def pid_write(self, tr: Any, data: bytes, notrace: bool) -> int:
        """pid_write() + trace_pid_write(): add pids (all or nothing); no pid at all
        clears the list.  Returns the bytes consumed."""
        st = self.tr_state(tr)
        old = st.function_no_pids if notrace else st.function_pids
        new = set(old) if old is not None else set()
        nr = len(new)
        parser = TraceParser(128)
        read = 0
        while read < len(data):
            n = parser.feed(data[read:], 0)
            read += n
            if not parser.loaded():
                break
            err, val = kstrtoul(parser.word)
            if err:
                raise KernelError(errno.EINVAL)
            pid = val & 0xFFFFFFFF
            if pid >= 1 << 30:  # trace_pid_list_set(): beyond the pid_list bits
                raise KernelError(errno.EPERM)
            new.add(pid)
            nr += 1
            parser.clear()
        result = new if nr else None
        if notrace:
            st.function_no_pids = result
        else:
            st.function_pids = result
        self.update_pid_func()
        return read

    def pid_reset(self, tr: Any, notrace: bool) -> None:
        """ftrace_pid_reset(): an O_TRUNC open of set_ftrace_(notrace_)pid."""
        st = self.tr_state(tr)
        if notrace:
            st.function_no_pids = None
        else:
            st.function_pids = None
        self.update_pid_func()

    def pid_show(self, tr: Any, notrace: bool) -> str:
        st = self.tr_state(tr)
        pids = st.function_no_pids if notrace else st.function_pids
        if pids is None:
            return "no pid\n"
        return "".join(f"{p}\n" for p in sorted(pids))

    def ftrace_pid_follow_fork(self, tr: Any, enable: bool) -> None:
        """The function-fork option: children of listed tasks join the lists."""
        self.tr_state(tr).follow_fork = enable

    def sched_process_fork(self, tr: Any, parent: Any, child: Any) -> None:
        """ftrace_pid_follow_sched_process_fork() for one trace array."""
        st = self.tr_state(tr)
        if not st.follow_fork:
            return
        for lst in (st.function_pids, st.function_no_pids):
            if lst is not None and parent.pid in lst:
                lst.add(child.pid)

    def sched_process_free(self, tr: Any, task: Any) -> None:
        st = self.tr_state(tr)
        if not st.follow_fork:
            return
        for lst in (st.function_pids, st.function_no_pids):
            if lst is not None:
                lst.discard(task.pid)

    def update_pid_func(self) -> None:
        """ftrace_update_pid_func(): call after set_ftrace_pid changes."""
        if not self.ops_list:
            return
        for op in self.ops_list:
            if op.flags & OPS_FL_PID and op.saved_func is not None:
                op.func = self._make_pid_func(op) if self.pids_enabled(op) else op.saved_func
                self._update_trampoline(op)
        fg = getattr(self.k, "fgraph", None)
        if fg is not None:
            fg.update_pid_func()
        self._update_ftrace_function()

    # ------------------------------------------------------------------ registration
    def _register(self, ops: FtraceOps) -> None:
        """__register_ftrace_function()."""
        if ops.flags & OPS_FL_DELETED:
            raise KernelError(errno.EINVAL)
        if ops.flags & OPS_FL_ENABLED:
            raise KernelError(errno.EBUSY)
        if not ops.core_data:
            ops.flags |= OPS_FL_DYNAMIC
        self.ops_list.insert(0, ops)
        ops.saved_func = ops.func
        if self.pids_enabled(ops):
            ops.func = self._make_pid_func(ops)
        self._update_trampoline(ops)
        self._update_ftrace_function()

    def _unregister(self, ops: FtraceOps) -> None:
        if not ops.flags & OPS_FL_ENABLED:
            raise KernelError(errno.EBUSY)
        try:
            self.ops_list.remove(ops)
        except ValueError:
            raise KernelError(errno.EINVAL) from None
        self._update_ftrace_function()
        if ops.saved_func is not None:
            ops.func = ops.saved_func

    def ftrace_startup(self, ops: FtraceOps) -> None:
        self._register(ops)
        self.start_up += 1
        ops.flags |= OPS_FL_ENABLED | OPS_FL_ADDING
        try:
            self._ipmodify_update(ops, FtraceHash(), self._ipmod_hash(ops.filter_hash))
        except KernelError:
            self._unregister(ops)
            self.start_up -= 1
            ops.flags &= ~(OPS_FL_ENABLED | OPS_FL_ADDING)
            if ops.flags & OPS_FL_DYNAMIC:
                self._trampoline_free(ops)
            raise
        dirty = self._hash_rec_update(ops, True)
        self._replace_code(dirty)
        ops.flags &= ~OPS_FL_ADDING

    def ftrace_shutdown(self, ops: FtraceOps) -> None:
        self._unregister(ops)
        self.start_up -= 1
        try:  # disabling never fails
            self._ipmodify_update(ops, self._ipmod_hash(ops.filter_hash), FtraceHash())
        except KernelError:
            pass
        dirty = self._hash_rec_update(ops, False)
        ops.flags &= ~OPS_FL_ENABLED
        ops.flags |= OPS_FL_REMOVING
        self.removed_ops = ops
        ops.old_hash = ops.func_hash
        self._replace_code(dirty)
        ops.old_hash = None
        self.removed_ops = None
        ops.flags &= ~OPS_FL_REMOVING
        if ops.flags & OPS_FL_DYNAMIC:
            self._trampoline_free(ops)

    def register_ftrace_function(self, ops: FtraceOps) -> None:
        """register_ftrace_function(): raises KernelError like the kernel's -errno."""
        ops.flags |= OPS_FL_INITIALIZED
        self.ftrace_startup(ops)

    def unregister_ftrace_function(self, ops: FtraceOps) -> None:
        self.ftrace_shutdown(ops)

    # ------------------------------------------------------------------ record accounting
    def _tramp_ops_any_other(self, i: int, exclude: FtraceOps | None) -> FtraceOps | None:
        for op in self.ops_list:
            if op is exclude or not op.trampoline:
                continue
            if op.func_hash.contains(i):
                return op
        return None

    def _needs_regs(self, i: int) -> bool:
        for op in self.ops_list:
            if op.func_hash.contains(i) and op.flags & OPS_FL_SAVE_REGS:
                return True
        return False

    def _hash_rec_update(self, ops: FtraceOps, inc: bool) -> list[int]:
        """__ftrace_hash_rec_update(): adjust record refcounts; returns records touched."""
        if not ops.flags & OPS_FL_ENABLED:
            return []
        filt = ops.func_hash.filter_hash
        notrace = ops.func_hash.notrace_hash.ents
        if filt.empty():
            recs: Iterable[int] = (i for i in range(self.nr_records) if i not in notrace) \
                if notrace else range(self.nr_records)
        else:
            recs = sorted(i for i in filt.ents if i not in notrace)
        flags = self.flags
        ofl = ops.flags
        has_tramp = bool(ops.trampoline)
        dirty: list[int] = []
        for i in recs:
            f = flags[i]
            if f & FL_DISABLED and not f & FL_ENABLED:
                continue
            if inc:
                f += 1
                if f & REF_MAX == REF_MAX:
                    raise KernelError(errno.EINVAL, "ftrace refcount overflow")
                if ofl & OPS_FL_DIRECT:
                    f |= FL_DIRECT
                if f & REF_MAX == 1 and has_tramp:
                    f |= FL_TRAMP
                else:
                    f &= ~FL_TRAMP
                if ofl & OPS_FL_SAVE_REGS:
                    f |= FL_REGS
            else:
                if f & REF_MAX == 0:
                    continue
                f -= 1
                if ofl & OPS_FL_DIRECT:
                    f &= ~FL_DIRECT
                if f & REF_MAX and f & FL_REGS and ofl & OPS_FL_SAVE_REGS:
                    flags[i] = f
                    if not self._needs_regs(i):
                        f &= ~FL_REGS
                if f & REF_MAX == 1 and self._tramp_ops_any_other(i, ops) is not None:
                    f |= FL_TRAMP
                else:
                    f &= ~FL_TRAMP
            flags[i] = f
            dirty.append(i)
        return dirty

    def _hash_rec_update_modify(self, ops: FtraceOps, inc: bool) -> list[int]:
        dirty = self._hash_rec_update(ops, inc)
        if ops.func_hash is self.global_ops.local_hash:
            for op in self.ops_list:
                if op is not ops and op.func_hash is self.global_ops.local_hash:
                    dirty += self._hash_rec_update(op, inc)
        return dirty

    @staticmethod
    def _check_record(f: int) -> int:
        """ftrace_check_record(rec, enable=true, update=true) → the new flags."""
        if f & FL_DISABLED and not f & FL_ENABLED:
            return f
        cnt = f & REF_MAX
        flag = FL_ENABLED if cnt else 0
        if flag:
            if bool(f & FL_REGS) != bool(f & FL_REGS_EN):
                flag |= FL_REGS
            if bool(f & FL_TRAMP) != bool(f & FL_TRAMP_EN):
                flag |= FL_TRAMP
            if cnt == 1:
                if bool(f & FL_DIRECT) != bool(f & FL_DIRECT_EN):
                    flag |= FL_DIRECT
            elif f & FL_DIRECT_EN:
                flag |= FL_DIRECT
        if (f & FL_ENABLED) == flag:
            return f
        if flag:
            f |= FL_ENABLED | FL_TOUCHED
            if flag & FL_REGS:
                f = f | FL_REGS_EN if f & FL_REGS else f & ~FL_REGS_EN
            if flag & FL_TRAMP:
                f = f | FL_TRAMP_EN if f & FL_TRAMP else f & ~FL_TRAMP_EN
            if f & (FL_DIRECT | FL_IPMODIFY):
                f |= FL_MODIFIED
            if flag & FL_DIRECT:
                if cnt == 1 and f & FL_DIRECT:
                    f |= FL_DIRECT_EN
                else:
                    f &= ~FL_DIRECT_EN
            return f
        if not cnt:
            return f & NOCLEAR_FLAGS
        return f & ~(FL_ENABLED | FL_TRAMP_EN | FL_REGS_EN | FL_DIRECT_EN | FL_CALL_OPS_EN)

    def _find_tramp_ops_new(self, i: int) -> FtraceOps | None:
        for op in self.ops_list:
            if op.func_hash.contains(i):
                return op
        return None

    def ops_quiet(self) -> bool:
        """Every registered ops says its callback can leave no trace now."""
        for op in self.ops_list:
            q = op.quiet
            if q is None or not q():
                return False
        return True

    def _replace_code(self, dirty: Iterable[int]) -> None:
        """ftrace_replace_code(): apply the records' new state to their call sites."""
        flags = self.flags
        site = self.site_func
        check = self._check_record
        caller = self._caller_site
        active = self.nr_active
        for i in dirty:
            f = check(flags[i])
            flags[i] = f
            if site[i] is not None:
                active -= 1
            if not f & FL_ENABLED:
                site[i] = None
                continue
            active += 1
            if f & FL_TRAMP_EN:
                op = self._find_tramp_ops_new(i)
                site[i] = op.site if op is not None and op.site is not None else caller
            else:
                site[i] = caller
        self.nr_active = active  # sites with something attached: 0 lets the workload idle

    # ------------------------------------------------------------------ IPMODIFY
    @staticmethod
    def _ipmod_hash(h: FtraceHash) -> FtraceHash | None:
        """Empty filter = all functions (NULL in __ftrace_hash_update_ipmodify)."""
        return None if h.empty() else h

    def _ipmodify_update(self, ops: FtraceOps, old: FtraceHash | None, new: FtraceHash | None) -> None:
        """__ftrace_hash_update_ipmodify(): EBUSY on a second IPMODIFY ops at a site."""
        if not ops.flags & OPS_FL_ENABLED:
            return
        is_ipmodify = bool(ops.flags & OPS_FL_IPMODIFY)
        is_direct = bool(ops.flags & OPS_FL_DIRECT)
        if not is_ipmodify and not is_direct:
            return
        if old is None or new is None:
            raise KernelError(errno.EINVAL)
        flags = self.flags
        changed: list[tuple[int, int]] = []
        for i in sorted(set(old.ents) | set(new.ents)):
            if flags[i] & FL_DISABLED:
                continue
            in_old = i in old.ents
            in_new = i in new.ents
            if in_old == in_new:
                continue
            if in_new:
                if flags[i] & FL_IPMODIFY:
                    if is_ipmodify:
                        for j, f in changed:
                            flags[j] = f
                        raise KernelError(errno.EBUSY)
                    raise KernelError(errno.EBUSY)
                if is_ipmodify:
                    changed.append((i, flags[i]))
                    flags[i] |= FL_IPMODIFY
            elif is_ipmodify:
                changed.append((i, flags[i]))
                flags[i] &= ~FL_IPMODIFY

    # ------------------------------------------------------------------ hash updates
    def _hash_move(self, ops: FtraceOps, enable: bool, src: FtraceHash) -> None:
        """ftrace_hash_move(): install ``src`` as the ops' filter/notrace hash."""
        if ops.flags & OPS_FL_IPMODIFY and not enable:
            raise KernelError(errno.EINVAL)
        new = FtraceHash() if src.empty() else src.copy()
        if enable:
            self._ipmodify_update(ops, self._ipmod_hash(ops.func_hash.filter_hash),
                                  self._ipmod_hash(new))
        dirty = self._hash_rec_update_modify(ops, False)
        if enable:
            ops.func_hash.filter_hash = new
        else:
            ops.func_hash.notrace_hash = new
        dirty += self._hash_rec_update_modify(ops, True)
        self._ops_update_code(ops, dirty)

    def _ops_update_code(self, ops: FtraceOps, dirty: list[int]) -> None:
        # only enabled ops (or the ones sharing global_ops' hash) dirtied records
        self._replace_code(dirty)

    def _hash_move_and_update_ops(self, ops: FtraceOps, hash_: FtraceHash, enable: bool) -> None:
        """ftrace_hash_move_and_update_ops()."""
        if ops.flags & OPS_FL_SUBOP:
            self._hash_move_and_update_subops(ops, hash_, enable)
            return
        if not ops.flags & OPS_FL_ENABLED:
            for op in self.ops_list:
                for sub in op.subop_list:
                    if sub.flags & OPS_FL_ENABLED and sub.func_hash is ops.func_hash:
                        self._hash_move_and_update_subops(sub, hash_, enable)
                        return
        self._hash_move(ops, enable, hash_)

    # ------------------------------------------------------------------ subops
    @staticmethod
    def _append_hashes(ops: FtraceOps) -> FtraceHash:
        new: FtraceHash | None = None
        for sub in ops.subop_list:
            fh = sub.func_hash.filter_hash
            if new is None:
                new = FtraceHash()
            if fh.empty():
                return FtraceHash()
            for i in fh.ents:
                new.ents.setdefault(i)
        return new if new is not None else FtraceHash()

    @staticmethod
    def _intersect_hashes(ops: FtraceOps) -> FtraceHash:
        new: FtraceHash | None = None
        for sub in ops.subop_list:
            nh = sub.func_hash.notrace_hash
            if new is None:
                new = ops.func_hash.notrace_hash.copy()
                continue
            if new.empty() or nh.empty():
                return FtraceHash()
            new = FtraceHash(i for i in new.ents if i in nh.ents)
            if new.empty():
                return FtraceHash()
        return new if new is not None else FtraceHash()

    def _update_ops(self, ops: FtraceOps, filter_hash: FtraceHash, notrace_hash: FtraceHash) -> None:
        if not ops_equal(filter_hash, ops.func_hash.filter_hash):
            self._hash_move(ops, True, filter_hash)
        if not ops_equal(notrace_hash, ops.func_hash.notrace_hash):
            self._hash_move(ops, False, notrace_hash)

    def ftrace_startup_subops(self, ops: FtraceOps, subops: FtraceOps) -> None:
        """ftrace_startup_subops(): add a subops (an fgraph user) to a manager ops."""
        ops.flags |= OPS_FL_INITIALIZED
        subops.flags |= OPS_FL_INITIALIZED
        if subops.flags & OPS_FL_ENABLED:
            raise KernelError(errno.EBUSY)
        if not ops.subop_list:
            save = (ops.func_hash.filter_hash, ops.func_hash.notrace_hash)
            ops.func_hash.filter_hash = subops.func_hash.filter_hash.copy()
            ops.func_hash.notrace_hash = subops.func_hash.notrace_hash.copy()
            if ops.func_hash.filter_hash.empty():
                ops.func_hash.filter_hash = FtraceHash()
            ops.subop_list.insert(0, subops)
            try:
                self.ftrace_startup(ops)
            except KernelError:
                ops.subop_list.remove(subops)
                ops.func_hash.filter_hash, ops.func_hash.notrace_hash = save
                raise
            subops.flags |= OPS_FL_ENABLED | OPS_FL_SUBOP
            subops.managed = ops
            return
        of, sf = ops.func_hash.filter_hash, subops.func_hash.filter_hash
        if of.empty() or sf.empty():
            filter_hash = FtraceHash()
        else:
            filter_hash = of.copy()
            for i in sf.ents:
                filter_hash.ents.setdefault(i)
        on, sn = ops.func_hash.notrace_hash, subops.func_hash.notrace_hash
        if on.empty() or sn.empty():
            notrace_hash = FtraceHash()
        else:
            notrace_hash = FtraceHash(i for i in on.ents if i in sn.ents)
        ops.subop_list.insert(0, subops)
        try:
            self._update_ops(ops, filter_hash, notrace_hash)
        except KernelError:
            ops.subop_list.remove(subops)
            raise
        subops.flags |= OPS_FL_ENABLED | OPS_FL_SUBOP
        subops.managed = ops

    def ftrace_shutdown_subops(self, ops: FtraceOps, subops: FtraceOps) -> None:
        if not subops.flags & OPS_FL_ENABLED:
            raise KernelError(errno.EINVAL)
        ops.subop_list.remove(subops)
        if not ops.subop_list:
            try:
                self.ftrace_shutdown(ops)
            except KernelError:
                ops.subop_list.insert(0, subops)
                raise
            ops.func_hash.filter_hash = FtraceHash()
            ops.func_hash.notrace_hash = FtraceHash()
            subops.flags &= ~(OPS_FL_ENABLED | OPS_FL_SUBOP)
            subops.managed = None
            return
        filter_hash = self._append_hashes(ops)
        notrace_hash = self._intersect_hashes(ops)
        try:
            self._update_ops(ops, filter_hash, notrace_hash)
        except KernelError:
            ops.subop_list.insert(0, subops)
            raise
        subops.flags &= ~(OPS_FL_ENABLED | OPS_FL_SUBOP)
        subops.managed = None

    def _hash_move_and_update_subops(self, subops: FtraceOps, hash_: FtraceHash, enable: bool) -> None:
        ops = subops.managed
        if ops is None or ops.flags & OPS_FL_SUBOP:
            raise KernelError(errno.EINVAL)
        fh = subops.func_hash
        save = fh.filter_hash if enable else fh.notrace_hash
        new_sub = FtraceHash() if hash_.empty() else hash_.copy()
        if enable:
            fh.filter_hash = new_sub
            new = self._append_hashes(ops)
        else:
            fh.notrace_hash = new_sub
            new = self._intersect_hashes(ops)
        try:
            self._hash_move(ops, enable, new)
        except KernelError:
            if enable:
                fh.filter_hash = save
            else:
                fh.notrace_hash = save
            raise

    # ------------------------------------------------------------------ filter API
    def _set_hash(self, ops: FtraceOps, buf: str | None, ips: list[int] | None,
                  remove: bool, reset: bool, enable: bool) -> None:
        """ftrace_set_hash()."""
        ops.flags |= OPS_FL_INITIALIZED
        orig = ops.func_hash.filter_hash if enable else ops.func_hash.notrace_hash
        hash_ = FtraceHash() if reset else orig.copy()
        if buf is not None and not self.ftrace_match_records(hash_, buf):
            raise KernelError(errno.EINVAL)
        if ips is not None:
            for ip in ips:
                i = self.ftrace_location(ip)
                if i is None:
                    raise KernelError(errno.EINVAL)
                if remove:
                    if i not in hash_.ents:
                        raise KernelError(errno.ENOENT)
                    del hash_.ents[i]
                else:
                    hash_.ents.setdefault(i)
        self._hash_move_and_update_ops(ops, hash_, enable)

    def ftrace_set_filter(self, ops: FtraceOps, buf: str | None, reset: bool = False) -> None:
        """ftrace_set_filter(): ``buf`` is ONE glob (no commands, no :mod:)."""
        self._set_hash(ops, buf, None, False, reset, True)

    def ftrace_set_notrace(self, ops: FtraceOps, buf: str | None, reset: bool = False) -> None:
        self._set_hash(ops, buf, None, False, reset, False)

    def ftrace_set_filter_ip(self, ops: FtraceOps, ip: int, remove: bool = False,
                             reset: bool = False) -> None:
        self._set_hash(ops, None, [ip], remove, reset, True)

    def ftrace_set_filter_ips(self, ops: FtraceOps, ips: Iterable[int], remove: bool = False,
                              reset: bool = False) -> None:
        self._set_hash(ops, None, list(ips), remove, reset, True)

    def ftrace_free_filter(self, ops: FtraceOps) -> None:
        ops.func_hash.filter_hash = FtraceHash()
        ops.func_hash.notrace_hash = FtraceHash()

    # ------------------------------------------------------------------ return hooks
    @staticmethod
    def push_ret_hook(task: Any, frame: list[Any]) -> None:
        """Entry callbacks hook the return: ``frame[0](frame, retval)`` runs at return."""
        task.ret_stack.append(frame)

    @staticmethod
    def func_return(rs: list[list[Any]], n: int, retval: int = 0) -> None:
        """The function returns: run the return hooks pushed since depth ``n`` (LIFO)."""
        while len(rs) > n:
            frame = rs.pop()
            frame[0](frame, retval)

    def func_entry(self, i: int, parent_ip: int, fregs: Any = None) -> Any:
        """Token form of the protocol: returns None or what ``func_exit`` needs."""
        f = self.site_func[i]
        if f is None:
            return None
        rs = self.k.sched.current.ret_stack  # type: ignore[attr-defined]
        n = len(rs)
        f(i, parent_ip, fregs)
        return (rs, n) if len(rs) != n else None

    def func_exit(self, i: int, token: Any, retval: int = 0) -> None:
        if token is not None:
            self.func_return(token[0], token[1], retval)

    # ------------------------------------------------------------------ commands/probes
    def register_ftrace_command(self, name: str, func: CommandFunc) -> None:
        if name in self.commands:
            raise KernelError(errno.EBUSY)
        self.commands[name] = func

    def unregister_ftrace_command(self, name: str) -> None:
        if self.commands.pop(name, None) is None:
            raise KernelError(errno.ENODEV)

    @staticmethod
    def tr_state(tr: Any) -> TrFtraceState:
        """The ftrace fields of a trace_array."""
        return tr.ftrace_state

    def _make_probe_ops(self, probe: FuncProbe) -> FtraceOps:
        @ksym("function_trace_probe_call")
        def function_trace_probe_call(ip: int, pip: int, op: FtraceOps, fregs: Any) -> None:
            probe.probe_ops.func(ip, pip, probe.tr, probe.probe_ops, probe.data)

        ops = FtraceOps(function_trace_probe_call, OPS_FL_INITIALIZED, name="probe")
        return ops

    def register_ftrace_function_probe(self, glob: str, tr: Any, probe_ops: FuncProbeOps,
                                       data: Any) -> int:
        """register_ftrace_function_probe(): returns the number of new functions."""
        if tr is None or glob.startswith("!"):
            raise KernelError(errno.EINVAL)
        st = self.tr_state(tr)
        probe = next((p for p in st.func_probes if p.probe_ops is probe_ops), None)
        if probe is None:
            probe = FuncProbe(probe_ops, tr, FtraceOps())
            probe.ops = self._make_probe_ops(probe)
            st.func_probes.insert(0, probe)
        probe.ref += 1
        try:
            old = probe.ops.func_hash.filter_hash
            hash_ = old.copy()
            if not self.ftrace_match_records(hash_, glob):
                raise KernelError(errno.EINVAL)
            count = 0
            added: list[int] = []
            for i in hash_.ents:
                if i in old.ents:
                    continue
                if probe_ops.init is not None:
                    try:
                        probe_ops.init(probe_ops, tr, self.ips[i], data, probe)
                    except KernelError:
                        if probe_ops.free is not None and count:
                            probe_ops.free(probe_ops, tr, 0, probe)
                        probe.data = None
                        raise
                count += 1
                added.append(i)
            if not count:
                raise KernelError(errno.EINVAL)
            try:
                self._hash_move_and_update_ops(probe.ops, hash_, True)
            except KernelError:
                if probe_ops.free is not None:
                    for i in added:
                        probe_ops.free(probe_ops, tr, self.ips[i], probe)
                raise
            probe.ref += count
            if not probe.ops.flags & OPS_FL_ENABLED:
                self.ftrace_startup(probe.ops)
            return count
        finally:
            self._release_probe(st, probe)

    def _release_probe(self, st: TrFtraceState, probe: FuncProbe) -> None:
        probe.ref -= 1
        if not probe.ref:
            if probe.probe_ops.free is not None:
                probe.probe_ops.free(probe.probe_ops, probe.tr, 0, probe)
            if probe in st.func_probes:
                st.func_probes.remove(probe)

    def unregister_ftrace_function_probe_func(self, glob: str | None, tr: Any,
                                              probe_ops: FuncProbeOps) -> None:
        """unregister_ftrace_function_probe_func(): ENODEV if that probe_ops has none."""
        func_g: Glob | None = None
        if glob and glob != "*":
            func_g = filter_parse_regex(glob)
            if func_g.negate:
                raise KernelError(errno.EINVAL)
        st = self.tr_state(tr)
        probe = next((p for p in st.func_probes if p.probe_ops is probe_ops), None)
        if probe is None:
            raise KernelError(errno.ENODEV)
        probe.ref += 1
        try:
            old = probe.ops.func_hash.filter_hash
            if old.empty():
                raise KernelError(errno.EINVAL)
            hash_ = old.copy()
            removed = []
            for i in list(hash_.ents):
                if func_g is not None and not self._match_str(self.names[i], func_g):
                    continue
                removed.append(i)
                del hash_.ents[i]
            if not removed:
                raise KernelError(errno.EINVAL)
            probe.ref -= len(removed)
            if hash_.empty() and probe.ops.flags & OPS_FL_ENABLED:
                self.ftrace_shutdown(probe.ops)
            self._hash_move_and_update_ops(probe.ops, hash_, True)
            if probe_ops.free is not None:
                for i in removed:
                    probe_ops.free(probe_ops, tr, self.ips[i], probe)
        finally:
            self._release_probe(st, probe)

    def clear_ftrace_function_probes(self, tr: Any) -> None:
        st = self.tr_state(tr)
        for probe in list(st.func_probes):
            try:
                self.unregister_ftrace_function_probe_func(None, tr, probe.probe_ops)
            except KernelError:
                pass

    # ------------------------------------------------------------------ :mod: command
    def _module_exists(self, module: str) -> bool:
        return module in self._records_by_mod()

    def _cache_mod(self, tr: Any, func: str, module: str, enable: bool) -> None:
        st = self.tr_state(tr)
        head = st.mod_trace if enable else st.mod_notrace
        if func.startswith("!"):
            f = func[1:]
            found = False
            for m in list(head):
                if m.module != module:
                    continue
                if f == "*" or m.func == f:
                    head.remove(m)
                    found = True
            if not found:
                raise KernelError(errno.EINVAL)
            return
        if self._module_exists(module):
            raise KernelError(errno.EINVAL)
        head.insert(0, ModLoad(func, module, enable))

    def _mod_callback(self, tr: Any, hash_: FtraceHash, func: str, cmd: str,
                      module: str | None, enable: bool) -> None:
        """ftrace_mod_callback(): ``FUNC:mod:MODULE``."""
        if tr is None:
            raise KernelError(errno.ENODEV)
        ret = self.match_records(hash_, func, module)
        if not ret:
            self._cache_mod(tr, func, module if module is not None else "", enable)

    # ------------------------------------------------------------------ regex files
    def process_regex(self, tr: Any, hash_: FtraceHash, buff: str, enable: bool) -> None:
        """ftrace_process_regex(): one word of a filter file."""
        func, sep, rest = buff.partition(":")
        if not sep:
            if not self.ftrace_match_records(hash_, func):
                raise KernelError(errno.EINVAL)
            return
        command, sep2, nxt = rest.partition(":")
        param = nxt if sep2 else None
        cmd = self.commands.get(command)
        if cmd is None:
            raise KernelError(errno.EINVAL)
        cmd(tr, hash_, func, command, param, enable)

    def regex_open(self, tr: Any, ops: FtraceOps | None, flag: int, read: bool, write: bool,
                   trunc: bool) -> RegexIter:
        """ftrace_regex_open(): the per-open iterator of set_ftrace_filter/notrace."""
        if ops is None:
            ops = tr.ops if tr is not None else self.global_ops
        assert ops is not None
        ops.flags |= OPS_FL_INITIALIZED
        st = self.tr_state(tr) if tr is not None else None
        if flag & ITER_NOTRACE:
            h = ops.func_hash.notrace_hash
            mods = st.mod_notrace if st is not None else None
        else:
            h = ops.func_hash.filter_hash
            mods = st.mod_trace if st is not None else None
        if write and trunc:
            hash_ = FtraceHash()
            if mods is not None:
                mods.clear()
        else:
            hash_ = h.copy()
        return RegexIter(self, tr, ops, flag, hash_, read, write)

    # ------------------------------------------------------------------ text output
    def _rec_flags_text(self, i: int) -> str:
        f = self.flags[i]
        out = [self.rec_name(i), f" ({f & REF_MAX})",
               " R" if f & FL_REGS else "  ", " I" if f & FL_IPMODIFY else "  ",
               " D" if f & FL_DIRECT else "  ", " O" if f & FL_CALL_OPS else "  ",
               " M " if f & FL_MODIFIED else "   "]
        if f & FL_TRAMP_EN:
            ops = [op for op in self.ops_list if op.trampoline and op.func_hash.contains(i)]
            if ops:
                for op in ops:
                    out.append(f"\ttramp: {op.trampoline:#x} ({self._ps(op.func)})")
                    out.append(f" ->{self._ps(op.tramp_func)}")
            else:
                out.append("\ttramp: ERROR!")
        else:
            out.append(f" ->{self._ps(self.trace_func)}")
        return "".join(out)

    def _ps(self, fn: object) -> str:
        return sym_ps(fn, self.kallsyms)

    def enabled_functions_text(self) -> str:
        flags = self.flags
        return "".join(self._rec_flags_text(i) + "\n"
                       for i in range(self.nr_records) if flags[i] & FL_ENABLED)

    def touched_functions_text(self) -> str:
        flags = self.flags
        return "".join(self._rec_flags_text(i) + "\n"
                       for i in range(self.nr_records) if flags[i] & FL_TOUCHED)

    def available_filter_functions_text(self) -> str:
        if self._avail_text is None:
            self._avail_text = "".join(self.rec_name(i) + "\n" for i in range(self.nr_records))
        return self._avail_text

    def available_filter_functions_addrs_text(self) -> str:
        if self._avail_addrs_text is None:
            self._avail_addrs_text = "".join(f"{self.ips[i]:x} {self.rec_name(i)}\n"
                                             for i in range(self.nr_records))
        return self._avail_addrs_text

    def dyn_ftrace_total_info_text(self) -> str:
        """tracing_read_dyn_info(): records, pages and page groups (vmlinux + modules)."""
        groups: dict[str | None, int] = {}
        for m in self.mods:
            groups[m] = groups.get(m, 0) + 1
        pages = ngroups = 0
        for count in groups.values():
            left = count
            while left:
                npages = -(-left * ENTRY_SIZE // PAGE_SIZE)
                order = fls(npages) - 1
                pages += 1 << order
                ngroups += 1
                cnt = (PAGE_SIZE << order) // ENTRY_SIZE
                left -= min(cnt, left)
        return f"{self.nr_records} pages:{pages} groups: {ngroups}\n"

    # ------------------------------------------------------------------ trace arrays
    def init_global_array_ops(self, tr: Any) -> None:
        """ftrace_init_global_array_ops(): the top level uses global_ops."""
        tr.ops = self.global_ops
        self.global_ops.private = tr
        self.tr_state(tr)

    def instance_create(self, tr: Any) -> None:
        """ftrace_allocate_ftrace_ops() for a new instance."""
        if getattr(tr, "ops", None) is None:
            tr.ops = new_trace_ops(self, tr)
        self.tr_state(tr)

    def instance_destroy(self, tr: Any) -> None:
        """clear_ftrace_function_probes() + ftrace_destroy_function_files()."""
        self.clear_ftrace_function_probes(tr)
        ops = getattr(tr, "ops", None)
        if ops is None or ops is self.global_ops:
            return
        if ops.flags & OPS_FL_ENABLED:
            try:
                self.ftrace_shutdown(ops)
            except KernelError:
                pass
        ops.flags |= OPS_FL_DELETED
        self.ftrace_free_filter(ops)
        st = self.tr_state(tr)
        st.mod_trace.clear()
        st.mod_notrace.clear()

    def hash_display_order(self, idxs: Iterable[int]) -> list[int]:
        """Iteration order of a committed ftrace_hash (bucket order, newest first).

        The kernel walks hash buckets (hash_64(ip, fls(count/2))) and each bucket from
        its head; entries are added at the head.
        """
        lst = list(idxs)
        bits = min(fls(len(lst) // 2), HASH_MAX_BITS)
        ips = self.ips
        keyed = [(hash_64(ips[i], bits), -n, i) for n, i in enumerate(lst)]
        keyed.sort()
        return [i for _, _, i in keyed]

    def filter_show_text(self, it: RegexIter) -> str:
        """t_start/t_show over a filter iterator: functions, :mod: lines, probes."""
        parts: list[str] = []
        flag = it.flags
        if flag & (ITER_FILTER | ITER_NOTRACE) and it.hash.empty():
            parts.append("#### no functions disabled ####\n" if flag & ITER_NOTRACE
                         else "#### all functions enabled ####\n")
        else:
            ents = it.hash.ents
            parts.extend(self.rec_name(i) + "\n" for i in sorted(ents))
        if it.tr is not None:
            st = self.tr_state(it.tr)
            mods = st.mod_notrace if flag & ITER_NOTRACE else st.mod_trace
            for m in mods:
                parts.append(f"{m.func or '*'}:mod:{m.module}\n")
            if flag & ITER_DO_PROBES:
                for probe in st.func_probes:
                    h = probe.ops.func_hash.filter_hash
                    if h.empty():
                        continue
                    for i in self.hash_display_order(h.ents):
                        po = probe.probe_ops
                        if po.print is not None:
                            parts.append(po.print(self.ips[i], po, probe.data))
                        else:
                            parts.append(f"{self.rec_name(i)}:{sym_name(po.func)}\n")
        return "".join(parts)


class RegexIter:
    """The open-file state of set_ftrace_filter/notrace (``struct ftrace_iterator``).

    ``write()`` runs the kernel's ftrace_regex_write (one word per call, returns the
    bytes consumed or raises), ``release()`` is ftrace_regex_release (process the last
    word, swap the hash in), ``show()`` the seq_file text of the per-open hash.
    """

    def __init__(self, ftrace: Ftrace, tr: Any, ops: FtraceOps, flags: int, hash_: FtraceHash,
                 read: bool, write: bool) -> None:
        self.ftrace = ftrace
        self.tr = tr
        self.ops = ops
        self.flags = flags
        self.hash = hash_
        self.read_mode = read
        self.write_mode = write
        self.parser = TraceParser(FTRACE_BUFF_MAX)
        self.last_added: str | None = None
        self.pos = 0
        self.released = False

    @property
    def enable(self) -> bool:
        return not self.flags & ITER_NOTRACE

    def _process(self, word: str) -> None:
        tr = self.ops.private
        self.ftrace.process_regex(tr, self.hash, word, self.enable)

    def write_once(self, data: bytes) -> int:
        """One ftrace_regex_write() call: consumes one word; may raise."""
        if not data:
            return 0
        parser = self.parser
        read = parser.feed(data, self.pos)
        self.pos += read
        if parser.loaded() and not parser.cont:
            word = parser.word
            parser.clear()
            # a plain glob added again right after it matched changes nothing; negations
            # and commands (func:cmd) are always processed
            if word != self.last_added:
                self._process(word)
                self.last_added = word if not word.startswith("!") and ":" not in word else None
        return read

    def write(self, data: bytes) -> int:
        """A write(2): one word per call, as user space re-writing after short writes."""
        return write_words(self.write_once, data)

    def show(self) -> str:
        return self.ftrace.filter_show_text(self)

    def release(self) -> None:
        """ftrace_regex_release(): last word, then commit the hash (errors ignored)."""
        if self.released:
            return
        self.released = True
        parser = self.parser
        if parser.loaded():
            try:
                self._process(parser.word)
            except KernelError:
                pass
        parser.clear()
        if not self.write_mode:
            return
        ft = self.ftrace
        enable = self.enable
        if enable and self.tr is not None:
            if ft.tr_state(self.tr).mod_trace:
                self.hash.flags |= HASH_FL_MOD
            else:
                self.hash.flags &= ~HASH_FL_MOD
        try:
            ft._hash_move_and_update_ops(self.ops, self.hash, enable)
        except KernelError:
            pass


# =========================================================================== boot
def new_trace_ops(ft: Ftrace, tr: Any) -> FtraceOps:
    """ftrace_allocate_ftrace_ops(): an instance's function-tracer ops (FL_PID)."""
    return FtraceOps(_ftrace_stub, OPS_FL_PID, private=tr, name="trace_ops")


def boot(kernel: Kernel) -> Ftrace:
    """Initcall: the records, global_ops for the top-level trace array, and the
    per-instance ops (``tr.ops``) created/destroyed with ``instances/NAME``."""
    ft = Ftrace(kernel)
    tracing = kernel.trace
    ft.init_global_array_ops(tracing.global_trace)
    tracing.instance_hooks.append((ft.instance_create, ft.instance_destroy))
    return ft
