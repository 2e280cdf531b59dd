"""The shared types of ftrace (include/linux/ftrace.h): ``struct ftrace_ops``,
``struct ftrace_hash``, the ``dyn_ftrace`` record flags and the ops flags.

Every part of the ftrace core (kernel/ftrace*.py) and its clients (tracers, fgraph,
fprobe, kprobes, modules) use these; they import nothing of the rest of ftrace.

Callback symbols: a callback's ``%pS`` in ``enabled_functions`` is its ``__name__``
(name the Python function after the kernel function, or rename it with ``@ksym``),
with the size of the reference kernel's function where it is known.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from .lib import MASK64
from .module import FUNC_STRIDE, PY_MODULE_PREFIX

if TYPE_CHECKING:
    from .kallsyms import Kallsyms
    from .mm import Regs

__all__ = [
    "OPS_FL_ENABLED", "OPS_FL_DYNAMIC", "OPS_FL_SAVE_REGS", "OPS_FL_SAVE_REGS_IF_SUPPORTED",
    "OPS_FL_RECURSION", "OPS_FL_STUB", "OPS_FL_INITIALIZED", "OPS_FL_DELETED", "OPS_FL_ADDING",
    "OPS_FL_REMOVING", "OPS_FL_MODIFYING", "OPS_FL_ALLOC_TRAMP", "OPS_FL_IPMODIFY", "OPS_FL_PID",
    "OPS_FL_RCU", "OPS_FL_TRACE_ARRAY", "OPS_FL_PERMANENT", "OPS_FL_DIRECT", "OPS_FL_SUBOP",
    "OPS_FL_SAVE_ARGS", "FL_ENABLED", "FL_REGS", "FL_REGS_EN", "FL_TRAMP", "FL_TRAMP_EN",
    "FL_IPMODIFY", "FL_DISABLED", "FL_DIRECT", "FL_DIRECT_EN", "FL_CALL_OPS", "FL_CALL_OPS_EN",
    "FL_TOUCHED", "FL_MODIFIED", "REF_MAX_SHIFT", "REF_MAX", "NOCLEAR_FLAGS", "HASH_FL_MOD",
    "HASH_DEFAULT_BITS", "HASH_MAX_BITS", "GOLDEN_RATIO_64", "KSYM_SIZES", "ksym", "sym_name",
    "sym_ps", "hash_64", "fls", "FtraceHash", "ops_equal", "OpsHash", "FtraceOps", "ftrace_stub",
    "OpsFunc", "SiteFunc",
    # the C spellings of include/linux/ftrace.h and arch/x86/include/asm/ftrace.h
    "FTRACE_OPS_FL_ENABLED", "FTRACE_OPS_FL_DYNAMIC", "FTRACE_OPS_FL_SAVE_REGS",
    "FTRACE_OPS_FL_SAVE_REGS_IF_SUPPORTED", "FTRACE_OPS_FL_RECURSION", "FTRACE_OPS_FL_STUB",
    "FTRACE_OPS_FL_INITIALIZED", "FTRACE_OPS_FL_DELETED", "FTRACE_OPS_FL_ADDING",
    "FTRACE_OPS_FL_REMOVING", "FTRACE_OPS_FL_MODIFYING", "FTRACE_OPS_FL_ALLOC_TRAMP",
    "FTRACE_OPS_FL_IPMODIFY", "FTRACE_OPS_FL_PID", "FTRACE_OPS_FL_RCU", "FTRACE_OPS_FL_TRACE_ARRAY",
    "FTRACE_OPS_FL_PERMANENT", "FTRACE_OPS_FL_DIRECT", "FTRACE_OPS_FL_SUBOP",
    "FTRACE_OPS_FL_SAVE_ARGS", "MCOUNT_INSN_SIZE", "KERNEL_CS", "ftrace_get_regs",
    "ftrace_regs_get_instruction_pointer", "ftrace_regs_set_instruction_pointer",
    "ftrace_regs_get_argument", "ftrace_regs_get_stack_pointer", "ftrace_regs_get_return_value",
    "ftrace_regs_has_args", "instruction_pointer", "instruction_pointer_set",
]

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

# The same flags by their C names (enum in include/linux/ftrace.h): what a module author
# writes.  The short OPS_FL_* spellings above are the simulator's own, kept as aliases.
FTRACE_OPS_FL_ENABLED = OPS_FL_ENABLED
FTRACE_OPS_FL_DYNAMIC = OPS_FL_DYNAMIC
FTRACE_OPS_FL_SAVE_REGS = OPS_FL_SAVE_REGS
FTRACE_OPS_FL_SAVE_REGS_IF_SUPPORTED = OPS_FL_SAVE_REGS_IF_SUPPORTED
FTRACE_OPS_FL_RECURSION = OPS_FL_RECURSION
FTRACE_OPS_FL_STUB = OPS_FL_STUB
FTRACE_OPS_FL_INITIALIZED = OPS_FL_INITIALIZED
FTRACE_OPS_FL_DELETED = OPS_FL_DELETED
FTRACE_OPS_FL_ADDING = OPS_FL_ADDING
FTRACE_OPS_FL_REMOVING = OPS_FL_REMOVING
FTRACE_OPS_FL_MODIFYING = OPS_FL_MODIFYING
FTRACE_OPS_FL_ALLOC_TRAMP = OPS_FL_ALLOC_TRAMP
FTRACE_OPS_FL_IPMODIFY = OPS_FL_IPMODIFY
FTRACE_OPS_FL_PID = OPS_FL_PID
FTRACE_OPS_FL_RCU = OPS_FL_RCU
FTRACE_OPS_FL_TRACE_ARRAY = OPS_FL_TRACE_ARRAY
FTRACE_OPS_FL_PERMANENT = OPS_FL_PERMANENT
FTRACE_OPS_FL_DIRECT = OPS_FL_DIRECT
FTRACE_OPS_FL_SUBOP = OPS_FL_SUBOP
FTRACE_OPS_FL_SAVE_ARGS = OPS_FL_SAVE_ARGS

# arch/x86/include/asm/ftrace.h: the size of ``call __fentry__``.  The trampolines save
# the return address of that call as regs->ip: rec->ip + MCOUNT_INSN_SIZE.
MCOUNT_INSN_SIZE = 5
# __KERNEL_CS: ftrace_regs_caller stores it in regs->cs (a full pt_regs); ftrace_caller
# stores 0, which is how arch_ftrace_get_regs() tells the two apart
KERNEL_CS = 0x10

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

GOLDEN_RATIO_64 = 0x61C8864680B583EB

# Sizes of the kernel functions that appear as %pS in enabled_functions (from the
# reference kernel).
KSYM_SIZES: dict[str, int] = {
    "function_trace_call": 0x110, "ftrace_stub": 0x20, "arch_ftrace_ops_list_func": 0x1D0,
    "fprobe_handler": 0x240, "kprobe_ftrace_handler": 0x1D0, "ftrace_graph_func": 0x20,
    "ftrace_ops_assist_func": 0x100, "ftrace_pid_func": 0x50, "function_stack_trace_call": 0x160,
    "function_no_repeats_trace_call": 0x1A0, "function_stack_no_repeats_trace_call": 0x1C0,
    "function_trace_probe_call": 0x60, "fprobe_kprobe_handler": 0x2B0,
}

FuncT = TypeVar("FuncT", bound=Callable[..., object])


def ksym(name: str) -> Callable[[FuncT], FuncT]:
    """Decorator: the kernel symbol a Python callback stands for (its ``%pS``)."""

    def deco(fn: FuncT) -> FuncT:
        fn.__name__ = fn.__qualname__ = name
        return fn

    return deco


def sym_name(fn: Callable[..., object]) -> str:
    return fn.__name__


def sym_ps(fn: Callable[..., object], kallsyms: Kallsyms) -> str:
    """``%pS`` of a kernel function: ``name+0x0/0xSIZE`` (sizes of the reference kernel
    where known, else the simulated kallsyms', else 0x100); a function of a loaded
    module is ``name+0x0/0x100 [module]`` (the text kernel/module.py gives it)."""
    name = sym_name(fn)
    pymod = fn.__module__ or ""
    if pymod.startswith(PY_MODULE_PREFIX):
        return f"{name}+0x0/{FUNC_STRIDE:#x} [{pymod[len(PY_MODULE_PREFIX):]}]"
    size = KSYM_SIZES.get(name)
    if size is None:
        addr = kallsyms.addr_of(name)
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

    def __iter__(self) -> Iterator[int]:
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


# --------------------------------------------------------------------------- ftrace_regs
# ``struct ftrace_regs`` is the register set a call site passes (``mm.Regs``): on x86-64
# it wraps a ``struct pt_regs``; the trampoline fills ``ip`` (rec->ip + MCOUNT_INSN_SIZE)
# and ``cs`` (KERNEL_CS only when it saved every register: ftrace_regs_caller).
def ftrace_get_regs(fregs: Regs | None) -> Regs | None:
    """ftrace_get_regs(): the pt_regs inside ``fregs`` when the trampoline saved all of
    them (an ops with FTRACE_OPS_FL_SAVE_REGS at the site, or any ops at a site where one
    asked), else None (arch_ftrace_get_regs() looks at regs->cs)."""
    if fregs is None or not fregs.cs:
        return None
    return fregs


def ftrace_regs_has_args(fregs: Regs | None) -> bool:
    """x86-64 has DYNAMIC_FTRACE_WITH_ARGS: the argument registers are always there."""
    return fregs is not None


def ftrace_regs_get_instruction_pointer(fregs: Regs) -> int:
    return fregs.ip


def ftrace_regs_set_instruction_pointer(fregs: Regs, ip: int) -> None:
    """Where the traced function continues: the trampoline returns to ``ip`` (what
    livepatch's klp_arch_set_pc() does; the ops needs FTRACE_OPS_FL_IPMODIFY)."""
    fregs.ip = ip


def ftrace_regs_get_argument(fregs: Regs, n: int) -> int:
    return fregs.get_kernel_argument(n)


def ftrace_regs_get_stack_pointer(fregs: Regs) -> int:
    return fregs.stack_pointer()


def ftrace_regs_get_return_value(fregs: Regs) -> int:
    return fregs.return_value()


def instruction_pointer(regs: Regs) -> int:
    return regs.ip


def instruction_pointer_set(regs: Regs, ip: int) -> None:
    regs.ip = ip


# --------------------------------------------------------------------------- ftrace_ops
# ``ftrace_func_t``: func(ip, parent_ip, op, fregs); fregs is the register set the call
# site passes (None when it has none)
OpsFunc = Callable[[int, int, "FtraceOps", "Regs | None"], None]
# what a patched call site calls: site(record index, parent_ip, fregs)
SiteFunc = Callable[[int, int, "Regs | None"], None]


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
        self.func: OpsFunc = func if func is not None else ftrace_stub
        self.flags = flags
        # void *private: the trace_array of a tracer's (FL_PID) ops, the user's data of
        # others; untyped as in C
        self.private: Any = private
        self.local_hash = OpsHash()
        self.func_hash = self.local_hash
        self.saved_func: OpsFunc | None = None
        self.trampoline = 0
        self.trampoline_size = 0
        self.subop_list: list[FtraceOps] = []
        self.managed: FtraceOps | None = None
        self.old_hash: OpsHash | None = None
        self.tramp_func: OpsFunc = self.func
        self.site: SiteFunc | None = None
        self.core_data = core_data
        self.name = name
        self.owner: object = None  # container_of(): the fgraph_ops/fprobe embedding this ops
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


def ftrace_stub(ip: int, parent_ip: int, op: FtraceOps, fregs: Regs | None) -> None:
    return None
