"""Synthetic events: the ``s`` dynamic-event kind and ``synthetic_events``
(kernel/trace/trace_events_synth.c, 6.12).

Definitions (``synthetic_events`` lines, or ``s:[synthetic/]NAME ...`` in dynamic_events)::

    NAME TYPE FIELD[; TYPE FIELD]...        !NAME ...  removes (synthetic_events only)

Types: ``s64 u64 s32 u32 s16 u16 s8 u8 char unsigned char int unsigned int long
unsigned long bool pid_t gfp_t``, ``char[N]`` (N <= 256), ``char[]`` (a ``__data_loc``
string) and ``long[]`` (a stack trace).  The event lives in events/synthetic/NAME with
the layout of ``struct synth_trace_event``: one u64 slot per field after the
trace_entry, 256 bytes for a fixed string.  Errors go to error_log as
``synthetic_events: error: TEXT`` with the caret under the offending word of the
command (``SynthErr``, the ERRORS table).  Hist triggers' onmatch/onmax/onchange
actions fire them (``trace_synth``): a synthetic event is a tracepoint like any other,
so its records take the event record path of trace_events.py.
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from .lib import argv_split, is_good_name, kstrtouint
from .trace_dynevent import DynEvent
from .trace_events import EventCall, Packer
from .trace_events_fmt import print_flags
from .trace_events_h import FILTER_OTHER, FILTER_STACKTRACE, TRACE_EVENT_FL_TRACEPOINT, Field, FieldValue
from .trace_flags import ITER_VERBOSE
from .trace_output import Printer, TraceIter

if TYPE_CHECKING:
    from .core import Kernel

SYNTH_SYSTEM = "synthetic"
SYNTH_FIELDS_MAX = 64
STR_VAR_LEN_MAX = 256            # MAX_FILTER_STR_VAL


class SynthErr(Enum):
    """The ``ERRORS`` X-macro of trace_events_synth.c, in the same order, same texts."""

    BAD_NAME = "Illegal name"
    INVALID_CMD = "Command must be of the form: <name> field[;field] ..."
    INVALID_DYN_CMD = "Command must be of the form: s or -:[synthetic/]<name> field[;field] ..."
    EVENT_EXISTS = "Event already exists"
    TOO_MANY_FIELDS = "Too many fields"
    INCOMPLETE_TYPE = "Incomplete type"
    INVALID_TYPE = "Invalid type"
    INVALID_FIELD = "Invalid field"
    INVALID_ARRAY_SPEC = "Invalid array specification"


_SIZES = {"s64": 8, "u64": 8, "s32": 4, "u32": 4, "s16": 2, "u16": 2, "s8": 1, "u8": 1,
          "char": 1, "unsigned char": 1, "int": 4, "unsigned int": 4, "long": 8,
          "unsigned long": 8, "bool": 1, "pid_t": 4, "gfp_t": 4}
_FMTS = {"s64": "%lld", "u64": "%llu", "s32": "%d", "u32": "%u", "s16": "%d", "u16": "%u",
         "s8": "%d", "u8": "%u", "char": "%d", "unsigned char": "%u", "int": "%d",
         "unsigned int": "%u", "long": "%ld", "unsigned long": "%lu", "bool": "%d",
         "pid_t": "%d", "gfp_t": "%x"}
_NUM_FMT = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


def _is_string(type_: str) -> bool:
    return "char[" in type_


def _is_stack(type_: str) -> bool:
    return "long[" in type_


def _string_size(type_: str) -> int:
    """synth_field_string_size(): N of char[N], 0 for char[], -EINVAL otherwise."""
    start = type_.find("char[")
    if start < 0:
        return -errno.EINVAL
    start += 5
    end = type_.find("]")
    if end < 0 or end < start or len(type_) > end + 1:
        return -errno.EINVAL
    digits = type_[start:end]
    if len(digits) > 3:
        return -errno.EINVAL
    if not digits:
        return 0
    err, size = kstrtouint(digits, 0)
    if err:
        return err
    if size > STR_VAR_LEN_MAX:
        return -errno.EINVAL
    return size


def _field_size(type_: str) -> int:
    size = _SIZES.get(type_)
    if size is not None:
        return size
    if _is_string(type_):
        return _string_size(type_)
    return 0


def _field_fmt(type_: str) -> str:
    fmt = _FMTS.get(type_)
    if fmt is not None:
        return fmt
    return "%s" if _is_string(type_) or _is_stack(type_) else "%llu"


def _signed(type_: str) -> bool:
    return not type_.startswith("u") and type_ != "gfp_t"


@dataclass
class SynthField:
    """``struct synth_field`` (plus the trace_define_field() arguments)."""

    type: str
    name: str
    size: int
    is_signed: bool
    is_string: bool = False
    is_dynamic: bool = False
    is_stack: bool = False
    offset: int = 0
    filter_type: int = FILTER_OTHER
    len: int = 0


def _print_fmt(fields: list[SynthField]) -> str:
    """__set_synth_event_print_fmt()."""
    fmt = ", ".join(f"{f.name}={_field_fmt(f.type)}" for f in fields)
    args = []
    for f in fields:
        if f.is_string and f.is_dynamic:
            args.append(f", __get_str({f.name})")
        elif f.is_stack:
            args.append(f", __get_stacktrace({f.name})")
        else:
            args.append(f", REC->{f.name}")
    return f'"{fmt}"' + "".join(args)


@dataclass(eq=False)
class SynthEvent(DynEvent):
    """``struct synth_event``: its fields and its event call (a tracepoint event)."""

    kind: SynthEvents
    name: str
    fields: list[SynthField]
    ref: int = 0                   # users (hist triggers): busy while > 0
    call: EventCall = field(init=False)

    def __post_init__(self) -> None:
        DynEvent.__init__(self, self.kind)
        offset = 8                      # struct synth_trace_event: trace_entry, then u64s
        for f in self.fields:
            f.offset = offset
            offset += STR_VAR_LEN_MAX if f.is_string and not f.is_dynamic else 8
        self.call = EventCall(SYNTH_SYSTEM, self.name, flags=TRACE_EVENT_FL_TRACEPOINT,
                              printer=SynthPrinter(self))
        self.call.set_format([Field(f.type, f.name, f.offset, f.size, f.is_signed, f.filter_type,
                                    f.len) for f in self.fields], _print_fmt(self.fields))
        self.call.packer = SynthPacker(self)

    def desc(self) -> str:
        """__synth_event_show(): ``NAME\\tTYPE FIELD; ...`` (no __data_loc)."""
        parts = []
        for f in self.fields:
            t = f.type
            if t.startswith("__data_loc "):
                t = t[len("__data_loc "):]
            parts.append(f"{t} {f.name}")
        return f"{self.name}\t" + "; ".join(parts) + "\n"


class SynthEvents:
    """The ``synth_event_ops`` kind of one kernel, and the synthetic_events file."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.dyn = kernel.dynevent
        self.events = kernel.events
        self.last_cmd: str | None = None

    # --------------------------------------------------------------- errors
    def _err(self, err: SynthErr, pos: int) -> None:
        """synth_err(): tracing_log_err(NULL, "synthetic_events", last_cmd, ...)."""
        if self.last_cmd is None:
            return
        self.kernel.trace.global_trace.log_err("synthetic_events", self.last_cmd, err.value, pos)

    def _errpos(self, s: str) -> int:
        if not self.last_cmd or not s:
            return 0
        pos = self.last_cmd.find(s)
        return pos if pos >= 0 else 0

    # --------------------------------------------------------------- dyn_event ops
    def create(self, raw_command: str) -> int:
        """create_synth_event(): ``s:[synthetic/]NAME FIELDS`` of dynamic_events."""
        raw = raw_command.lstrip(" \t\n\v\f\r")
        if not raw:
            return 0
        self.last_cmd = raw
        if not raw.startswith("s:"):
            return -errno.ECANCELED
        sp = min((i for i, c in enumerate(raw) if c in " \t"), default=-1)
        if sp < 0:
            self._err(SynthErr.INVALID_CMD, 0)
            return -errno.EINVAL
        fields = raw[sp:].lstrip(" \t\n\v\f\r")
        start = 2
        name_part = raw[2:sp]
        if "/" in raw[2:]:
            if not raw[2:].startswith(SYNTH_SYSTEM + "/"):
                self._err(SynthErr.INVALID_DYN_CMD, 0)
                return -errno.EINVAL
            start += len(SYNTH_SYSTEM) + 1
            name_part = raw[start:sp]
        ret = self._check_command(raw[start:])
        if ret:
            self._err(SynthErr.INVALID_CMD, 0)
            return ret
        return self._create(name_part, fields)

    def run_command(self, raw_command: str) -> int:
        """create_or_delete_synth_event(): a line of synthetic_events."""
        raw = raw_command.lstrip(" \t\n\v\f\r")
        if not raw:
            return 0
        self.last_cmd = raw
        ret = self._check_command(raw)
        if ret:
            self._err(SynthErr.INVALID_CMD, 0)
            return ret
        sp = min((i for i, c in enumerate(raw) if c in " \t"), default=-1)
        if sp < 0 and raw[0] != "!":
            self._err(SynthErr.INVALID_CMD, 0)
            return -errno.EINVAL
        name = raw[:sp] if sp >= 0 else raw
        if name[0] == "!":
            return self._delete(name[1:])
        return self._create(name, raw[sp:].lstrip(" \t\n\v\f\r"))

    @staticmethod
    def _check_command(raw: str) -> int:
        """check_command(): a definition needs ``NAME TYPE FIELD`` before the first ';'."""
        first = raw.split(";", 1)[0]
        if first[:1] == "!":
            return 0
        return -errno.EINVAL if len(argv_split(first)) < 3 else 0

    def show(self, ev: DynEvent) -> str:
        assert isinstance(ev, SynthEvent)
        return f"s:{SYNTH_SYSTEM}/" + ev.desc()

    def file_text(self) -> str:
        """The synthetic_events file."""
        return "".join(ev.desc() for ev in self.dyn.events if isinstance(ev, SynthEvent))

    def is_busy(self, ev: DynEvent) -> bool:
        assert isinstance(ev, SynthEvent)
        return ev.ref != 0

    def free(self, ev: DynEvent) -> int:
        """synth_event_release()."""
        assert isinstance(ev, SynthEvent)
        if ev.ref or ev.call.refcnt:
            return -errno.EBUSY
        ret = self.events.remove_event_call(ev.call)
        if ret:
            return ret
        self.dyn.remove(ev)
        return 0

    def match(self, system: str | None, event: str, argv: list[str], ev: DynEvent) -> bool:
        assert isinstance(ev, SynthEvent)
        return ev.name == event and (system is None or system == SYNTH_SYSTEM)

    def find(self, name: str) -> SynthEvent | None:
        for ev in self.dyn.events:
            if isinstance(ev, SynthEvent) and ev.name == name:
                return ev
        return None

    # --------------------------------------------------------------- create / delete
    def _delete(self, name: str) -> int:
        """synth_event_delete()."""
        se = self.find(name)
        if se is None:
            return -errno.ENOENT
        return self.free(se)

    def _create(self, name: str, raw_fields: str) -> int:
        """__create_synth_event()."""
        if not name:
            self._err(SynthErr.INVALID_CMD, 0)
            return -errno.EINVAL
        if not is_good_name(name):
            self._err(SynthErr.BAD_NAME, self._errpos(name))
            return -errno.EINVAL
        if self.find(name) is not None:
            self._err(SynthErr.EVENT_EXISTS, self._errpos(name))
            return -errno.EEXIST
        fields: list[SynthField] = []
        for field_str in raw_fields.split(";"):
            argv = argv_split(field_str)
            if not argv:
                continue
            consumed = 0
            while len(argv) > consumed:
                ret, f, consumed = self._parse_field(argv, consumed)
                if f is None:
                    return ret
                if len(fields) == SYNTH_FIELDS_MAX:
                    self._err(SynthErr.TOO_MANY_FIELDS, 0)
                    return -errno.EINVAL
                fields.append(f)
            if consumed < len(argv):
                self._err(SynthErr.INVALID_CMD, 0)
                return -errno.EINVAL
        if not fields:
            self._err(SynthErr.INVALID_CMD, 0)
            return -errno.EINVAL
        se = SynthEvent(self, name, fields)
        ret = self.events.add_event_call(se.call)
        if ret:
            return ret
        self.dyn.add(se)
        return 0

    def _parse_field(self, argv: list[str], consumed: int
                     ) -> tuple[int, SynthField | None, int]:
        """parse_synth_field(): (ret, field or None, new consumed)."""
        args = argv[consumed:]
        prefix = ""
        ftype = args[0]
        if ftype == "unsigned":
            if len(args) < 3:
                self._err(SynthErr.INCOMPLETE_TYPE, self._errpos(ftype))
                return -errno.EINVAL, None, consumed
            prefix = "unsigned "
            ftype, fname = args[1], args[2]
            consumed += 3
        else:
            fname = args[1] if len(args) > 1 else None
            consumed += 2
        if fname is None:
            self._err(SynthErr.INVALID_FIELD, self._errpos(ftype))
            return -errno.EINVAL, None, consumed
        br = fname.find("[")
        array = fname[br:] if br >= 0 else ""
        name = fname[:br] if br >= 0 else fname
        if not is_good_name(name):
            self._err(SynthErr.BAD_NAME, self._errpos(fname))
            return -errno.EINVAL, None, consumed
        type_ = prefix + ftype + array
        size = _field_size(type_)
        dynamic = False
        if size < 0:
            if array:
                self._err(SynthErr.INVALID_ARRAY_SPEC, self._errpos(fname))
            else:
                self._err(SynthErr.INVALID_TYPE, self._errpos(ftype))
            return -errno.EINVAL, None, consumed
        if size == 0:
            if not (_is_string(type_) or _is_stack(type_)):
                self._err(SynthErr.INVALID_TYPE, self._errpos(ftype))
                return -errno.EINVAL, None, consumed
            type_ = "__data_loc " + type_
            dynamic = True
            size = 8
        is_string = _is_string(type_)
        is_stack = not is_string and _is_stack(type_)
        f = SynthField(type_, name, size, _signed(type_), is_string, dynamic, is_stack,
                       filter_type=FILTER_STACKTRACE if is_stack else FILTER_OTHER)
        return 0, f, consumed


def boot(kernel: Kernel) -> SynthEvents:
    """core_initcall(trace_events_synth_init_early)."""
    kind = SynthEvents(kernel)
    kernel.dynevent.register(kind)
    return kind


# ----------------------------------------------------------------------------- firing
class SynthPacker(Packer):
    """trace_event_raw_event_synth()'s fill of ``struct synth_trace_event``: a u64 slot
    per number, 256 bytes per fixed string, a (offset, len) slot per dynamic string or
    stack with its data after the fixed part (trace_string()/trace_stack())."""

    def __init__(self, se: SynthEvent) -> None:
        super().__init__([])
        self.se = se
        self.fixed = 8 + sum(STR_VAR_LEN_MAX if f.is_string and not f.is_dynamic else 8
                             for f in se.fields)

    def pack(self, values: tuple[FieldValue, ...]) -> bytearray:
        fixed = self.fixed
        rec = bytearray(fixed)
        tail = bytearray()
        for f, v in zip(self.se.fields, values, strict=False):
            if f.is_string:
                raw = v if isinstance(v, (bytes, bytearray)) else str(v).encode("utf-8", "replace")
                nul = raw.find(b"\0")
                raw = bytes(raw if nul < 0 else raw[:nul])[:STR_VAR_LEN_MAX - 1]
                if f.is_dynamic:
                    data = raw + b"\0"
                    _U32.pack_into(rec, f.offset, (len(data) << 16) | (fixed + len(tail)))
                    tail += data
                else:
                    rec[f.offset:f.offset + len(raw)] = raw
            elif f.is_stack:
                addrs = [int(a) for a in (v if isinstance(v, (list, tuple)) else [])]
                data = struct.pack(f"<{len(addrs) + 1}Q", len(addrs), *addrs)
                _U32.pack_into(rec, f.offset, (len(data) << 16) | (fixed + len(tail)))
                tail += data
            else:
                _U64.pack_into(rec, f.offset, int(v or 0) & ((1 << 64) - 1))
        return rec + tail


def trace_synth(kernel: Kernel, se: SynthEvent, values: list[FieldValue]) -> None:
    """trace_synth(): fire the synthetic event's tracepoint — one record in every trace
    array where it is enabled (or soft-enabled for its triggers), through the event
    record path like any event."""
    tp = se.call.tracepoint
    if tp is not None and tp.files:
        tp.fire(*values)


class SynthPrinter(Printer):
    """print_synth_event(): ``NAME: field=value ...`` (string fields ``%.*s``)."""

    def __init__(self, se: SynthEvent) -> None:
        self.se = se

    def trace(self, it: TraceIter) -> str:
        buf, off = it.buf, it.off
        out = [f"{self.se.name}: "]
        n = len(self.se.fields)
        verbose = bool(it.tr.flags & ITER_VERBOSE)
        for i, f in enumerate(self.se.fields):
            space = "" if i == n - 1 else " "
            fmt = _field_fmt(f.type)
            if verbose:
                out.append(f"{fmt} ")
            if f.is_string:
                if f.is_dynamic:
                    (loc,) = _U32.unpack_from(buf, off + f.offset)
                    raw = bytes(buf[off + (loc & 0xFFFF):off + (loc & 0xFFFF) + (loc >> 16)])
                else:
                    raw = bytes(buf[off + f.offset:off + f.offset + STR_VAR_LEN_MAX])
                nul = raw.find(b"\0")
                text = (raw if nul < 0 else raw[:nul]).decode("latin-1")
                out.append(f"{f.name}={text}{space}")
            elif f.is_stack:
                (loc,) = _U32.unpack_from(buf, off + f.offset)
                start, ln = off + (loc & 0xFFFF), loc >> 16
                words = struct.unpack_from(f"<{ln // 8}Q", buf, start) if ln >= 8 else ()
                ks = it.kernel.kallsyms
                out.append(f"{f.name}=STACK:\n")
                for a in words[1:]:
                    out.append(f"=> {ks.format_pS(a)}\n")
            else:
                size = f.size if f.size in _NUM_FMT else 8
                (v,) = struct.unpack_from(_NUM_FMT[size], buf, off + f.offset)
                out.append(f"{f.name}={_format_num(fmt, v, size)}{space}")
                if f.type == "gfp_t":
                    out.append(f" ({print_flags(v, '|', []) if v else ''})")
        return "".join(out) + "\n"

    def raw(self, it: TraceIter) -> str:
        return self.trace(it)

    def hex(self, it: TraceIter) -> str:
        return self.trace(it)

    def binary(self, it: TraceIter) -> bytes:
        return b""


def _format_num(fmt: str, v: int, size: int) -> str:
    bits = size * 8
    if fmt.endswith("x"):
        return f"{v:x}"
    if fmt.endswith("d") and v >> (bits - 1):
        v -= 1 << bits
    return str(v)
