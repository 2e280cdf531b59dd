"""Probe-event core shared by every probe kind (kernel/trace/trace_probe.c/.h).

What lives here, mirroring the kernel file:

* the ``ERRORS`` table (``ProbeErr``: names and texts exactly as trace_probe.h) and the
  probe log (``ProbeLog``: ``trace_probe_log_init/set_index/err``) that rebuilds the
  command from argv and computes the caret column the way ``__trace_probe_log_err`` does;
* event/group name parsing (``traceprobe_parse_event_name``);
* the fetch-argument parser (``traceprobe_parse_probe_arg``) producing a fetch program
  (a list of ``FetchInsn``) plus the field type, offset and the ``comm`` text that
  ``dynamic_events`` shows; ``$arg*``/``$argN`` BTF expansion
  (``traceprobe_expand_meta_args``) and ``%pd``/``%pD`` (``traceprobe_expand_dentry_args``);
* print-fmt generation (``traceprobe_set_print_fmt``) and field definitions;
* ``struct trace_probe_event`` (``TraceProbeEvent``: the event call, enable flags and
  event files every probe appended to one GRP/EVENT shares) and the part of a probe kind
  that is the same for every kind (``TraceProbeKind``: listing, show and match of the
  arguments, registration with the multiprobe append and unlink, enabling an event
  across its probes).  The kinds (trace_fprobe, trace_kprobe, trace_uprobe,
  trace_eprobe) build on these and never import each other.

What a probe does when it fires lives in trace_probe_tmpl.py.

The parser is a close transliteration: functions return ``0`` or ``-errno`` like the C
code, the instruction buffer is a fixed 16-slot list with an index cursor, so
TOO_MANY_OPS, caret offsets and even the kernel's quirks (two error_log entries for
``%ax`` on an fprobe) come out the same.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import TYPE_CHECKING, Generic, Protocol, Self, TypeVar

from .lib import (
    argv_split,
    is_good_name,
    is_good_system_name,
    isalpha,
    isdigit,
    kstrtol,
    kstrtouint,
    kstrtoul,
    sanitize_event_name,
    simple_strtoul,
)
from .ptrace import regs_query_register_offset
from .trace_dynevent import DynEvent, ProbeLog
from .trace_events import EventCall, EventFile
from .trace_events_h import (
    TRACE_REG_PERF_REGISTER,
    TRACE_REG_PERF_UNREGISTER,
    TRACE_REG_REGISTER,
    TRACE_REG_UNREGISTER,
    Field,
)

if TYPE_CHECKING:
    from .btf import FuncProto
    from .core import Kernel

# ----------------------------------------------------------------------------- limits
MAX_TRACE_ARGS = 128
MAX_ARGSTR_LEN = 63
MAX_ARRAY_LEN = 64
MAX_ARG_NAME_LEN = 32
MAX_BTF_ARGS_LEN = 128
MAX_DENTRY_ARGS_LEN = 256
MAX_STRING_SIZE = 4096          # PATH_MAX
MAX_PROBE_EVENT_SIZE = 3072
MAX_EVENT_NAME_LEN = 64         # trace.h
FETCH_INSN_MAX = 16
PARAM_MAX_STACK = 16384 // 8    # THREAD_SIZE / sizeof(long) on x86_64 (16K stacks)
FAULT_STRING = "(fault)"

FIELD_STRING_IP = "__probe_ip"
FIELD_STRING_RETIP = "__probe_ret_ip"
FIELD_STRING_FUNC = "__probe_func"

RESERVED_FIELD_NAMES = (
    "common_type", "common_flags", "common_preempt_count", "common_pid", "common_tgid",
    FIELD_STRING_IP, FIELD_STRING_RETIP, FIELD_STRING_FUNC,
)

# Offsets used by %pd/%pD (offsetof(struct dentry, d_name.name), offsetof(struct file,
# f_path.dentry)) of the 6.12 x86_64 kernel the reference was captured from.
DENTRY_D_NAME_NAME_OFFSET = 0x28
FILE_F_PATH_DENTRY_OFFSET = 0x48

# TPARG_FL_* (trace_probe.h): where the fetch arguments are parsed for
(TPARG_FL_RETURN, TPARG_FL_KERNEL, TPARG_FL_FENTRY, TPARG_FL_TEVENT, TPARG_FL_USER,
 TPARG_FL_FPROBE, TPARG_FL_TPOINT) = (1 << bit for bit in range(7))
TPARG_FL_LOC_MASK = 0x1F

TP_FLAG_TRACE = 1
TP_FLAG_PROFILE = 2


def tparg_is_function_entry(flags: int) -> bool:
    return (flags & TPARG_FL_LOC_MASK) == (TPARG_FL_KERNEL | TPARG_FL_FENTRY)


def tparg_is_function_return(flags: int) -> bool:
    return (flags & TPARG_FL_LOC_MASK) == (TPARG_FL_KERNEL | TPARG_FL_RETURN)


# ----------------------------------------------------------------------------- ERRORS
class ProbeErr(Enum):
    """The ``ERRORS`` X-macro of trace_probe.h, in the same order, same texts."""

    FILE_NOT_FOUND = "Failed to find the given file"
    NO_REGULAR_FILE = "Not a regular file"
    BAD_REFCNT = "Invalid reference counter offset"
    REFCNT_OPEN_BRACE = "Reference counter brace is not closed"
    BAD_REFCNT_SUFFIX = "Reference counter has wrong suffix"
    BAD_UPROBE_OFFS = "Invalid uprobe offset"
    BAD_MAXACT_TYPE = "Maxactive is only for function exit"
    BAD_MAXACT = "Invalid maxactive number"
    MAXACT_TOO_BIG = "Maxactive is too big"
    BAD_PROBE_ADDR = "Invalid probed address or symbol"
    NON_UNIQ_SYMBOL = "The symbol is not unique"
    BAD_RETPROBE = "Retprobe address must be an function entry"
    NO_TRACEPOINT = "Tracepoint is not found"
    BAD_TP_NAME = "Invalid character in tracepoint name"
    BAD_ADDR_SUFFIX = "Invalid probed address suffix"
    NO_GROUP_NAME = "Group name is not specified"
    GROUP_TOO_LONG = "Group name is too long"
    BAD_GROUP_NAME = "Group name must follow the same rules as C identifiers"
    NO_EVENT_NAME = "Event name is not specified"
    EVENT_TOO_LONG = "Event name is too long"
    BAD_EVENT_NAME = "Event name must follow the same rules as C identifiers"
    EVENT_EXIST = "Given group/event name is already used by another event"
    RETVAL_ON_PROBE = "$retval is not available on probe"
    NO_RETVAL = "This function returns 'void' type"
    BAD_STACK_NUM = "Invalid stack number"
    BAD_ARG_NUM = "Invalid argument number"
    BAD_VAR = "Invalid $-variable specified"
    BAD_REG_NAME = "Invalid register name"
    BAD_MEM_ADDR = "Invalid memory address"
    BAD_IMM = "Invalid immediate value"
    IMMSTR_NO_CLOSE = "String is not closed with '\"'"
    FILE_ON_KPROBE = "File offset is not available with kprobe"
    BAD_FILE_OFFS = "Invalid file offset value"
    SYM_ON_UPROBE = "Symbol is not available with uprobe"
    TOO_MANY_OPS = "Dereference is too much nested"
    DEREF_NEED_BRACE = "Dereference needs a brace"
    BAD_DEREF_OFFS = "Invalid dereference offset"
    DEREF_OPEN_BRACE = "Dereference brace is not closed"
    COMM_CANT_DEREF = "$comm can not be dereferenced"
    BAD_FETCH_ARG = "Invalid fetch argument"
    ARRAY_NO_CLOSE = "Array is not closed"
    BAD_ARRAY_SUFFIX = "Array has wrong suffix"
    BAD_ARRAY_NUM = "Invalid array size"
    ARRAY_TOO_BIG = "Array number is too big"
    BAD_TYPE = "Unknown type is specified"
    BAD_STRING = "String accepts only memory argument"
    BAD_SYMSTRING = "Symbol String doesn't accept data/userdata"
    BAD_BITFIELD = "Invalid bitfield"
    ARG_NAME_TOO_LONG = "Argument name is too long"
    NO_ARG_NAME = "Argument name is not specified"
    BAD_ARG_NAME = "Argument name must follow the same rules as C identifiers"
    USED_ARG_NAME = "This argument name is already used"
    ARG_TOO_LONG = "Argument expression is too long"
    NO_ARG_BODY = "No argument expression"
    BAD_INSN_BNDRY = "Probe point is not an instruction boundary"
    FAIL_REG_PROBE = "Failed to register probe event"
    DIFF_PROBE_TYPE = "Probe type is different from existing probe"
    DIFF_ARG_TYPE = "Argument type or name is different from existing probe"
    SAME_PROBE = "There is already the exact same probe event"
    NO_EVENT_INFO = "This requires both group and event name to attach"
    BAD_ATTACH_EVENT = "Attached event does not exist"
    BAD_ATTACH_ARG = "Attached event does not have this field"
    NO_EP_FILTER = "No filter rule after 'if'"
    NOSUP_BTFARG = "BTF is not available or not supported"
    NO_BTFARG = "This variable is not found at this probe point"
    NO_BTF_ENTRY = "No BTF entry for this probe point"
    BAD_VAR_ARGS = "$arg* must be an independent parameter without name etc."
    NOFENTRY_ARGS = "$arg* can be used only on function entry or exit"
    DOUBLE_ARGS = "$arg* can be used only once in the parameters"
    ARGS_2LONG = "$arg* failed because the argument list is too long"
    ARGIDX_2BIG = "$argN index is too big"
    NO_PTR_STRCT = "This is not a pointer to union/structure."
    NOSUP_DAT_ARG = "Non pointer structure/union argument is not supported."
    BAD_HYPHEN = "Failed to parse single hyphen. Forgot '>'?"
    NO_BTF_FIELD = "This field is not found."
    BAD_BTF_TID = "Failed to get BTF type info."
    BAD_TYPE4STR = "This type does not fit for string."
    NEED_STRING_TYPE = "$comm and immediate-string only accepts string type"
    EVENT_TOO_BIG = "Event too big (too many fields?)"


# ----------------------------------------------------------------------------- fetch types
@dataclass(frozen=True)
class FetchType:
    """``struct fetch_type``: one row of probe_fetch_types[]."""

    name: str
    size: int
    is_signed: bool
    is_string: bool
    fmt: str          # printf format used in print fmt (PRINT_TYPE_FMT_NAME)
    fmttype: str      # type name in the format file
    ptype: str        # which print function (u8..x64, char, string, symbol)


_STRING_FMT = '\\"%s\\"'

PROBE_FETCH_TYPES: tuple[FetchType, ...] = (
    FetchType("string", 4, True, True, _STRING_FMT, "__data_loc char[]", "string"),
    FetchType("ustring", 4, True, True, _STRING_FMT, "__data_loc char[]", "string"),
    FetchType("symstr", 4, True, True, _STRING_FMT, "__data_loc char[]", "string"),
    FetchType("u8", 1, False, False, "%u", "u8", "u8"),
    FetchType("u16", 2, False, False, "%u", "u16", "u16"),
    FetchType("u32", 4, False, False, "%u", "u32", "u32"),
    FetchType("u64", 8, False, False, "%Lu", "u64", "u64"),
    FetchType("s8", 1, True, False, "%d", "s8", "s8"),
    FetchType("s16", 2, True, False, "%d", "s16", "s16"),
    FetchType("s32", 4, True, False, "%d", "s32", "s32"),
    FetchType("s64", 8, True, False, "%Ld", "s64", "s64"),
    FetchType("x8", 1, False, False, "0x%x", "u8", "x8"),
    FetchType("x16", 2, False, False, "0x%x", "u16", "x16"),
    FetchType("x32", 4, False, False, "0x%x", "u32", "x32"),
    FetchType("x64", 8, False, False, "0x%Lx", "u64", "x64"),
    FetchType("char", 1, False, False, "'%c'", "u8", "char"),
    FetchType("symbol", 8, False, False, "%pS", "u64", "symbol"),
)
_FETCH_TYPES_BY_NAME = {t.name: t for t in PROBE_FETCH_TYPES}
DEFAULT_FETCH_TYPE_STR = "x64"


def find_fetch_type(type_: str | None, flags: int) -> FetchType | None:
    if type_ is not None and (flags & TPARG_FL_USER) and type_ in ("symbol", "symstr"):
        return None
    if type_ is None:
        type_ = DEFAULT_FETCH_TYPE_STR
    if type_[:1] == "b":
        slash = type_.find("/")
        if slash < 0:
            return None
        err, bs = kstrtoul(type_[slash + 1:], 0)
        if err:
            return None
        return {8: _FETCH_TYPES_BY_NAME["u8"], 16: _FETCH_TYPES_BY_NAME["u16"],
                32: _FETCH_TYPES_BY_NAME["u32"], 64: _FETCH_TYPES_BY_NAME["u64"]}.get(bs)
    return _FETCH_TYPES_BY_NAME.get(type_)


# ----------------------------------------------------------------------------- fetch insns
class FetchOp(IntEnum):
    NOP = 0
    REG = 1
    STACK = 2
    STACKP = 3
    RETVAL = 4
    IMM = 5
    COMM = 6
    ARG = 7
    FOFFS = 8
    DATA = 9
    EDATA = 10
    DEREF = 11
    UDEREF = 12
    ST_RAW = 13
    ST_MEM = 14
    ST_UMEM = 15
    ST_STRING = 16
    ST_USTRING = 17
    ST_SYMSTR = 18
    ST_EDATA = 19
    MOD_BF = 20
    LP_ARRAY = 21
    TP_ARG = 22
    END = 23
    NOP_SYMBOL = 24


class FetchInsn:
    """``struct fetch_insn`` (the C union flattened into optional fields)."""

    __slots__ = ("op", "param", "size", "offset", "basesize", "lshift", "rshift",
                 "immediate", "data")

    def __init__(self, op: FetchOp = FetchOp.NOP) -> None:
        self.op = op
        self.param = 0
        self.size = 0
        self.offset = 0
        self.basesize = 0
        self.lshift = 0
        self.rshift = 0
        self.immediate = 0
        # the symbol of NOP_SYMBOL, the string of DATA, the event field of TP_ARG
        self.data: str | bytes | Field | None = None

    def __repr__(self) -> str:
        return (f"FetchInsn({self.op.name}, param={self.param}, size={self.size}, "
                f"offset={self.offset}, imm={self.immediate:#x}, data={self.data!r})")


@dataclass
class ProbeArg:
    """``struct probe_arg``."""

    code: list[FetchInsn] = field(default_factory=list)
    dynamic: bool = False
    offset: int = 0
    count: int = 0
    name: str = ""
    comm: str = ""           # the argument text as written (shown by dynamic_events)
    fmt: str | None = None   # "u8[10]" for arrays
    type: FetchType | None = None


@dataclass
class TraceProbe:
    """``struct trace_probe`` without the event part (that lives with the kind)."""

    nr_args: int = 0
    args: list[ProbeArg] = field(default_factory=list)
    size: int = 0
    entry_arg: list[FetchInsn] | None = None   # probe_entry_arg.code (return probes)

    def __post_init__(self) -> None:
        if not self.args:
            self.args = [ProbeArg() for _ in range(self.nr_args)]

    def entry_data_size(self) -> int:
        """traceprobe_get_entry_data_size(): what a return probe saves at entry."""
        return traceprobe_get_entry_data_size(self)

    def show_args(self) -> str:
        """The `` NAME=FETCHARG`` part of a ``dynamic_events`` line."""
        return "".join(f" {a.name}={a.comm}" for a in self.args)


# ----------------------------------------------------------------------------- BTF view
class BtfType(Protocol):
    """A BTF type after btf_type_skip_modifiers (typedef/const/volatile/restrict/tags).

    ``kind`` is one of "void", "int", "ptr", "array", "struct", "union", "enum",
    "enum64", "float", "func_proto", "fwd" …; ``ref`` is the type id a ptr points to or
    an array's element type; ``int_bits``/``int_signed``/``int_offset`` decode
    BTF_KIND_INT; ``kflag`` is the struct's bitfield flag.
    """

    kind: str
    ref: int
    int_bits: int
    int_signed: bool
    int_offset: int
    kflag: bool


class ProbeBtf(Protocol):
    """What the probe parser needs from kernel BTF (kernel/btf.py adapts to this)."""

    def func_proto(self, name: str) -> FuncProto | None:
        """The prototype of function ``name``, or None without BTF for it."""
        ...

    def skip_modifiers(self, tid: int) -> BtfType | None: ...

    def find_member(self, struct_tid: int, name: str
                    ) -> tuple[int, int, int, int, bool] | None:
        """Member ``name`` of a struct/union type id, searching anonymous members:
        (member type id, bit offset within its containing struct, bitfield size (0 if
        none), bit offset of the containing anonymous struct, containing kflag).
        Raises ValueError when ``struct_tid`` is not a struct/union."""
        ...

    def resolve_id(self, tid: int) -> int:
        """The type id after skipping modifiers (for find_member)."""
        ...


@dataclass
class ParseContext:
    """``struct traceprobe_parse_context``."""

    flags: int = 0
    funcname: str | None = None
    btf: ProbeBtf | None = None         # the BTF provider (kernel's btf pointer)
    proto_ret: int | None = None        # ctx->proto->type; None until queried
    params: list[tuple[str, int]] = field(default_factory=list)
    nr_params: int = 0
    btf_queried: bool = False           # ctx->btf != NULL in the kernel
    last_type: BtfType | None = None
    last_type_id: int = 0
    last_bitoffs: int = 0
    last_bitsize: int = 0
    tp: TraceProbe | None = None
    offset: int = 0
    log: ProbeLog = field(default_factory=ProbeLog)
    tracepoint: bool = False
    event: EventCall | None = None      # eprobes: the attached event

    def err(self, offset: int, err: ProbeErr) -> None:
        self.log.err(offset, err)


def traceprobe_parse_event_name(event: str, offset: int, log: ProbeLog
                                ) -> tuple[int, str | None, str | None]:
    """Returns (ret, event or None, group or None).  ``event`` is the text after ':'."""
    group: str | None = None
    slash = event.find("/")
    if slash < 0:
        slash = event.find(".")
    if slash >= 0:
        if slash == 0:
            log.err(offset, ProbeErr.NO_GROUP_NAME)
            return -errno.EINVAL, None, None
        if slash + 1 > MAX_EVENT_NAME_LEN:
            log.err(offset, ProbeErr.GROUP_TOO_LONG)
            return -errno.EINVAL, None, None
        group = event[:slash]
        if not is_good_system_name(group):
            log.err(offset, ProbeErr.BAD_GROUP_NAME)
            return -errno.EINVAL, None, None
        offset += slash + 1
        event = event[slash + 1:]
    if len(event) == 0:
        if slash >= 0:
            return 0, None, group
        log.err(offset, ProbeErr.NO_EVENT_NAME)
        return -errno.EINVAL, None, None
    if len(event) >= MAX_EVENT_NAME_LEN:
        log.err(offset, ProbeErr.EVENT_TOO_LONG)
        return -errno.EINVAL, None, None
    if not is_good_name(event):
        log.err(offset, ProbeErr.BAD_EVENT_NAME)
        return -errno.EINVAL, None, None
    return 0, event, group


# ----------------------------------------------------------------------------- BTF helpers
def _query_btf_context(ctx: ParseContext) -> int:
    if ctx.btf_queried:
        return 0
    if not ctx.funcname:
        return -errno.EINVAL
    if ctx.btf is None:
        return -errno.ENOENT
    proto = ctx.btf.func_proto(ctx.funcname)
    if proto is None:
        return -errno.ENOENT
    ctx.btf_queried = True
    ctx.proto_ret = proto.ret.id
    params = [(p.name, p.type.id) for p in proto.params]
    if proto.variadic:
        params.append(("", 0))      # btf_type_vlen() counts the "..." slot
    if params and ctx.flags & TPARG_FL_TPOINT:
        params = params[1:]     # hide the tracepoint stub's __data
    ctx.params = params
    ctx.nr_params = len(params)
    return 0


def _clear_btf_context(ctx: ParseContext) -> None:
    ctx.btf_queried = False
    ctx.proto_ret = None
    ctx.params = []
    ctx.nr_params = 0


def _btf_is_char(t: BtfType | None) -> bool:
    return t is not None and t.kind == "int" and not t.int_signed and t.int_bits == 8


def _split_next_field(varname: str, ctx: ParseContext) -> tuple[int, str, str | None]:
    """Returns (ret, head, next field).  ret 1 = '->', 0 = '.' or none, <0 error."""
    for i, c in enumerate(varname):
        if c in ".-":
            if c == "-" and varname[i + 1:i + 2] == ">":
                return 1, varname[:i], varname[i + 2:]
            if c == ".":
                return 0, varname[:i], varname[i + 1:]
            ctx.err(ctx.offset + i, ProbeErr.BAD_HYPHEN)
            return -errno.EINVAL, varname, None
    return 0, varname, None


class _Prog:
    """The 16-slot fetch_insn buffer and the ``*pcode`` cursor."""

    __slots__ = ("code", "pc")

    def __init__(self) -> None:
        self.code = [FetchInsn() for _ in range(FETCH_INSN_MAX)]
        self.code[FETCH_INSN_MAX - 1].op = FetchOp.END
        self.pc = 0

    @property
    def end(self) -> int:
        return FETCH_INSN_MAX - 1

    def cur(self) -> FetchInsn:
        return self.code[self.pc]


def _parse_btf_field(fieldname: str, type_: BtfType, type_id: int, prog: _Prog,
                     ctx: ParseContext) -> int:
    btf = ctx.btf
    assert btf is not None
    code = prog.pc
    fname: str | None = fieldname
    while True:
        if type_.kind != "ptr":
            ctx.err(ctx.offset, ProbeErr.NO_PTR_STRCT)
            return -errno.EINVAL
        type_id = btf.resolve_id(type_.ref)
        t = btf.skip_modifiers(type_.ref)
        if t is None:
            ctx.err(ctx.offset, ProbeErr.BAD_BTF_TID)
            return -errno.EINVAL
        type_ = t
        bitoffs = 0
        while True:
            assert fname is not None
            is_ptr, head, nxt = _split_next_field(fname, ctx)
            if is_ptr < 0:
                return is_ptr
            try:
                found = btf.find_member(type_id, head)
            except ValueError:
                ctx.err(ctx.offset, ProbeErr.BAD_BTF_TID)
                return -errno.EINVAL
            if found is None:
                ctx.err(ctx.offset, ProbeErr.NO_BTF_FIELD)
                return -errno.ENOENT
            mtid, moffs, mbits, anon_offs, kflag = found
            bitoffs += anon_offs
            bitoffs += moffs
            ctx.last_bitsize = mbits if kflag else 0
            t = btf.skip_modifiers(mtid)
            if t is None:
                ctx.err(ctx.offset, ProbeErr.BAD_BTF_TID)
                return -errno.EINVAL
            type_ = t
            type_id = btf.resolve_id(mtid)
            if nxt is not None:
                ctx.offset += len(head) + (2 if is_ptr else 1)
            fname = nxt
            if is_ptr or fname is None:
                break
        code += 1
        if code == prog.end:
            ctx.err(ctx.offset, ProbeErr.TOO_MANY_OPS)
            return -errno.EINVAL
        prog.code[code].op = FetchOp.DEREF
        prog.code[code].offset = bitoffs // 8
        prog.pc = code
        ctx.last_bitoffs = bitoffs % 8
        ctx.last_type = type_
        ctx.last_type_id = type_id
        if fname is None:
            break
    return 0


def _store_entry_arg(tp: TraceProbe, argnum: int) -> int:
    """``__store_entry_arg``: entry-data slot of the argnum-th parameter."""
    if tp.entry_arg is None:
        size = 2 * tp.nr_args + 1
        tp.entry_arg = [FetchInsn(FetchOp.END) for _ in range(size)]
    earg = tp.entry_arg
    offset = 0
    match = False
    for i in range(len(earg) - 1):
        op = earg[i].op
        if op == FetchOp.END:
            earg[i].op = FetchOp.ARG
            earg[i].param = argnum
            earg[i + 1].op = FetchOp.ST_EDATA
            earg[i + 1].offset = offset
            return offset
        if op == FetchOp.ARG:
            match = earg[i].param == argnum
        elif op == FetchOp.ST_EDATA:
            offset = earg[i].offset
            if match:
                return offset
            offset += 8
    return -errno.ENOSPC


def traceprobe_get_entry_data_size(tp: TraceProbe) -> int:
    size = 0
    for insn in tp.entry_arg or ():
        if insn.op == FetchOp.END:
            break
        if insn.op == FetchOp.ST_EDATA:
            size = insn.offset + 8
    return size


def _parse_btf_arg(varname: str, prog: _Prog, ctx: ParseContext) -> int:
    code = prog.cur()
    if not ctx.funcname:
        return -errno.EINVAL
    is_ptr, head, fld = _split_next_field(varname, ctx)
    if is_ptr < 0:
        return is_ptr
    if not is_ptr and fld is not None:
        ctx.err(ctx.offset + len(head) + 1, ProbeErr.NOSUP_DAT_ARG)
        return -errno.EOPNOTSUPP
    field_pos = len(head) + 2 if fld is not None else 0
    tid: int
    if ctx.flags & TPARG_FL_RETURN and head == "$retval":
        code.op = FetchOp.RETVAL
        if _query_btf_context(ctx) == 0:
            if not ctx.proto_ret:
                ctx.err(ctx.offset, ProbeErr.NO_RETVAL)
                return -errno.ENOENT
            tid = ctx.proto_ret
        else:
            if fld is not None:
                ctx.err(ctx.offset + field_pos, ProbeErr.NO_BTF_ENTRY)
                return -errno.ENOENT
            return 0
    else:
        if not ctx.btf_queried:
            ret = _query_btf_context(ctx)
            if ret < 0 or ctx.nr_params == 0:
                ctx.err(ctx.offset, ProbeErr.NO_BTF_ENTRY)
                return -errno.ENOENT
        for i, (pname, ptid) in enumerate(ctx.params):
            if pname and pname == head:
                if tparg_is_function_entry(ctx.flags):
                    code.op = FetchOp.ARG
                    code.param = i + 1 if ctx.flags & TPARG_FL_TPOINT else i
                elif tparg_is_function_return(ctx.flags):
                    code.op = FetchOp.EDATA
                    assert ctx.tp is not None
                    ret = _store_entry_arg(ctx.tp, i)
                    if ret < 0:
                        return ret
                    code.offset = ret
                tid = ptid
                break
        else:
            ctx.err(ctx.offset, ProbeErr.NO_BTFARG)
            return -errno.ENOENT
    assert ctx.btf is not None
    t = ctx.btf.skip_modifiers(tid)
    if t is None:
        ctx.err(ctx.offset, ProbeErr.BAD_BTF_TID)
        return -errno.EINVAL
    ctx.last_type = t
    ctx.last_type_id = ctx.btf.resolve_id(tid)
    ctx.last_bitoffs = 0
    ctx.last_bitsize = 0
    if fld is not None:
        ctx.offset += field_pos
        return _parse_btf_field(fld, t, ctx.last_type_id, prog, ctx)
    return 0


def _fetch_type_from_btf_type(t: BtfType, ctx: ParseContext) -> str | None:
    if t.kind == "enum":
        return "s32"
    if t.kind == "enum64":
        return "s64"
    if t.kind == "ptr":
        return "x64"
    if t.kind == "int":
        bits = t.int_bits
        if t.int_signed:
            return {8: "s8", 16: "s16", 32: "s32", 64: "s64"}.get(bits)
        name = {8: "u8", 16: "u16", 32: "u32", 64: "u64"}.get(bits)
        if name:
            return name
        ctx.last_bitsize = bits
        ctx.last_bitoffs += t.int_offset
        return "u64"
    return None


def _find_fetch_type_from_btf_type(ctx: ParseContext) -> FetchType | None:
    typestr = None
    if ctx.last_type is not None:
        typestr = _fetch_type_from_btf_type(ctx.last_type, ctx)
    return find_fetch_type(typestr, ctx.flags)


def _parse_btf_bitfield(prog: _Prog, ctx: ParseContext) -> int:
    if ctx.last_bitsize % 8 == 0 and ctx.last_bitoffs == 0:
        return 0
    code = prog.pc + 1
    if prog.code[code].op != FetchOp.NOP:
        ctx.err(ctx.offset, ProbeErr.TOO_MANY_OPS)
        return -errno.EINVAL
    prog.pc = code
    insn = prog.code[code]
    insn.op = FetchOp.MOD_BF
    insn.lshift = 64 - (ctx.last_bitsize + ctx.last_bitoffs)
    insn.rshift = 64 - ctx.last_bitsize
    insn.basesize = 8
    return 0


def _check_prepare_btf_string_fetch(typename: str, prog: _Prog, ctx: ParseContext) -> int:
    btf = ctx.btf
    t = ctx.last_type
    if btf is None or t is None:
        return 0
    if t.kind == "array" and _btf_is_char(btf.skip_modifiers(t.ref)):
        return 0
    if t.kind == "ptr" and _btf_is_char(btf.skip_modifiers(t.ref)):
        code = prog.pc + 1
        if prog.code[code].op == FetchOp.END:
            ctx.err(ctx.offset, ProbeErr.TOO_MANY_OPS)
            return -errno.E2BIG
        prog.code[code].op = FetchOp.UDEREF if typename[:1] == "u" else FetchOp.DEREF
        prog.code[code].offset = 0
        prog.pc = code
        return 0
    ctx.err(ctx.offset, ProbeErr.BAD_TYPE4STR)
    return -errno.EINVAL


# ----------------------------------------------------------------------------- the parser
def _parse_trace_event_arg(arg: str, code: FetchInsn, ctx: ParseContext) -> int:
    """``parse_trace_event_arg``: ``$FIELD`` of the event an eprobe is attached to."""
    assert ctx.event is not None
    for f in ctx.event.fields:
        if f.name == arg:
            code.op = FetchOp.TP_ARG
            code.data = f
            return 0
    return -errno.ENOENT


def _parse_probe_vars(orig_arg: str, prog: _Prog, ctx: ParseContext) -> int:
    code = prog.cur()
    err = ProbeErr.BAD_VAR
    arg = orig_arg[1:]

    if ctx.flags & TPARG_FL_TEVENT:
        if code.data is not None:
            return -errno.EFAULT
        if _parse_trace_event_arg(arg, code, ctx) == 0:
            return 0
        if arg in ("comm", "COMM"):
            code.op = FetchOp.COMM
            return 0
        ctx.err(ctx.offset, err)
        return -errno.EINVAL

    if arg.startswith("retval"):
        if not ctx.flags & TPARG_FL_RETURN:
            ctx.err(ctx.offset, ProbeErr.RETVAL_ON_PROBE)
            return -errno.EINVAL
        if not ctx.flags & TPARG_FL_KERNEL:
            code.op = FetchOp.RETVAL
            return 0
        return _parse_btf_arg(orig_arg, prog, ctx)

    if arg.startswith("stack"):
        rest = arg[5:]
        if rest == "":
            code.op = FetchOp.STACKP
            return 0
        if isdigit(rest[0]):
            ret, param = kstrtoul(rest, 10)
            if ret:
                ctx.err(ctx.offset, err)
                return -errno.EINVAL
            if ctx.flags & TPARG_FL_KERNEL and param > PARAM_MAX_STACK:
                ctx.err(ctx.offset, ProbeErr.BAD_STACK_NUM)
                return -errno.EINVAL
            code.op = FetchOp.STACK
            code.param = param
            return 0
        ctx.err(ctx.offset, err)
        return -errno.EINVAL

    if arg in ("comm", "COMM"):
        code.op = FetchOp.COMM
        return 0

    if arg.startswith("arg"):
        ret, param = kstrtoul(arg[3:], 10)
        if ret:
            ctx.err(ctx.offset, err)
            return -errno.EINVAL
        if not param or param > PARAM_MAX_STACK:
            ctx.err(ctx.offset, ProbeErr.BAD_ARG_NUM)
            return -errno.EINVAL
        param -= 1
        if tparg_is_function_entry(ctx.flags):
            code.op = FetchOp.ARG
            code.param = param + (1 if ctx.flags & TPARG_FL_TPOINT else 0)
        elif tparg_is_function_return(ctx.flags):
            assert ctx.tp is not None
            ret = _store_entry_arg(ctx.tp, param)
            if ret < 0:
                return ret
            code.op = FetchOp.EDATA
            code.offset = ret
        else:
            ctx.err(ctx.offset, ProbeErr.NOFENTRY_ARGS)
            return -errno.EINVAL
        return 0

    ctx.err(ctx.offset, err)
    return -errno.EINVAL


def _str_to_immediate(s: str) -> tuple[int, int]:
    if s[:1] and isdigit(s[0]):
        return kstrtoul(s, 0)
    if s[:1] == "-":
        err, v = kstrtol(s, 0)
        return err, v & 0xFFFFFFFFFFFFFFFF
    if s[:1] == "+":
        err, v = kstrtol(s[1:], 0)
        return err, v & 0xFFFFFFFFFFFFFFFF
    return -errno.EINVAL, 0


def _parse_probe_arg(arg: str, prog: _Prog, ctx: ParseContext) -> int:
    """The recursive ``parse_probe_arg``; ``code`` below is the C local cursor."""
    code = prog.pc
    ret = 0
    c0 = arg[:1]

    if c0 == "$":
        ret = _parse_probe_vars(arg, prog, ctx)
    elif c0 == "%":
        if ctx.flags & (TPARG_FL_TEVENT | TPARG_FL_FPROBE):
            # eprobe and fprobe do not handle registers (and ret stays 0: the kernel
            # then also logs BAD_FETCH_ARG below).
            ctx.err(ctx.offset, ProbeErr.BAD_VAR)
        else:
            ret = regs_query_register_offset(arg[1:])
            if ret >= 0:
                prog.code[code].op = FetchOp.REG
                prog.code[code].param = ret
                ret = 0
            else:
                ctx.err(ctx.offset, ProbeErr.BAD_REG_NAME)
    elif c0 == "@":
        offset = 0
        c1 = arg[1:2]
        if c1 and isdigit(c1):
            ret, param = kstrtoul(arg[1:], 0)
            if ret:
                ctx.err(ctx.offset, ProbeErr.BAD_MEM_ADDR)
                return ret
            prog.code[code].op = FetchOp.IMM
            prog.code[code].immediate = param
        elif c1 == "+":
            if ctx.flags & TPARG_FL_KERNEL:
                ctx.err(ctx.offset, ProbeErr.FILE_ON_KPROBE)
                return -errno.EINVAL
            ret, offset = kstrtol(arg[2:], 0)
            if ret:
                ctx.err(ctx.offset, ProbeErr.BAD_FILE_OFFS)
                return ret
            prog.code[code].op = FetchOp.FOFFS
            prog.code[code].immediate = offset & 0xFFFFFFFFFFFFFFFF
            offset = 0
        else:
            if not ctx.flags & TPARG_FL_KERNEL:
                ctx.err(ctx.offset, ProbeErr.SYM_ON_UPROBE)
                return -errno.EINVAL
            prog.code[code].op = FetchOp.NOP_SYMBOL
            prog.code[code].data = arg[1:]
            code += 1
            if code == prog.end:
                ctx.err(ctx.offset, ProbeErr.TOO_MANY_OPS)
                return -errno.EINVAL
            prog.code[code].op = FetchOp.IMM
            prog.code[code].immediate = 0
        code += 1
        if code == prog.end:
            ctx.err(ctx.offset, ProbeErr.TOO_MANY_OPS)
            return -errno.EINVAL
        prog.pc = code
        prog.code[code].op = FetchOp.DEREF
        prog.code[code].offset = offset
    elif c0 in ("+", "-"):
        deref = FetchOp.DEREF
        a = arg
        if a[1:2] == "u":
            deref = FetchOp.UDEREF
            a = a[0] + a[2:]
        if a[:1] == "+":
            a = a[1:]
        i = a.find("(")
        if i < 0:
            ctx.err(ctx.offset, ProbeErr.DEREF_NEED_BRACE)
            return -errno.EINVAL
        ret, offset = kstrtol(a[:i], 0)
        if ret:
            ctx.err(ctx.offset, ProbeErr.BAD_DEREF_OFFS)
            return ret
        ctx.offset += (i + 1) + (1 if a[:1] != "-" else 0)
        a = a[i + 1:]
        j = a.rfind(")")
        if j < 0:
            ctx.err(ctx.offset + len(a), ProbeErr.DEREF_OPEN_BRACE)
            return -errno.EINVAL
        cur_offs = ctx.offset
        ret = _parse_probe_arg(a[:j], prog, ctx)
        if ret:
            return ret
        code = prog.pc
        ctx.offset = cur_offs
        if prog.code[code].op in (FetchOp.COMM, FetchOp.DATA):
            ctx.err(ctx.offset, ProbeErr.COMM_CANT_DEREF)
            return -errno.EINVAL
        code += 1
        if code == prog.end:
            ctx.err(ctx.offset, ProbeErr.TOO_MANY_OPS)
            return -errno.EINVAL
        prog.pc = code
        prog.code[code].op = deref
        prog.code[code].offset = offset
        ctx.last_type = None
    elif c0 == "\\":
        if arg[1:2] == '"':
            s = arg[2:]
            if not s or s[-1] != '"':
                ctx.err(ctx.offset + 2 + len(s), ProbeErr.IMMSTR_NO_CLOSE)
                return -errno.EINVAL
            prog.code[code].op = FetchOp.DATA
            prog.code[code].data = s[:-1].encode("latin-1", "replace") + b"\0"
        else:
            ret, imm = _str_to_immediate(arg[1:])
            if ret:
                ctx.err(ctx.offset + 1, ProbeErr.BAD_IMM)
            else:
                prog.code[code].op = FetchOp.IMM
                prog.code[code].immediate = imm
    elif c0 and (isalpha(c0) or c0 == "_"):
        if not tparg_is_function_entry(ctx.flags) and not tparg_is_function_return(ctx.flags):
            ctx.err(ctx.offset, ProbeErr.NOSUP_BTFARG)
            return -errno.EINVAL
        ret = _parse_btf_arg(arg, prog, ctx)

    if not ret and prog.code[code].op == FetchOp.NOP:
        ctx.err(ctx.offset, ProbeErr.BAD_FETCH_ARG)
        ret = -errno.EINVAL
    return ret


def _parse_bitfield_probe_arg(bf: str, t: FetchType, prog: _Prog) -> int:
    if bf[:1] != "b":
        return 0
    bw, i = simple_strtoul(bf[1:], 0)
    rest = bf[1 + i:]
    if bw == 0 or rest[:1] != "@":
        return -errno.EINVAL
    rest = rest[1:]
    bo, j = simple_strtoul(rest, 0)
    if j == 0 or rest[j:j + 1] != "/":
        return -errno.EINVAL
    code = prog.pc + 1
    if prog.code[code].op != FetchOp.NOP:
        return -errno.EINVAL
    prog.pc = code
    insn = prog.code[code]
    bits = t.size * 8
    insn.op = FetchOp.MOD_BF
    insn.lshift = (bits - (bw + bo)) & 0xFF
    insn.rshift = (bits - bw) & 0xFF
    insn.basesize = t.size
    return -errno.EINVAL if bits < bw + bo else 0


def _parse_probe_arg_type(arg: str, parg: ProbeArg, ctx: ParseContext
                          ) -> tuple[int, str, str | None]:
    """Split ``arg:type[N]``: returns (ret, arg without type, type or None)."""
    t: str | None = None
    colon = arg.find(":")
    if colon >= 0:
        t = arg[colon + 1:]
        arg = arg[:colon]
        lb = t.find("[")
        if lb >= 0:
            t2_pos = colon + 1 + lb + 1          # offset of the array size in the arg
            t2 = t[lb + 1:]
            t = t[:lb]
            rb = t2.find("]")
            if rb < 0:
                ctx.err(ctx.offset + t2_pos + len(t2), ProbeErr.ARRAY_NO_CLOSE)
                return -errno.EINVAL, arg, None
            if t2[rb + 1:] != "":
                ctx.err(ctx.offset + t2_pos + rb + 1, ProbeErr.BAD_ARRAY_SUFFIX)
                return -errno.EINVAL, arg, None
            err, count = kstrtouint(t2[:rb], 0)
            if err or not count:
                ctx.err(ctx.offset + t2_pos, ProbeErr.BAD_ARRAY_NUM)
                return -errno.EINVAL, arg, None
            parg.count = count
            if count > MAX_ARRAY_LEN:
                ctx.err(ctx.offset + t2_pos, ProbeErr.ARRAY_TOO_BIG)
                return -errno.EINVAL, arg, None
    offs = colon + 1 if t is not None else 0
    if not ctx.flags & TPARG_FL_TEVENT and (arg in ("$comm", "$COMM") or arg.startswith('\\"')):
        if parg.count or (t is not None and t != "string"):
            ctx.err(ctx.offset + offs, ProbeErr.NEED_STRING_TYPE)
            return -errno.EINVAL, arg, None
        parg.type = find_fetch_type("string", ctx.flags)
    else:
        parg.type = find_fetch_type(t, ctx.flags)
    if parg.type is None:
        ctx.err(ctx.offset + offs, ProbeErr.BAD_TYPE)
        return -errno.EINVAL, arg, None
    return 0, arg, t


_STRING_SRC_OPS = (FetchOp.DEREF, FetchOp.UDEREF, FetchOp.IMM, FetchOp.COMM, FetchOp.DATA,
                   FetchOp.TP_ARG)
_SYMSTR_SRC_OPS = (FetchOp.REG, FetchOp.STACK, FetchOp.RETVAL, FetchOp.ARG, FetchOp.DEREF,
                   FetchOp.TP_ARG)


def _finalize_fetch_insn(prog: _Prog, parg: ProbeArg, type_: str | None, type_offset: int,
                         ctx: ParseContext) -> int:
    assert parg.type is not None
    code = prog.pc
    C = prog.code
    if parg.type.is_string:
        if parg.type.name == "symstr":
            if C[code].op not in _SYMSTR_SRC_OPS:
                ctx.err(ctx.offset + type_offset, ProbeErr.BAD_SYMSTRING)
                return -errno.EINVAL
        elif C[code].op not in _STRING_SRC_OPS:
            ctx.err(ctx.offset + type_offset, ProbeErr.BAD_STRING)
            return -errno.EINVAL
        if (parg.type.name == "symstr"
                or C[code].op in (FetchOp.IMM, FetchOp.COMM, FetchOp.DATA, FetchOp.TP_ARG)
                or parg.count):
            code += 1
            if C[code].op != FetchOp.NOP:
                ctx.err(ctx.offset, ProbeErr.TOO_MANY_OPS)
                return -errno.EINVAL
        if parg.type.name == "ustring" or C[code].op == FetchOp.UDEREF:
            C[code].op = FetchOp.ST_USTRING
        elif parg.type.name == "symstr":
            C[code].op = FetchOp.ST_SYMSTR
        else:
            C[code].op = FetchOp.ST_STRING
        C[code].size = parg.type.size
        parg.dynamic = True
    elif C[code].op == FetchOp.DEREF:
        C[code].op = FetchOp.ST_MEM
        C[code].size = parg.type.size
    elif C[code].op == FetchOp.UDEREF:
        C[code].op = FetchOp.ST_UMEM
        C[code].size = parg.type.size
    else:
        code += 1
        if C[code].op != FetchOp.NOP:
            ctx.err(ctx.offset, ProbeErr.TOO_MANY_OPS)
            return -errno.E2BIG
        C[code].op = FetchOp.ST_RAW
        C[code].size = parg.type.size
    scode = code
    prog.pc = code

    if type_ is not None:
        ret = _parse_bitfield_probe_arg(type_, parg.type, prog)
        if ret:
            ctx.err(ctx.offset + type_offset, ProbeErr.BAD_BITFIELD)
            return ret
    elif ctx.last_type is not None:
        ret = _parse_btf_bitfield(prog, ctx)
        if ret:
            return ret
    code = prog.pc

    if parg.count:
        if C[scode].op not in (FetchOp.ST_MEM, FetchOp.ST_STRING, FetchOp.ST_USTRING):
            ctx.err(ctx.offset + type_offset, ProbeErr.BAD_STRING)
            return -errno.EINVAL
        code += 1
        if C[code].op != FetchOp.NOP:
            ctx.err(ctx.offset, ProbeErr.TOO_MANY_OPS)
            return -errno.E2BIG
        C[code].op = FetchOp.LP_ARRAY
        C[code].param = parg.count
    code += 1
    C[code].op = FetchOp.END
    prog.pc = code
    return 0


def _parse_probe_arg_body(argv: str, tp: TraceProbe, parg: ProbeArg, ctx: ParseContext) -> int:
    if len(argv) > MAX_ARGSTR_LEN:
        ctx.err(ctx.offset, ProbeErr.ARG_TOO_LONG)
        return -errno.E2BIG
    if len(argv) == 0:
        ctx.err(ctx.offset, ProbeErr.NO_ARG_BODY)
        return -errno.EINVAL
    parg.comm = argv
    ret, arg, type_ = _parse_probe_arg_type(argv, parg, ctx)
    if ret:
        return ret
    prog = _Prog()
    ctx.last_type = None
    ret = _parse_probe_arg(arg, prog, ctx)
    if ret < 0:
        return ret
    if ctx.last_type is not None:
        if type_ is None:
            parg.type = _find_fetch_type_from_btf_type(ctx)
        elif "string" in type_:
            ret = _check_prepare_btf_string_fetch(type_, prog, ctx)
            if ret:
                return ret
    assert parg.type is not None
    parg.offset = tp.size
    tp.size += parg.type.size * (parg.count or 1)
    if tp.size > MAX_PROBE_EVENT_SIZE:
        ctx.err(ctx.offset, ProbeErr.EVENT_TOO_BIG)
        return -errno.E2BIG
    if parg.count:
        parg.fmt = f"{parg.type.fmttype}[{parg.count}]"
    type_offset = len(arg) + 1 if type_ is not None else 0
    ret = _finalize_fetch_insn(prog, parg, type_, type_offset, ctx)
    if ret < 0:
        return ret
    end = prog.pc
    parg.code = prog.code[:end + 1]
    return 0


def _conflict_field_name(name: str, args: list[ProbeArg], narg: int) -> bool:
    if name in RESERVED_FIELD_NAMES:
        return True
    return any(args[i].name == name for i in range(narg))


def _generate_probe_arg_name(arg: str, idx: int) -> str:
    colon = arg.find(":")
    name = arg if colon < 0 else arg[:colon]
    if is_good_name(name):
        return name
    return f"arg{idx + 1}"


def traceprobe_parse_probe_arg(tp: TraceProbe, i: int, arg: str, ctx: ParseContext) -> int:
    """Parse ``[NAME=]FETCHARG[:TYPE]`` into ``tp.args[i]``; 0 or -errno."""
    parg = tp.args[i]
    ctx.tp = tp
    eq = arg.find("=")
    if eq >= 0:
        if eq > MAX_ARG_NAME_LEN:
            ctx.err(0, ProbeErr.ARG_NAME_TOO_LONG)
            return -errno.EINVAL
        if eq == 0:
            ctx.err(0, ProbeErr.NO_ARG_NAME)
            return -errno.EINVAL
        parg.name = arg[:eq]
        body = arg[eq + 1:]
    else:
        parg.name = _generate_probe_arg_name(arg, i)
        body = arg
        eq = -1
    if not is_good_name(parg.name):
        ctx.err(0, ProbeErr.BAD_ARG_NAME)
        return -errno.EINVAL
    if _conflict_field_name(parg.name, tp.args, i):
        ctx.err(0, ProbeErr.USED_ARG_NAME)
        return -errno.EINVAL
    ctx.offset = eq + 1
    return _parse_probe_arg_body(body, tp, parg, ctx)


def _argv_has_var_arg(argv: list[str], ctx: ParseContext) -> tuple[int, int]:
    """Returns (found or -errno, args_idx)."""
    found = 0
    args_idx = -1
    for i, a in enumerate(argv):
        if a.startswith("$arg"):
            ctx.log.set_index(i + 2)
            if not tparg_is_function_entry(ctx.flags) and not tparg_is_function_return(ctx.flags):
                ctx.err(0, ProbeErr.NOFENTRY_ARGS)
                return -errno.EINVAL, args_idx
            c4 = a[4:5]
            if c4 and isdigit(c4):
                found = 1
                continue
            if c4 != "*":
                ctx.err(0, ProbeErr.BAD_VAR)
                return -errno.EINVAL, args_idx
            if 0 <= args_idx < len(argv):
                ctx.err(0, ProbeErr.DOUBLE_ARGS)
                return -errno.EINVAL, args_idx
            found = 1
            args_idx = i
    return found, args_idx


def traceprobe_expand_meta_args(argv: list[str], ctx: ParseContext
                                ) -> tuple[int, list[str] | None]:
    """``$arg*`` and ``$argN`` → BTF parameter names.  Returns (ret, new argv or None)."""
    ret, args_idx = _argv_has_var_arg(argv, ctx)
    if ret < 0:
        return ret, None
    if not ret:
        return 0, None
    ret = _query_btf_context(ctx)
    if ret < 0 or ctx.nr_params == 0:
        if args_idx != -1:
            ctx.err(0, ProbeErr.NOSUP_BTFARG)
            return -errno.EOPNOTSUPP, None
        return 0, None
    used = 0
    new_argv: list[str] = []

    def nth(idx: int, type_: str) -> tuple[int, str]:
        nonlocal used
        if idx >= ctx.nr_params:
            ctx.err(0, ProbeErr.NO_BTFARG)
            return -errno.ENOENT, ""
        name = ctx.params[idx][0]
        if not name:
            ctx.err(0, ProbeErr.NO_BTF_ENTRY)
            return -errno.ENOENT, ""
        s = name + type_
        if len(s) >= MAX_BTF_ARGS_LEN - used:
            ctx.err(0, ProbeErr.ARGS_2LONG)
            return -errno.E2BIG, ""
        used += len(s) + 1
        return 0, s

    for i, a in enumerate(argv):
        ctx.log.set_index(i + 2)
        if i == args_idx:
            for n in range(ctx.nr_params):
                r, s = nth(n, "")
                if r < 0:
                    return r, None
                new_argv.append(s)
            continue
        if a.startswith("$arg"):
            n, j = simple_strtoul(a[4:], 10)
            type_ = a[4 + j:]
            if not (type_[:1] == ":" or type_ == ""):
                ctx.err(0, ProbeErr.BAD_VAR)
                return -errno.ENOENT, None
            if n == 0:
                ctx.err(0, ProbeErr.BAD_ARG_NUM)
                return -errno.EINVAL, None
            r, s = nth(n - 1, type_)
            if r < 0:
                return r, None
            new_argv.append(s)
        else:
            new_argv.append(a)
    return 0, new_argv


def traceprobe_expand_dentry_args(argv: list[str]) -> tuple[int, list[str]]:
    """``ARG:%pd`` / ``ARG:%pD`` → the dentry-name string dereference."""
    out: list[str] = []
    used = 0
    for a in argv:
        if not (len(a) >= 4 and a[-4:-1] == ":%p" and a[-1] in "dD"):
            out.append(a)
            continue
        eq = a.find("=")
        name, body = (a[:eq], a[eq + 1:-4]) if eq >= 0 else ("", a[:-4])
        prefix = f"{name}=" if eq >= 0 else ""
        if a[-1] == "d":
            s = f"{prefix}+0x0(+0x{DENTRY_D_NAME_NAME_OFFSET:x}({body})):string"
        else:
            s = (f"{prefix}+0x0(+0x{DENTRY_D_NAME_NAME_OFFSET:x}"
                 f"(+0x{FILE_F_PATH_DENTRY_OFFSET:x}({body}))):string")
        if len(s) >= MAX_DENTRY_ARGS_LEN - used:
            return -errno.ENOMEM, argv
        used += len(s) + 1
        out.append(s)
    return 0, out


def traceprobe_finish_parse(ctx: ParseContext) -> None:
    _clear_btf_context(ctx)


def traceprobe_update_arg(arg: ProbeArg, lookup_name: Callable[[str], int]) -> int:
    """Resolve ``@SYM[+-off]`` placeholders (kallsyms_lookup_name); 0 or -errno."""
    code = arg.code
    for i, insn in enumerate(code):
        if insn.op == FetchOp.END:
            break
        if insn.op == FetchOp.NOP_SYMBOL:
            if i + 1 >= len(code) or code[i + 1].op != FetchOp.IMM:
                return -errno.EINVAL
            sym = insn.data
            off = 0
            cut = min((p for p in (sym.find("+"), sym.find("-")) if p >= 0), default=-1)
            if cut >= 0:
                ret, off = kstrtol(sym[cut:], 0)
                if ret:
                    return ret
                sym = sym[:cut]
            addr = lookup_name(sym)
            if not addr:
                return -errno.ENOENT
            code[i + 1].immediate = (addr + off) & 0xFFFFFFFFFFFFFFFF
    return 0


# ----------------------------------------------------------------------------- print fmt
PROBE_PRINT_NORMAL = 0
PROBE_PRINT_RETURN = 1
PROBE_PRINT_EVENT = 2


def set_print_fmt(tp: TraceProbe, ptype: int) -> str:
    """``__set_print_fmt`` (traceprobe_set_print_fmt): the ``print fmt:`` line."""
    if ptype == PROBE_PRINT_NORMAL:
        fmt, arg = "(%lx)", ", REC->" + FIELD_STRING_IP
    elif ptype == PROBE_PRINT_RETURN:
        fmt, arg = "(%lx <- %lx)", ", REC->" + FIELD_STRING_FUNC + ", REC->" + FIELD_STRING_RETIP
    else:
        fmt, arg = "", ""
    out = ['"', fmt]
    for parg in tp.args:
        assert parg.type is not None
        out.append(f" {parg.name}=")
        if parg.count:
            out.append("{" + ",".join([parg.type.fmt] * parg.count) + "}")
        else:
            out.append(parg.type.fmt)
    out.append('"')
    out.append(arg)
    for parg in tp.args:
        assert parg.type is not None
        if parg.count:
            f = ", __get_str(%s[%d])" if parg.type.is_string else ", REC->%s[%d]"
            for j in range(parg.count):
                out.append(f % (parg.name, j))
        else:
            f = ", __get_str(%s)" if parg.type.is_string else ", REC->%s"
            out.append(f % parg.name)
    return "".join(out)


def define_arg_fields(tp: TraceProbe, offset: int) -> list[Field]:
    """``traceprobe_define_arg_fields``: fields after the fixed head (packed, no padding)."""
    out = []
    for parg in tp.args:
        assert parg.type is not None
        size = parg.type.size * (parg.count or 1)
        out.append(Field(parg.fmt or parg.type.fmttype, parg.name, offset + parg.offset,
                         size, parg.type.is_signed))
    return out


# struct kprobe_trace_entry_head / fentry_trace_entry_head / the uprobe entry: the
# trace_entry and the probed address; kretprobe / fexit / uretprobe: the function and
# the return address
PROBE_HEAD_SIZE = 16
PROBE_RET_HEAD_SIZE = 24


def probe_head_fields(is_return: bool) -> list[Field]:
    """The head fields (kprobe_fields_array & co) of a function probe event."""
    if is_return:
        return [Field("unsigned long", FIELD_STRING_FUNC, 8, 8, False),
                Field("unsigned long", FIELD_STRING_RETIP, 16, 8, False)]
    return [Field("unsigned long", FIELD_STRING_IP, 8, 8, False)]


def probe_event_format(tp: TraceProbe, is_return: bool) -> tuple[list[Field], str]:
    """The fields and print fmt of a function probe event (kprobe, fprobe, uprobe)."""
    head = PROBE_RET_HEAD_SIZE if is_return else PROBE_HEAD_SIZE
    return (probe_head_fields(is_return) + define_arg_fields(tp, head),
            set_print_fmt(tp, PROBE_PRINT_RETURN if is_return else PROBE_PRINT_NORMAL))


def compare_arg_type(a: TraceProbe, b: TraceProbe) -> int:
    """``trace_probe_compare_arg_type``: 1-based index of the first difference, or 0."""
    if a.nr_args < b.nr_args:
        return a.nr_args + 1
    if a.nr_args > b.nr_args:
        return b.nr_args + 1
    for i in range(a.nr_args):
        x, y = a.args[i], b.args[i]
        if x.type is not y.type or x.count != y.count or x.name != y.name:
            return i + 1
    return 0


def match_command_args(tp: TraceProbe, argv: list[str]) -> bool:
    """``trace_probe_match_command_args``: each given arg must be ``NAME=COMM``."""
    if tp.nr_args < len(argv):
        return False
    for i, a in enumerate(argv):
        parg = tp.args[i]
        if a != f"{parg.name}={parg.comm}":
            return False
    return True


# ----------------------------------------------------------------------------- the probed context
def hex_addr(addr: int) -> str:
    return f"0x{addr:x}"


class ProbeRegs(Protocol):
    """The probed context (pt_regs at function entry/exit)."""

    def get_kernel_argument(self, n: int) -> int: ...

    def return_value(self) -> int: ...

    def kernel_stack_nth(self, n: int) -> int: ...

    def stack_pointer(self) -> int: ...


class ProbeMem(Protocol):
    """Simulated kernel/user memory: ``None`` means the access faults."""

    def read(self, addr: int, size: int, user: bool = False) -> bytes | None: ...

    def read_str(self, addr: int, maxlen: int, user: bool = False) -> bytes | None:
        """NUL-terminated string without the NUL (at most maxlen-1 bytes)."""
        ...


@dataclass(slots=True)
class FetchEnv:
    """Everything a fetch program may touch while the probe fires."""

    regs: ProbeRegs
    mem: ProbeMem
    comm: bytes = b""
    edata: bytearray | None = None
    sprint_symbol: Callable[[int], str] = hex_addr
    rec: bytes | bytearray | None = None    # eprobes: the attached event's record
    rec_addr: int = 0                       # where that record "is" (string fields' address)


class NoRegs:
    """The call site passed no register set: every register reads as 0."""

    def get_kernel_argument(self, n: int) -> int:
        return 0

    def return_value(self) -> int:
        return 0

    def kernel_stack_nth(self, n: int) -> int:
        return 0

    def stack_pointer(self) -> int:
        return 0


NO_REGS = NoRegs()


# ----------------------------------------------------------------------------- probe events
P = TypeVar("P", bound="ProbeDynEvent")


class TraceProbeEvent(Generic[P]):
    """``struct trace_probe_event``: what every probe appended to one GRP/EVENT shares —
    the event call (its class->reg is ``reg``), the enable flags (TP_FLAG_TRACE while an
    event file is linked, TP_FLAG_PROFILE for perf) and the linked event files.  The
    first of ``probes`` is the primary one, whose arguments define the record."""

    __slots__ = ("kind", "call", "flags", "files", "probes")

    def __init__(self, kind: TraceProbeKind[P], group: str, name: str, call_flags: int) -> None:
        self.kind = kind
        self.call = EventCall(group, name, flags=call_flags, reg=self.reg)
        self.flags = 0
        # replaced, never mutated, so a probe firing while a file is linked or unlinked
        # loops over a stable tuple
        self.files: tuple[EventFile, ...] = ()
        self.probes: list[P] = []

    def primary(self) -> P:
        return self.probes[0]

    def is_enabled(self) -> bool:
        return bool(self.flags & (TP_FLAG_TRACE | TP_FLAG_PROFILE))

    def reg(self, call: EventCall, type_: int, file: EventFile | None) -> int:
        """The class's reg() (kprobe_register, fprobe_register, trace_uprobe_register…)."""
        if type_ == TRACE_REG_REGISTER:
            return self.kind.enable(self, file)
        if type_ == TRACE_REG_UNREGISTER:
            return self.kind.disable(self, file)
        if type_ == TRACE_REG_PERF_REGISTER:
            return self.kind.enable(self, None)
        if type_ == TRACE_REG_PERF_UNREGISTER:
            return self.kind.disable(self, None)
        return 0

    def has_file(self, file: EventFile) -> bool:
        """trace_probe_get_file_link()."""
        return any(f is file for f in self.files)

    def add_file(self, file: EventFile) -> None:
        """trace_probe_add_file()."""
        self.files = (*self.files, file)
        self.flags |= TP_FLAG_TRACE

    def remove_file(self, file: EventFile) -> int:
        """trace_probe_remove_file(): -ENOENT when ``file`` is not linked."""
        if not self.has_file(file):
            return -errno.ENOENT
        self.files = tuple(f for f in self.files if f is not file)
        if not self.files:
            self.flags &= ~TP_FLAG_TRACE
        return 0


class ProbeDynEvent(DynEvent):
    """One probe definition: the ``dyn_event`` and the ``struct trace_probe`` (its
    arguments) every kind embeds, and the event it belongs to."""

    tp: TraceProbe
    event: TraceProbeEvent[Self]

    def __init__(self, kind: TraceProbeKind[Self], group: str, event: str, nargs: int,
                 call_flags: int) -> None:
        super().__init__(kind)
        self.kind = kind
        self.tp = TraceProbe(nr_args=nargs)
        self.event = TraceProbeEvent(kind, group, event, call_flags)
        self.event.probes.append(self)

    @property
    def name(self) -> str:
        return self.event.call.name

    @property
    def group(self) -> str:
        return self.event.call.system


def match_group_event(p: ProbeDynEvent, system: str | None, event: str) -> bool:
    """``-:[GRP/]EVENT``: the event name (any when empty) and the group (any when None)."""
    return (not event or p.name == event) and (system is None or p.group == system)


class TraceProbeKind(Generic[P]):
    """The part of a probe kind's dyn_event_operations that is the same for every kind
    (trace_probe.c's helpers and the common shape of the kinds' code): the probe log,
    the kind's probes, ``show``/``match`` of the arguments, registration with the
    multiprobe append (``trace_probe_append``/``trace_probe_unlink``), and enabling an
    event across all its probes.  A kind supplies its syntax (``parse``), what its
    probes are (``probe_class``, ``location``) and the hooks that arm and disarm them."""

    probe_class: type[P]
    log_subsystem = ""          # the error_log location, e.g. "trace_kprobe"

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.dyn = kernel.dynevent
        self.events = kernel.events

    # --------------------------------------------------------------- log
    @property
    def log(self) -> ProbeLog:
        return self.dyn.probe_log

    def log_set_index(self, index: int) -> None:
        self.log.set_index(index)

    def log_err(self, offset: int, err: ProbeErr) -> None:
        self.log.err(offset, err)

    # --------------------------------------------------------------- the kind's probes
    def probes(self) -> list[P]:
        cls = self.probe_class
        return [ev for ev in self.dyn.events if isinstance(ev, cls)]

    def find_probe(self, event: str, group: str) -> P | None:
        """find_trace_kprobe() & co: the probes of GRP/EVENT (the first one)."""
        for p in self.probes():
            if p.name == event and p.group == group:
                return p
        return None

    # --------------------------------------------------------------- dyn_event_operations
    def create(self, raw_command: str) -> int:
        """trace_probe_create(): split the command, then the kind's parser."""
        argv = argv_split(raw_command)
        if not argv:
            return 0
        return self.parse(argv)

    def parse(self, argv: list[str]) -> int:
        raise NotImplementedError

    def show(self, ev: DynEvent) -> str:
        raise NotImplementedError

    def location(self, p: P) -> str:
        """What ``-:GRP/EVENT LOCATION ARGS`` compares with LOCATION."""
        raise NotImplementedError

    def is_busy(self, ev: DynEvent) -> bool:
        assert isinstance(ev, self.probe_class)
        return ev.event.is_enabled()

    def free(self, ev: DynEvent) -> int:
        assert isinstance(ev, self.probe_class)
        return self.unregister_trace_probe(ev)

    def match(self, system: str | None, event: str, argv: list[str], ev: DynEvent) -> bool:
        assert isinstance(ev, self.probe_class)
        if not match_group_event(ev, system, event):
            return False
        if not argv:
            return True
        return self.match_location(ev, argv[0]) and match_command_args(ev.tp, argv[1:])

    def match_location(self, p: P, arg: str) -> bool:
        """The LOCATION of ``-:GRP/EVENT LOCATION ARGS`` (shown at most MAX_ARGSTR_LEN)."""
        return self.location(p)[:MAX_ARGSTR_LEN] == arg

    def run_command(self, raw_command: str) -> int:
        """create_or_delete_trace_kprobe/uprobe: one line of ``kprobe_events`` /
        ``uprobe_events`` (this kind only; ``-:`` deletes)."""
        if raw_command[:1] == "-":
            return self.dyn.release(raw_command, self)
        ret = self.dyn.create_of(raw_command, self)
        return -errno.EINVAL if ret == -errno.ECANCELED else ret

    # --------------------------------------------------------------- parsing helpers
    @contextmanager
    def parsing(self, argv: list[str], ctx: ParseContext | None = None) -> Iterator[None]:
        """trace_probe_log_init() … trace_probe_log_clear() and traceprobe_finish_parse()
        around the parsing of one command."""
        self.log.init(self.log_subsystem, argv)
        try:
            yield
        finally:
            if ctx is not None:
                traceprobe_finish_parse(ctx)
            self.log.clear()

    def parse_maxactive(self, a0: str, colon: int, limit: int) -> tuple[int, int]:
        """``[pfr]N:``: (0 or -EINVAL with the error logged, maxactive; 0 when none)."""
        if not (a0[1:2] and isdigit(a0[1])):
            return 0, 0
        length = (colon - 1) if colon >= 0 else len(a0) - 1
        if length > MAX_EVENT_NAME_LEN - 1:
            self.log_err(1, ProbeErr.BAD_MAXACT)
            return -errno.EINVAL, 0
        err, maxactive = kstrtouint(a0[1:1 + length], 0)
        if err or not maxactive:
            self.log_err(1, ProbeErr.BAD_MAXACT)
            return -errno.EINVAL, 0
        if maxactive > limit:
            self.log_err(1, ProbeErr.MAXACT_TOO_BIG)
            return -errno.EINVAL, 0
        return 0, maxactive

    @staticmethod
    def event_part(a0: str) -> tuple[int, str | None]:
        """``[pfte]...:[GRP/][EVENT]``: (position of the ':' or -1, what follows it)."""
        colon = a0.find(":", 1)
        return colon, (a0[colon + 1:] if colon >= 0 else None)

    def parse_group_event(self, event: str | None, offset: int, group: str
                          ) -> tuple[int, str | None, str]:
        """``GRP/EVENT`` after the ``:``: (0 or -EINVAL, event or None, group)."""
        if event is None:
            return 0, None, group
        ret, name, grp = traceprobe_parse_event_name(event, offset, self.log)
        if ret:
            return -errno.EINVAL, None, group
        return 0, name, grp if grp is not None else group

    def fetch_env(self, regs: ProbeRegs | None, edata: bytearray | None = None) -> FetchEnv:
        """What the fetch programs of one hit see: the registers, kernel memory, the
        current task's comm, a return probe's entry data and ``%pS`` through kallsyms."""
        k = self.kernel
        return FetchEnv(regs if regs is not None else NO_REGS, k.mem,
                        k.sched.current.comm.encode("latin-1", "replace")[:15], edata,
                        k.kallsyms.format_pS)

    def expand_args(self, argv: list[str], ctx: ParseContext) -> tuple[int, list[str]]:
        """The fetch arguments of a kernel probe, expanded: ``$arg*``/``$argN`` (BTF),
        then at most MAX_TRACE_ARGS (-E2BIG), then ``%pd``/``%pD``."""
        ret, new_argv = traceprobe_expand_meta_args(argv, ctx)
        if ret < 0:
            return ret, argv
        if new_argv is not None:
            argv = new_argv
        if len(argv) > MAX_TRACE_ARGS:
            return -errno.E2BIG, argv
        return traceprobe_expand_dentry_args(argv)

    def parse_return_suffix(self, text: str, pos: int) -> tuple[int, str, bool]:
        """``WHERE%return``: (0, or -EINVAL with BAD_ADDR_SUFFIX at ``pos`` + the '%'
        for another suffix; the text without it; whether it was %return)."""
        pct = text.find("%")
        if pct < 0:
            return 0, text, False
        if text[pct:] == "%return":
            return 0, text[:pct], True
        self.log_err(pos + pct, ProbeErr.BAD_ADDR_SUFFIX)
        return -errno.EINVAL, text, False

    def name_probe_event(self, event: str | None, offset: int, group: str, default: str
                         ) -> tuple[int, str, str]:
        """The event name of a kernel probe (argument 0 of the command): ``GRP/EVENT``
        after the ``:`` at ``offset``, else ``default`` (what it probes) cut to
        MAX_EVENT_NAME_LEN and sanitized.  (0 or -EINVAL, event, group)."""
        self.log_set_index(0)
        ret, name, group = self.parse_group_event(event, offset, group)
        if ret:
            return ret, "", group
        return 0, name or sanitize_event_name(default[:MAX_EVENT_NAME_LEN - 1]), group

    def set_probe_format(self, p: P, is_return: bool) -> None:
        """The fields and print fmt of a function probe event (kprobe, fprobe, uprobe)."""
        p.event.call.set_format(*probe_event_format(p.tp, is_return))

    def update_args(self, p: P, lookup_name: Callable[[str], int]) -> int:
        """traceprobe_update_arg() of every argument: 0 or the first -errno."""
        for a in p.tp.args:
            ret = traceprobe_update_arg(a, lookup_name)
            if ret:
                return ret
        return 0

    def create_probe(self, p: P, args: list[str], ctx: ParseContext, is_return: bool) -> int:
        """How __trace_kprobe_create and __trace_fprobe_create end: every fetch argument
        (with one parse context), the entry data of a return probe using ``$argN``, the
        event's format, then the registration (its failure logged)."""
        for i, a in enumerate(args):
            self.log_set_index(i + 2)
            ctx.offset = 0
            ret = traceprobe_parse_probe_arg(p.tp, i, a, ctx)
            if ret:
                return ret
        if is_return and p.tp.entry_arg is not None:
            self.setup_entry_data(p)
        self.set_probe_format(p, is_return)
        ret = self.register_trace_probe(p)
        if ret:
            self._log_register_error(ret)
        return ret

    def setup_entry_data(self, p: P) -> None:
        """A return probe whose arguments need the function's parameters: an entry
        handler saves them (traceprobe_get_entry_data_size bytes)."""
        raise NotImplementedError

    def _log_register_error(self, ret: int) -> None:
        """Why registering the probe failed, as the kinds log it after parsing."""
        self.log_set_index(1)
        if ret == -errno.EILSEQ:
            self.log_err(0, ProbeErr.BAD_INSN_BNDRY)
        elif ret == -errno.ENOENT:
            self.log_err(0, ProbeErr.BAD_PROBE_ADDR)
        elif ret not in (-errno.ENOMEM, -errno.EEXIST):
            self.log_err(0, ProbeErr.FAIL_REG_PROBE)

    # --------------------------------------------------------------- registration
    def register_trace_probe(self, p: P) -> int:
        """register_trace_kprobe() & co: a new GRP/EVENT registers its event call, an
        existing one gets ``p`` appended when the probe types and arguments agree."""
        old = self.find_probe(p.name, p.group)
        if old is not None:
            if self.probe_type_differs(p, old):
                self.log_set_index(0)
                self.log_err(0, ProbeErr.DIFF_PROBE_TYPE)
                return -errno.EEXIST
            return self.append_trace_probe(p, old)
        ret = self.events.add_event_call(p.event.call)
        if ret:
            if ret == -errno.EEXIST:
                self.log_set_index(0)
                self.log_err(0, ProbeErr.EVENT_EXIST)
            else:
                self.kernel.printk(f"{self.log_subsystem}: Failed to register probe event({ret})")
            return ret
        ret = self.register_probe(p)
        if ret < 0:
            self.events.remove_event_call(p.event.call)
        else:
            self.dyn.add(p)
        return ret

    def append_trace_probe(self, p: P, to: P) -> int:
        """append_trace_kprobe() & co: trace_probe_compare_arg_type, the same-probe
        check, trace_probe_append(), then the probe itself."""
        ret = compare_arg_type(p.tp, to.tp)
        if ret:
            self.log_set_index(ret + 1)       # the arguments start at index 2
            self.log_err(0, ProbeErr.DIFF_ARG_TYPE)
            return -errno.EEXIST
        for o in to.event.probes:
            if self.same_location(o, p) and all(
                    o.tp.args[i].comm == p.tp.args[i].comm for i in range(o.tp.nr_args)):
                self.log_set_index(0)
                self.log_err(0, ProbeErr.SAME_PROBE)
                return -errno.EEXIST
        p.event = to.event                    # trace_probe_append()
        to.event.probes.append(p)
        ret = self.register_probe(p)
        if ret:
            to.event.probes.remove(p)         # trace_probe_unlink()
        else:
            self.dyn.add(p)
        return ret

    def unregister_trace_probe(self, p: P) -> int:
        """unregister_trace_kprobe() & co: the last probe of an event takes the event
        call with it (-EBUSY while it is enabled or in use)."""
        pe = p.event
        if len(pe.probes) <= 1:
            if pe.is_enabled() or pe.call.refcnt:
                return -errno.EBUSY
            if self.events.remove_event_call(pe.call):
                return -errno.EBUSY
        self.unregister_probe(p)
        self.dyn.remove(p)
        if p in pe.probes:
            pe.probes.remove(p)               # trace_probe_unlink()
        return 0

    # the kind's hooks
    def same_location(self, a: P, b: P) -> bool:
        """trace_kprobe_has_same_kprobe() & co: both probe the same place."""
        return self.location(a) == self.location(b)

    def probe_type_differs(self, p: P, old: P) -> bool:
        """DIFF_PROBE_TYPE: entry vs return (vs tracepoint) probes on one event."""
        raise NotImplementedError

    def register_probe(self, p: P) -> int:
        """__register_trace_kprobe() & co: attach the probe itself; 0 or -errno."""
        raise NotImplementedError

    def unregister_probe(self, p: P) -> None:
        """__unregister_trace_kprobe() & co."""
        raise NotImplementedError

    # --------------------------------------------------------------- enable/disable
    def enable(self, pe: TraceProbeEvent[P], file: EventFile | None) -> int:
        """enable_trace_kprobe() & co: link the file (or set PROFILE); the first user
        arms every probe of the event, rolling back on a failure."""
        enabled = pe.is_enabled()
        if file is not None:
            pe.add_file(file)
        else:
            pe.flags |= TP_FLAG_PROFILE
        if enabled:
            return 0
        ret = self.enable_probes(pe)
        if ret:
            self.disable_probes(pe)
            if file is not None:
                pe.remove_file(file)
            else:
                pe.flags &= ~TP_FLAG_PROFILE
        return ret

    def disable(self, pe: TraceProbeEvent[P], file: EventFile | None) -> int:
        """disable_trace_kprobe() & co: unlink the file (or clear PROFILE); the last
        user disarms every probe of the event."""
        if file is not None:
            if not pe.has_file(file):
                return -errno.ENOENT
            if len(pe.files) == 1:
                pe.flags &= ~TP_FLAG_TRACE
                if not pe.is_enabled():
                    self.disable_probes(pe)
            pe.remove_file(file)
        else:
            pe.flags &= ~TP_FLAG_PROFILE
            if not pe.is_enabled():
                self.disable_probes(pe)
        return 0

    def enable_probes(self, pe: TraceProbeEvent[P]) -> int:
        """Arm every probe of the event; 0 or the first -errno."""
        raise NotImplementedError

    def disable_probes(self, pe: TraceProbeEvent[P]) -> None:
        raise NotImplementedError
