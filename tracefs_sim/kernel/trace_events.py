"""Trace events (kernel/trace/trace_events.c, trace_export.c, the TRACE_EVENT glue).

``TraceEvents`` (``k.events``) owns:

* the event calls (``EventCall``): every ``events/*/*/format`` of the reference kernel,
  kept as the captured text and parsed lazily (boot only splits the text), plus the
  dynamic events added with ``add_event_call``/``remove_event_call`` (ids from the
  kernel's ida: lowest free id above the static ones);
* one ``EventFile`` per (trace array, event call), created by ``init_instance(tr)``
  (the ``tr->events`` list) with the enable / soft-mode flags, filter and triggers;
* ``set_event`` / ``available_events`` / system and top-level ``enable``, the pid
  lists of ``set_event_pid`` / ``set_event_notrace_pid``;
* the tracepoints the workload fires: ``tracepoint(name)`` returns a ``Tracepoint``
  whose ``enabled`` is a plain attribute (true while an instance has the event
  enabled, soft mode included, or a probe is attached) and whose ``fire(*values)``
  writes one record into every linked event file;
* one printer per event (the print fmt compiled once, lazily: trace_events_fmt.py).

The record path
---------------
Every event record — static tracepoints, synthetic events, every probe kind — goes
through the same three steps, in the kernel's order (trace_event_raw_event_*,
__kprobe_trace_func, __fentry_trace_func, __uprobe_trace_func, __eprobe_trace_func,
trace_event_raw_event_synth):

1. ``trace_trigger_soft_disabled(file)``: a file in TRIGGER_MODE whose triggers need no
   record runs them now, unconditionally; a SOFT_DISABLED file then stops here;
2. ``trace_event_buffer_reserve(file, size)``: the pid filter (``set_event_pid`` /
   ``set_event_notrace_pid``, EVENT_FILE_FL_PID_FILTER) drops the record, else it gets
   a zeroed buffer with its ``struct trace_entry`` filled; the writer fills the rest;
3. ``trace_event_buffer_commit(file, rec)`` (``__event_trigger_test_discard``): with
   TRIGGER_COND the triggers see the record (those that must run after it is written
   are deferred), a SOFT_DISABLED record or one the event ``filter`` rejects is
   discarded, anything else is copied into the ring buffer; the deferred triggers run.

The record is built outside the ring buffer and copied in at commit: the kernel's
``trace_buffered_event`` path, which it takes whenever a file is filtered or soft
disabled.  For an unfiltered file the kernel reserves in place instead; the bytes that
end up in the buffer are the same, and this way a discarded record never touches it.
"""

from __future__ import annotations

import errno
import functools
import gzip
import re
import struct
from collections.abc import Callable, Iterable
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

from .errors import KernelError
from .trace_events_fmt import (
    Arr,
    Ctx,
    FmtCompiler,
    FmtError,
    dyn_arr,
    dyn_str,
    field_reader,
    mask_int,
    print_array,
)
from .trace_events_h import (
    COMMON_FIELDS,
    EVENT_FILE_FL_ENABLED,
    EVENT_FILE_FL_FILTERED,
    EVENT_FILE_FL_FREED,
    EVENT_FILE_FL_PID_FILTER,
    EVENT_FILE_FL_RECORDED_CMD,
    EVENT_FILE_FL_RECORDED_TGID,
    EVENT_FILE_FL_SOFT_DISABLED,
    EVENT_FILE_FL_SOFT_MODE,
    EVENT_FILE_FL_TRIGGER_COND,
    EVENT_FILE_FL_TRIGGER_MODE,
    EVENT_FILE_FL_WAS_ENABLED,
    GENERIC_FIELDS,
    TRACE_EVENT_FL_DYNAMIC,
    TRACE_EVENT_FL_IGNORE_ENABLE,
    TRACE_EVENT_FL_TRACEPOINT,
    TRACE_REG_REGISTER,
    TRACE_REG_UNREGISTER,
    Field,
    FieldValue,
)
from .trace_flags import ITER_EVENT_FORK, ITER_RECORD_CMD, ITER_RECORD_TGID, ITER_VERBOSE
from .trace_output import Printer, TraceIter
from .trace_parser import trace_pid_write

if TYPE_CHECKING:
    from .core import Kernel
    from .kallsyms import Kallsyms
    from .trace import TraceArray
    from .trace_events_filter import EventFilter
    from .trace_events_trigger import TriggerCommands, TriggerData

EVENT_BUF_SIZE = 127          # trace_events.c: EVENT_BUF_SIZE
TRACE_LAST_TYPE = 20          # __TRACE_LAST_TYPE: first id the ida hands out
TRACE_EVENT_TYPE_MAX = (1 << 16) - 1

_ENTRY = struct.Struct("<HBBi")     # struct trace_entry
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_INT_FMT = {(1, False): "B", (1, True): "b", (2, False): "H", (2, True): "h", (4, False): "I",
            (4, True): "i", (8, False): "Q", (8, True): "q"}

# class->reg(): what an event class does when a file enables or disables it
RegFn = Callable[["EventCall", int, "EventFile | None"], int]
# a tracepoint probe: a callback (with its data when it has some) or the address of a
# __probestub_NAME function that the stub caller runs through its ftrace site
ProbeFn = Callable[..., None]


# ============================================================================ data
def load_event_data() -> tuple[bytes, bytes, bytes, bytes]:
    """The captured formats, available_events, header_page and header_event.

    The one place that reads the packaged data (tracefs_sim/data, from gen_data.py).
    """
    pkg = resources.files("tracefs_sim.data")
    formats = gzip.decompress(pkg.joinpath("events.txt.gz").read_bytes())
    return (formats, pkg.joinpath("available_events.txt").read_bytes(),
            pkg.joinpath("header_page").read_bytes(), pkg.joinpath("header_event").read_bytes())


@cache
def static_event_records() -> tuple[tuple[tuple[str, str, int, bytes], ...], bytes, bytes]:
    """The captured events as (system, event, id, format text) in available_events
    order (the ftrace/* events, not listed there, at the end), with header_page and
    header_event.  Parsed once per process: every Kernel boots with the same data."""
    formats, avail, header_page, header_event = load_event_data()
    order = {line: i for i, line in enumerate(avail.decode().split("\n")) if line}
    recs = split_formats(formats)
    keyed = sorted(((order.get(f"{r[0]}:{r[1]}", -1), r) for r in recs), key=lambda p: (p[0] < 0, p[0]))
    return tuple(r for _, r in keyed), header_page, header_event


_REC_RE = re.compile(rb"^== ([^/\n]+)/([^\n]+)\nname: [^\n]*\nID: (\d+)\n", re.M)


def split_formats(blob: bytes) -> list[tuple[str, str, int, bytes]]:
    """(system, event, id, format text) for each ``== sys/event`` record."""
    out = []
    matches = list(_REC_RE.finditer(blob))
    for i, m in enumerate(matches):
        start = m.end(0) - len(b"name: ") - 0
        # the format text starts at "name: "
        start = blob.index(b"name: ", m.start(0))
        end = matches[i + 1].start(0) if i + 1 < len(matches) else len(blob)
        out.append((m.group(1).decode(), m.group(2).decode(), int(m.group(3)), blob[start:end]))
    return out



_FIELD_RE = re.compile(r"\tfield:(.*?);\toffset:(\d+);\tsize:(\d+);\tsigned:(-?\d+);")


def parse_field_line(line: str) -> Field | None:
    m = _FIELD_RE.match(line)
    if m is None:
        return None
    decl, off, size, sign = m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))
    sp = decl.rfind(" ")
    type_, name = decl[:sp].strip(), decl[sp + 1:]
    length = 0
    br = name.find("[")
    if br >= 0:
        arr = name[br:]
        name = name[:br]
        inner = arr[1:-1]
        length = int(inner) if inner.isdigit() else 0
        type_ = type_ + arr
    return Field(type_, name, off, size, sign != 0, length=length)


def parse_format(text: str) -> tuple[list[Field], str]:
    """The event's own fields (after the common ones) and the print fmt."""
    head, sep, fmt = text.partition("\nprint fmt: ")
    fields: list[Field] = []
    common = True
    for line in head.split("\n"):
        if line == "" and common:
            common = False
            continue
        if common:
            continue
        f = parse_field_line(line)
        if f is not None:
            fields.append(f)
    if fmt.endswith("\n"):
        fmt = fmt[:-1]
    return fields, fmt


# ============================================================================ calls
class EventCall:
    """``struct trace_event_call`` with its class: one event of ``available_events``.

    A static event keeps the captured format text and id and is parsed on first use.
    A dynamic event (probe, eprobe, synthetic) is built by its kind with the class
    callbacks the kernel's kinds fill in: ``reg`` (class->reg: what enabling a file
    does; None is a tracepoint's trace_event_reg), ``printer`` (event.funcs), and its
    fields and print fmt (``set_format``, before ``add_event_call``).
    """

    def __init__(self, system: str, name: str, type_id: int = 0, fmt_text: bytes | None = None,
                 flags: int = TRACE_EVENT_FL_TRACEPOINT, reg: RegFn | None = None,
                 printer: Printer | None = None) -> None:
        self.system = system
        self.name = name
        self.type_id = type_id
        self.flags = flags
        self.reg = reg
        self.printer = printer
        self._fmt_text = fmt_text
        self._fields: list[Field] | None = None
        self._print_fmt: str | None = None
        self._packer: Packer | None = None
        self._render: Callable[[Ctx], str] | None = None
        self.refcnt = 0              # open files and users (trace_event_try_get_ref)
        self.tracepoint: Tracepoint | None = None

    # ------------------------------------------------------------- identity
    @property
    def id(self) -> int:
        return self.type_id

    @property
    def full_name(self) -> str:
        return f"{self.system}:{self.name}"

    @property
    def ignore_enable(self) -> bool:
        return bool(self.flags & TRACE_EVENT_FL_IGNORE_ENABLE)

    @property
    def is_dynamic(self) -> bool:
        return bool(self.flags & TRACE_EVENT_FL_DYNAMIC)

    # ------------------------------------------------------------- format
    def set_format(self, fields: list[Field], print_fmt: str) -> None:
        """A dynamic event's fields (after the common ones) and print fmt."""
        self._fields = fields
        self._print_fmt = print_fmt
        self._packer = None
        self._render = None

    def _parse(self) -> None:
        text = (self._fmt_text or b"").decode("utf-8", "surrogateescape")
        self._fields, self._print_fmt = parse_format(text)

    @property
    def fields(self) -> list[Field]:
        """The event's own fields (trace_get_fields), in definition order."""
        if self._fields is None:
            self._parse()
        assert self._fields is not None
        return self._fields

    @property
    def print_fmt(self) -> str:
        if self._print_fmt is None:
            self._parse()
        assert self._print_fmt is not None
        return self._print_fmt

    def find_field(self, name: str) -> Field | None:
        """trace_find_event_field(): own fields, then generic, then common."""
        for f in self.fields:
            if f.name == name:
                return f
        for f in GENERIC_FIELDS:
            if f.name == name:
                return f
        for f in COMMON_FIELDS:
            if f.name == name:
                return f
        return None

    def format_text(self) -> str:
        """The ``format`` file (f_show): the capture verbatim for static events."""
        if self._fmt_text is not None:
            return self._fmt_text.decode("utf-8", "surrogateescape")
        out = [f"name: {self.name}\nID: {self.type_id}\nformat:\n"]
        for f in COMMON_FIELDS:
            out.append(f"\tfield:{f.decl()};\toffset:{f.offset};\tsize:{f.size};\tsigned:{int(f.is_signed)};\n")
        out.append("\n")
        for f in self.fields:
            out.append(f"\tfield:{f.decl()};\toffset:{f.offset};\tsize:{f.size};\tsigned:{int(f.is_signed)};\n")
        out.append(f"\nprint fmt: {self.print_fmt}\n")
        return "".join(out)

    # ------------------------------------------------------------- records
    @property
    def packer(self) -> Packer:
        """TP_fast_assign: packs a tracepoint's values into a record."""
        if self._packer is None:
            self._packer = Packer(self.fields)
        return self._packer

    @packer.setter
    def packer(self, packer: Packer) -> None:
        self._packer = packer

    def render(self, buf: bytes | bytearray, off: int, size: int, it: TraceIter | None,
               kallsyms: Kallsyms | None) -> str:
        """The text of the print fmt for the record at ``off`` (no name, no newline)."""
        if self._render is None:
            self._render = self._compile(kallsyms)
        return self._render((buf, off, size, it))

    def _compile(self, kallsyms: Kallsyms | None) -> Callable[[Ctx], str]:
        try:
            return FmtCompiler(self.fields, kallsyms).compile(self.print_fmt)
        except (FmtError, IndexError, ValueError, KeyError):
            return self._fields_printer()

    def _fields_printer(self) -> Callable[[Ctx], str]:
        """Fallback for an exotic print fmt: ``field=value`` for each field."""
        readers = []
        for f in self.fields:
            if f.is_dynamic and f.is_char:
                readers.append((f.name, dyn_str(f)))
            elif f.is_dynamic or f.is_rel:
                readers.append((f.name, dyn_arr(f)))
            else:
                readers.append((f.name, field_reader(f)))

        def show(c: Ctx) -> str:
            out = []
            for name, rd in readers:
                v = rd(c)
                if isinstance(v, Arr):
                    v = v.cstr() if v.elem == 1 else print_array(v.data, len(v.data) // v.elem, v.elem)
                out.append(f"{name}={v}")
            return " ".join(out)
        return show

    def format_line(self, buf: bytes | bytearray, off: int, size: int, kernel: Kernel | None = None) -> str:
        """The trace line body: ``name: <print fmt output>`` (no newline)."""
        ks = kernel.kallsyms if kernel is not None else None
        return f"{self.name}: {self.render(buf, off, size, None, ks)}"

    def __repr__(self) -> str:
        return f"EventCall({self.system}:{self.name} id={self.type_id})"


class Packer:
    """Packs ``fire()`` values into the record bytes after the common header."""

    def __init__(self, fields: list[Field]) -> None:
        self.fields = fields
        end = 8
        align = 4
        for f in fields:
            end = max(end, f.offset + f.size)
            a = min(f.elem_size or f.size, 8) if not (f.is_dynamic or f.is_rel) else 4
            if a in (2, 4, 8):
                align = max(align, a)
        self.base_size = (end + align - 1) // align * align
        self.dynamic = any(f.is_dynamic or f.is_rel for f in fields)
        self.ops: list[tuple[Field, Callable[[bytearray, int, FieldValue], None] | None]] = []
        for f in fields:
            self.ops.append((f, self._op(f)))
        self._fast_init()

    def _fast_init(self) -> None:
        """One struct for records of scalar ints and char arrays only (most events):
        ``pack`` then costs one ``pack_into``; anything it cannot take (an int out of
        range, None, a list) falls back to the per-field packers."""
        self.fast: struct.Struct | None = None
        self.chars: list[tuple[int, int]] = []      # (value index, array size)
        self.order: list[int] | None = None         # value indexes in offset order
        if self.dynamic or not self.fields:
            return
        idx = sorted(range(len(self.fields)), key=lambda i: self.fields[i].offset)
        fmt, pos = "<", 8
        for i in idx:
            f = self.fields[i]
            if f.offset < pos:
                return
            if f.count:
                if not f.is_char:
                    return
                code = f"{f.size}s"
                self.chars.append((i, f.size))
            else:
                c = _INT_FMT.get((f.size, f.is_signed))
                if c is None:
                    return
                code = c
            if f.offset > pos:
                fmt += f"{f.offset - pos}x"
            fmt += code
            pos = f.offset + f.size
        if pos > self.base_size:
            return
        self.order = None if idx == list(range(len(idx))) else idx
        self.fast = struct.Struct(fmt)

    @staticmethod
    def _op(f: Field) -> Callable[[bytearray, int, FieldValue], None] | None:
        off = f.offset
        if f.is_dynamic or f.is_rel:
            return None
        if f.count:
            size, elem, signed = f.size, f.elem_size, f.is_signed
            if f.is_char:
                def put_chars(b: bytearray, base: int, v: FieldValue) -> None:
                    raw = v.encode("utf-8", "replace") if isinstance(v, str) else bytes(v or b"")
                    raw = raw[:size - 1] if isinstance(v, str) else raw[:size]
                    b[base + off:base + off + len(raw)] = raw
                return put_chars
            code = _INT_FMT.get((elem, signed))
            st = struct.Struct("<" + code) if code else None

            def put_arr(b: bytearray, base: int, v: FieldValue) -> None:
                if isinstance(v, (bytes, bytearray)):
                    b[base + off:base + off + min(len(v), size)] = v[:size]
                    return
                for i, x in enumerate(list(v or ())[:size // elem]):
                    if st is not None:
                        st.pack_into(b, base + off + i * elem, mask_int(int(x), elem * 8, signed))
            return put_arr
        code = _INT_FMT.get((f.size, f.is_signed))
        if code is None:
            size = f.size

            def put_raw(b: bytearray, base: int, v: FieldValue) -> None:
                b[base + off:base + off + size] = (int(v) & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
            return put_raw
        st = struct.Struct("<" + code)
        bits, signed = f.size * 8, f.is_signed

        def put_int(b: bytearray, base: int, v: FieldValue) -> None:
            st.pack_into(b, base + off, mask_int(int(v), bits, signed))
        return put_int

    def pack(self, values: tuple[FieldValue, ...]) -> bytearray:
        """The whole record (common header zeroed) for ``values`` in field order."""
        fast = self.fast
        if fast is not None and len(values) == len(self.fields):
            vals = list(values)
            for i, size in self.chars:
                v = vals[i]
                if isinstance(v, str):   # a C string: NUL-terminated within the array
                    vals[i] = v.encode("utf-8", "replace")[:size - 1]
                elif v is None:
                    vals[i] = b""
            if self.order is not None:
                vals = [vals[i] for i in self.order]
            rec = bytearray(self.base_size)
            try:
                fast.pack_into(rec, 8, *vals)
                return rec
            except (struct.error, TypeError):
                pass
        return self.pack_fields(values)

    def pack_fields(self, values: tuple[FieldValue, ...]) -> bytearray:
        """``pack`` field by field (masking ints to their width)."""
        rec = bytearray(self.base_size)
        dyn: list[tuple[Field, bytes]] = []
        for (f, op), v in zip(self.ops, values, strict=False):
            if op is None:
                if isinstance(v, str):
                    data = v.encode("utf-8", "replace") + b"\0"
                elif isinstance(v, (bytes, bytearray)):
                    data = bytes(v)
                elif v is None:
                    data = b"\0" if f.is_char else b""
                elif isinstance(v, int):
                    data = b""
                else:
                    es = f.elem_size or 1
                    data = b"".join(mask_int(int(x), es * 8, False).to_bytes(es, "little") for x in v)
                dyn.append((f, data))
            elif v is not None:
                op(rec, 0, v)
        for f, data in dyn:
            start = len(rec)
            rec += data
            loc = start - (f.offset + 4) if f.is_rel else start
            _U32.pack_into(rec, f.offset, (len(data) << 16) | (loc & 0xFFFF))
        if len(rec) % 4:
            rec += bytes(4 - len(rec) % 4)
        return rec

    @functools.cached_property
    def default_values(self) -> tuple[FieldValue, ...]:
        """Each field's value when a tracepoint passes none: "" / b"" / 0."""
        out: list[FieldValue] = []
        for f in self.fields:
            if f.is_char and (f.count or f.is_dynamic or f.is_rel):
                out.append("")
            elif f.is_dynamic or f.is_rel:
                out.append(b"")
            else:
                out.append(0)
        return tuple(out)


class TraceEventPrinter(Printer):
    """The trace_event_functions of an event that defines only ``.trace``: the raw, hex
    and binary renderings print nothing (trace_nop_print)."""

    def raw(self, it: TraceIter) -> str:
        return ""

    def hex(self, it: TraceIter) -> str:
        return ""

    def binary(self, it: TraceIter) -> bytes:
        return b""


class EventPrinter(TraceEventPrinter):
    """The trace_event_functions of a TRACE_EVENT: ``name: <print fmt>``."""

    def __init__(self, call: EventCall) -> None:
        self.call = call

    def trace(self, it: TraceIter) -> str:
        call = self.call
        return f"{call.name}: {call.render(it.buf, it.off, it.size, it, it.kernel.kallsyms)}\n"


class SyscallEnterPrinter(TraceEventPrinter):
    """trace_syscalls.c print_syscall_enter(): ``sys_NAME(arg: hex, ...)``."""

    def __init__(self, call: EventCall) -> None:
        self.call = call
        self.sys_name = "sys_" + call.name[len("sys_enter_"):]

    def trace(self, it: TraceIter) -> str:
        args = []
        verbose = it.flags & ITER_VERBOSE
        for f in self.call.fields[1:]:
            v = _U64.unpack_from(it.buf, it.off + f.offset)[0] if f.size == 8 else \
                mask_int(int.from_bytes(it.buf[it.off + f.offset:it.off + f.offset + f.size], "little"), 64, False)
            t = f"{f.type} " if verbose else ""
            args.append(f"{t}{f.name}: {v:x}")
        return f"{self.sys_name}(" + ", ".join(args) + ")\n"


class SyscallExitPrinter(TraceEventPrinter):
    """print_syscall_exit(): ``sys_NAME -> 0xRET``."""

    def __init__(self, call: EventCall) -> None:
        self.call = call
        self.sys_name = "sys_" + call.name[len("sys_exit_"):]

    def trace(self, it: TraceIter) -> str:
        ret = _U64.unpack_from(it.buf, it.off + 16)[0]
        return f"{self.sys_name} -> 0x{ret:x}\n"


# ============================================================================ files
class EventFile:
    """``struct trace_event_file``: one event in one trace array."""

    __slots__ = ("call", "tr", "inst", "flags", "sm_ref", "tm_ref", "filter", "triggers",
                 "events", "__weakref__")

    def __init__(self, events: TraceEvents, call: EventCall, inst: InstanceEvents,
                 flags: int) -> None:
        self.events = events
        self.call = call
        self.inst = inst
        self.tr = inst.tr
        self.flags = flags      # InstanceEvents.new_file_flags()
        self.sm_ref = 0
        self.tm_ref = 0
        self.filter: EventFilter | None = None
        self.triggers: list[TriggerData] = []

    @property
    def soft_disabled(self) -> bool:
        return bool(self.flags & EVENT_FILE_FL_SOFT_DISABLED)

    def enable_text(self) -> str:
        """event_enable_read()."""
        f = self.flags
        s = "1" if f & EVENT_FILE_FL_ENABLED and not f & EVENT_FILE_FL_SOFT_DISABLED else "0"
        if f & (EVENT_FILE_FL_SOFT_DISABLED | EVENT_FILE_FL_SOFT_MODE):
            s += "*"
        return s + "\n"

    def filter_text(self) -> str:
        flt = self.filter
        if flt is not None and flt.text is not None:
            return flt.text + "\n"
        return "none\n"

    def __repr__(self) -> str:
        return f"EventFile({self.call.full_name}@{self.tr.name or 'top'} flags={self.flags:#x})"


class Subsystem:
    """``struct event_subsystem`` + its per-instance dir: the system filter."""

    __slots__ = ("name", "filter_text")

    def __init__(self, name: str) -> None:
        self.name = name
        self.filter_text: str | None = None


class InstanceEvents:
    """The event state of one trace array (``tr->events``, pid lists, systems)."""

    def __init__(self, tr: TraceArray) -> None:
        self.tr = tr
        self.files: dict[EventCall, EventFile] = {}
        self.systems: dict[str, Subsystem] = {}
        self.filtered_pids: set[int] | None = None
        self.filtered_no_pids: set[int] | None = None

    def has_pid_lists(self) -> bool:
        return bool(self.filtered_pids or self.filtered_no_pids)

    def new_file_flags(self) -> int:
        """The flags an event file of this array starts with: the pid filter's while
        the array has pid lists."""
        return EVENT_FILE_FL_PID_FILTER if self.has_pid_lists() else 0

    def ignore_task(self, pid: int) -> bool:
        """trace_ignore_this_task(): not in set_event_pid, or in set_event_notrace_pid."""
        pids, no_pids = self.filtered_pids, self.filtered_no_pids
        if pids is None and no_pids is None:
            return False
        return bool((pids is not None and pid not in pids) or (no_pids is not None and pid in no_pids))


# ============================================================================ the record path
# flags that make trace_trigger_soft_disabled() look further
_SOFT_CHECK = EVENT_FILE_FL_TRIGGER_MODE | EVENT_FILE_FL_SOFT_DISABLED | EVENT_FILE_FL_PID_FILTER
# flags that make __event_trigger_test_discard() look further
_DISCARD_CHECK = EVENT_FILE_FL_SOFT_DISABLED | EVENT_FILE_FL_FILTERED


def trace_trigger_soft_disabled(file: EventFile) -> bool:
    """trace_trigger_soft_disabled(): runs the triggers that need no record (a file in
    TRIGGER_MODE without TRIGGER_COND) and says whether a soft-disabled file stops here.
    A file with conditional triggers goes on: its triggers see the record at commit.
    The pid filter is applied once, by trace_event_buffer_reserve()."""
    flags = file.flags
    if not flags & _SOFT_CHECK or flags & EVENT_FILE_FL_TRIGGER_COND:
        return False
    if flags & EVENT_FILE_FL_TRIGGER_MODE:
        file.events.triggers.event_triggers_call(file, None)
    return bool(flags & EVENT_FILE_FL_SOFT_DISABLED)


def trace_event_ignore_this_pid(file: EventFile) -> bool:
    """trace_event_ignore_this_pid(): the current task is filtered out of this instance's
    events (``set_event_pid`` / ``set_event_notrace_pid``)."""
    return file.inst.ignore_task(file.events.sched.current.pid)


def trace_event_buffer_reserve(file: EventFile, size: int) -> bytearray | None:
    """trace_event_buffer_reserve(): None when the pid filter drops the record or the
    ring buffer takes none (recording off: with conditional triggers the kernel still
    fills a temp_buffer for them), else a zeroed record of ``size`` bytes with its
    ``struct trace_entry`` (type, flags, preempt count, pid of the current context) for
    the writer to fill."""
    flags = file.flags
    if flags & EVENT_FILE_FL_PID_FILTER and trace_event_ignore_this_pid(file):
        return None
    sched = file.events.sched
    rb = file.tr.buffer
    if (rb.record_disabled or rb.cpu_buffers[sched.cpu].record_disabled) \
            and not flags & EVENT_FILE_FL_TRIGGER_COND:
        return None
    rec = bytearray(size)
    _ENTRY.pack_into(rec, 0, file.call.type_id, sched.irq_flags & 0xFF, sched.preempt_count & 0xFF,
                     sched.current.pid)
    return rec


def trace_event_buffer_commit(file: EventFile, rec: bytes | bytearray) -> None:
    """trace_event_buffer_commit() → __event_trigger_test_discard(): conditional
    triggers on the record, then soft-disable and the event filter decide whether it is
    discarded, then the triggers deferred until the record is written."""
    flags = file.flags
    tr = file.tr
    rb = tr.buffer
    cpu = file.events.sched.cpu
    # what the reserve found: with recording off the record is in the temp_buffer, for
    # the triggers only, whatever they turn on
    reserved = not (rb.record_disabled or rb.cpu_buffers[cpu].record_disabled)
    tt = 0
    if flags & EVENT_FILE_FL_TRIGGER_COND:
        tt = file.events.triggers.event_triggers_call(file, rec)
        flags = file.flags           # a trigger may have changed them (file->flags re-read)
    if reserved and (not flags & _DISCARD_CHECK or (
            not flags & EVENT_FILE_FL_SOFT_DISABLED and filter_match_preds(file, rec))):
        size = len(rec)
        off = rb.reserve(cpu, size, tr.clock.now())
        if off >= 0:
            rb.cpu_buffers[cpu].page[off:off + size] = rec
            rb.commit(cpu)
    if tt:
        file.events.triggers.event_triggers_post_call(file, tt, rec)


def file_takes_nothing(file: EventFile) -> bool:
    """An event file whose records go nowhere: its instance's recording is switched off
    (tracing_on 0), so trace_event_buffer_reserve() takes none and nothing is committed,
    and it has no trigger to run on the temp_buffer.  Not a filtered file: its record
    goes to the per-CPU trace_buffered_event whatever the buffer's state, and a match
    is committed (trace_taskinfo_save is set, so the next switch saves comms) before
    ring_buffer_write() finds recording off.  The pid filter only decides what would
    be written."""
    return (not file.triggers and not file.flags & EVENT_FILE_FL_FILTERED
            and not file.tr.buffer.record_is_set_on())


def filter_match_preds(file: EventFile, rec: bytes | bytearray) -> bool:
    """The event ``filter`` of a FILTERED file on the record at offset 0."""
    flt = file.filter
    if flt is None or flt.pred is None:
        return True
    return flt.pred(rec, 0)


# ============================================================================ tracepoints
class Tracepoint:
    """A tracepoint: its event call, the event files linked to it and other probes.

    ``enabled`` is kept up to date by the registry so the workload's check is one
    attribute read.  ``files`` is a tuple, replaced (never mutated) when a file is
    linked or unlinked, so a trigger that enables an event while this one fires does not
    disturb the loop over it.
    """

    __slots__ = ("name", "call", "events", "files", "probes", "enabled", "probestub",
                 "pid_fields", "workload_fired")

    def __init__(self, events: TraceEvents, call: EventCall | None, name: str,
                 probestub: int = 0) -> None:
        self.events = events
        self.call = call
        self.name = name
        self.files: tuple[EventFile, ...] = ()
        self.probes: list[tuple[ProbeFn | int, object]] = []
        self.enabled = False
        self.probestub = probestub
        # The ftrace system's events (print, function, ...) are written by the tracers
        # and by trace_marker itself, never fired from the workload's code paths: a
        # trigger on ftrace/print does not make the machine's syscalls visible
        # (``Workload.quiet``: enabled_tps holds only the others).
        self.workload_fired = call is None or not call.ignore_enable
        # event_filter_pid_sched_switch/wakeup_probe_pre(): while these fire, an
        # instance's pid filter also lets a record through when the task switched to
        # or woken is traced; the value indexes of those tasks' pids
        self.pid_fields: tuple[int, ...] = ()
        if call is not None and call.system == "sched":
            names = {"sched_switch": ("prev_pid", "next_pid"), "sched_wakeup": ("pid",),
                     "sched_wakeup_new": ("pid",), "sched_waking": ("pid",)}.get(call.name, ())
            fields = [f.name for f in call.fields]
            self.pid_fields = tuple(fields.index(n) for n in names if n in fields)

    def _update(self) -> None:
        enabled = bool(self.files or self.probes)
        events = self.events
        if enabled != self.enabled and self.workload_fired:
            # the set of live tracepoints: an idle workload skips its work in O(1)
            if enabled:
                events.enabled_tps.add(self)
            else:
                events.enabled_tps.discard(self)
        self.enabled = enabled
        events.attach_gen += 1

    def silent(self) -> bool:
        """Would firing it now leave no mark anywhere?  No probe is registered and each
        linked file takes nothing (``file_takes_nothing``)."""
        return not self.probes and all(map(file_takes_nothing, self.files))

    def link(self, file: EventFile) -> None:
        if file not in self.files:
            self.files = (*self.files, file)
        self._update()

    def unlink(self, file: EventFile) -> None:
        self.files = tuple(f for f in self.files if f is not file)
        self._update()

    # tracepoint_probe_register & co (used by tprobes)
    def register_probe(self, fn: ProbeFn | int, data: object = None) -> int:
        return self.probe_register_may_exist(fn, data)

    def probe_register_may_exist(self, func: ProbeFn | int, data: object) -> int:
        if any(f == func and d is data for f, d in self.probes):
            return -errno.EEXIST
        self.probes.append((func, data))
        self._update()
        return 0

    def probe_unregister(self, func: ProbeFn | int, data: object = None) -> int:
        for i, (f, d) in enumerate(self.probes):
            if f == func and d is data:
                del self.probes[i]
                self._update()
                return 0
        return -errno.ENOENT

    unregister_probe = probe_unregister

    def fire(self, *values: FieldValue) -> None:
        """trace_NAME(args): the probes in priority order: callbacks (default priority)
        first, then the event's own (writes to each instance), then the probe stubs
        tprobes registered with priority 0."""
        if self.probes:
            self.events.call_probes(self, values, False)
        if self.files:
            self.write_event(values)
        if self.probes:
            self.events.call_probes(self, values, True)

    def fire_defaults(self, *values: FieldValue) -> None:
        """Like fire() with missing trailing values taken as 0 / ""."""
        if self.call is None:
            return self.fire(*values)
        dflt = self.call.packer.default_values
        n = len(values)
        vals = values[:len(dflt)] if n >= len(dflt) else (*values, *dflt[n:])
        if self.probes:
            self.fire(*vals)
        elif self.files:
            self.write_event(vals)      # fire() without probes
        return None

    def write_event(self, values: tuple[FieldValue, ...]) -> None:
        """trace_event_raw_event_<call>() for each linked file: the record path, with the
        values packed once (TP_fast_assign) for every file that takes the record."""
        call = self.call
        assert call is not None
        rec: bytearray | None = None
        for file in self.files:
            flags = file.flags
            if flags & _SOFT_CHECK and trace_trigger_soft_disabled(file):
                continue
            # trace_event_buffer_reserve()
            if flags & EVENT_FILE_FL_PID_FILTER and trace_event_ignore_this_pid(file) \
                    and not self._switch_traced(file.inst, values):
                continue
            if rec is None:
                rec = call.packer.pack(values)
                sched = self.events.sched
                _ENTRY.pack_into(rec, 0, call.type_id, sched.irq_flags & 0xFF,
                                 sched.preempt_count & 0xFF, sched.current.pid)
            trace_event_buffer_commit(file, rec)

    def _switch_traced(self, inst: InstanceEvents, values: tuple[FieldValue, ...]) -> bool:
        """The task switched to (or woken) is traced: the pid filter's sched probes make
        this CPU record (see ``pid_fields``)."""
        for i in self.pid_fields:
            if i < len(values) and not inst.ignore_task(int(values[i] or 0)):
                return True
        return False


# ============================================================================ registry
class TraceEvents:
    """``k.events``: the event calls, per-instance files, set_event, tracepoints."""

    triggers: TriggerCommands       # event_command registry (set at boot, after events)

    def __init__(self, kernel: Kernel) -> None:
        # the Tracepoints with a file or probe attached (see Tracepoint._update); a set,
        # not by name: a synthetic event may share a static event's name
        self.enabled_tps: set[Tracepoint] = set()
        # bumped when what is attached to a tracepoint changes (a file linked or
        # unlinked, a probe, a trigger): Workload.quiet() recomputes what is live then
        self.attach_gen = 0
        self._calls_gen = 0  # bumped when calls change: invalidates the set_event index
        self._index_gen = -1
        self._by_system: dict[str, list[EventCall]] = {}
        self._by_name: dict[str, list[EventCall]] = {}
        self._pos: dict[int, int] = {}
        self.kernel = kernel
        self.sched = kernel.sched
        recs, self.header_page, self.header_event = static_event_records()
        self.calls: list[EventCall] = []     # ftrace_events / tr->events order
        self.by_name: dict[tuple[str, str], EventCall] = {}
        self.by_id: dict[int, EventCall] = {}
        self.used_ids: set[int] = set()
        for system, name, type_id, text in recs:
            flags = TRACE_EVENT_FL_TRACEPOINT
            if system == "ftrace":
                flags = TRACE_EVENT_FL_IGNORE_ENABLE
            self._link(EventCall(system, name, type_id, text, flags))
        self.tracepoints: dict[str, Tracepoint] = {}
        self.instances: dict[int, InstanceEvents] = {}
        self.systems_order: list[str] = []
        self._sys_seen: set[str] = set()
        for call in self.calls:
            if call.system not in self._sys_seen:
                self._sys_seen.add(call.system)
                self.systems_order.append(call.system)
        self.static_systems = frozenset(self.systems_order)
        self.on_change: list[Callable[[], None]] = []   # eventfs invalidation hooks
        self.stub_caller: Callable[[int, tuple[FieldValue, ...]], None] | None = None

    # ------------------------------------------------------------- calls
    def _link(self, call: EventCall, head: bool = False) -> None:
        if head:
            self.calls.insert(0, call)
        else:
            self.calls.append(call)
        self._calls_gen += 1
        self.by_name[(call.system, call.name)] = call
        self.by_id[call.type_id] = call
        self.used_ids.add(call.type_id)

    def find_event(self, system: str, name: str) -> EventCall | None:
        return self.by_name.get((system, name))

    def find_by_name(self, name: str) -> EventCall | None:
        for call in self.calls:
            if call.name == name and not call.ignore_enable:
                return call
        return None

    def systems(self) -> list[str]:
        """Systems in eventfs creation order (event_subsystem_dir)."""
        return list(self.systems_order)

    def has_system(self, system: str) -> bool:
        return system in self.systems_order

    def static_system(self, system: str) -> bool:
        """A system with a built-in event: it exists for the life of the kernel."""
        return system in self.static_systems

    def system_calls(self, system: str) -> list[EventCall]:
        return [c for c in self.calls if c.system == system]

    def alloc_id(self) -> int:
        """ida_alloc_range(trace_event_ida, __TRACE_LAST_TYPE, TRACE_EVENT_TYPE_MAX)."""
        i = TRACE_LAST_TYPE
        while i in self.used_ids:
            i += 1
        if i > TRACE_EVENT_TYPE_MAX:
            return 0
        return i

    def add_event_call(self, call: EventCall) -> int:
        """trace_add_event_call(): 0 or -errno; gives ``call.type_id``, registers its
        printer and creates its file in every instance."""
        system, name = call.system, call.name
        if (system, name) in self.by_name:
            return -errno.EEXIST
        type_id = self.alloc_id()
        if not type_id:
            return -errno.ENODEV
        call.type_id = type_id
        call.flags |= TRACE_EVENT_FL_DYNAMIC
        self._link(call, head=True)
        if system not in self._sys_seen:
            self._sys_seen.add(system)
            self.systems_order.append(system)
        self.kernel.trace.output.register(type_id, call.printer or EventPrinter(call))
        self.kernel.workload.syscalls.eventfs_create_dir(name)  # event_create_dir(), top instance
        for inst in self.instances.values():
            inst.files = {call: EventFile(self, call, inst, inst.new_file_flags()), **inst.files}
        self._changed()
        return 0

    def remove_event_call(self, call: EventCall) -> int:
        """trace_remove_event_call(): -EBUSY while enabled anywhere or files are open."""
        if self.by_name.get((call.system, call.name)) is not call:
            return -errno.ENOENT
        if call.refcnt:
            return -errno.EBUSY
        for inst in self.instances.values():
            f = inst.files.get(call)
            if f is None:
                continue
            if f.flags & EVENT_FILE_FL_ENABLED:
                return -errno.EBUSY
            if f.flags & EVENT_FILE_FL_WAS_ENABLED:
                inst.tr.clear_trace = True
        for inst in self.instances.values():
            f = inst.files.pop(call, None)
            if f is not None:
                f.flags |= EVENT_FILE_FL_FREED
        self.calls.remove(call)
        self._calls_gen += 1
        del self.by_name[(call.system, call.name)]
        self.by_id.pop(call.type_id, None)
        self.used_ids.discard(call.type_id)
        self.kernel.trace.output.unregister(call.type_id)
        if not any(c.system == call.system for c in self.calls):
            self._sys_seen.discard(call.system)
            self.systems_order.remove(call.system)
        self._changed()
        return 0

    def _changed(self) -> None:
        for cb in self.on_change:
            cb()

    # ------------------------------------------------------------- instances
    def init_instance(self, tr: TraceArray) -> InstanceEvents:
        """event_trace_add_tracer(): one EventFile per call for this array."""
        inst = InstanceEvents(tr)
        flags = inst.new_file_flags()
        files = inst.files
        for call in self.calls:
            files[call] = EventFile(self, call, inst, flags)
        self.instances[id(tr)] = inst
        tr.events = inst
        return inst

    def remove_instance(self, tr: TraceArray) -> None:
        """event_trace_del_tracer(): disable everything, drop the files."""
        inst = self.instances.get(id(tr))
        if inst is None:
            return
        self.clear_pids(tr, True, True)
        # (a file neither enabled nor in soft mode has nothing to disable)
        live = EVENT_FILE_FL_ENABLED | EVENT_FILE_FL_SOFT_MODE | EVENT_FILE_FL_SOFT_DISABLED
        for f in list(inst.files.values()):
            if f.triggers:
                self.triggers.clear_event_triggers(f)
            if f.flags & live:
                self.event_enable_disable(f, False)
            f.flags |= EVENT_FILE_FL_FREED
        inst.files.clear()
        del self.instances[id(tr)]
        tr.events = None

    def inst(self, tr: TraceArray) -> InstanceEvents:
        inst = self.instances.get(id(tr))
        if inst is None:
            inst = self.init_instance(tr)
        return inst

    def file(self, tr: TraceArray, call: EventCall) -> EventFile | None:
        return self.inst(tr).files.get(call)

    # ------------------------------------------------------------- enable
    def event_enable_disable(self, file: EventFile, enable: bool, soft: bool = False) -> int:
        """__ftrace_event_enable_disable(); returns 0 or -errno."""
        call = file.call
        tr = file.tr
        tracing = self.kernel.trace
        ret = 0
        if not enable:
            if soft:
                file.sm_ref -= 1
                if file.sm_ref > 0:
                    return 0
                file.sm_ref = 0
                disable = file.flags & EVENT_FILE_FL_SOFT_DISABLED
                file.flags &= ~EVENT_FILE_FL_SOFT_MODE
            else:
                disable = not file.flags & EVENT_FILE_FL_SOFT_MODE
            if disable and file.flags & EVENT_FILE_FL_ENABLED:
                file.flags &= ~EVENT_FILE_FL_ENABLED
                if file.flags & EVENT_FILE_FL_RECORDED_CMD:
                    tracing.cmdline_ref -= 1
                    file.flags &= ~EVENT_FILE_FL_RECORDED_CMD
                if file.flags & EVENT_FILE_FL_RECORDED_TGID:
                    tracing.tgid_ref -= 1
                    file.flags &= ~EVENT_FILE_FL_RECORDED_TGID
                self._reg(call, file, False)
            if file.flags & EVENT_FILE_FL_SOFT_MODE:
                file.flags |= EVENT_FILE_FL_SOFT_DISABLED
            else:
                file.flags &= ~EVENT_FILE_FL_SOFT_DISABLED
        else:
            if not soft:
                file.flags &= ~EVENT_FILE_FL_SOFT_DISABLED
            else:
                file.sm_ref += 1
                if file.sm_ref > 1:
                    return 0
                file.flags |= EVENT_FILE_FL_SOFT_MODE
            if not file.flags & EVENT_FILE_FL_ENABLED:
                if soft:
                    file.flags |= EVENT_FILE_FL_SOFT_DISABLED
                cmd = tgid = False
                if tr.flags & ITER_RECORD_CMD:
                    cmd = True
                    tracing.cmdline_ref += 1
                    file.flags |= EVENT_FILE_FL_RECORDED_CMD
                if tr.flags & ITER_RECORD_TGID:
                    tgid = True
                    tracing.tgid_ref += 1
                    file.flags |= EVENT_FILE_FL_RECORDED_TGID
                ret = self._reg(call, file, True)
                if ret:
                    if cmd:
                        tracing.cmdline_ref -= 1
                        file.flags &= ~EVENT_FILE_FL_RECORDED_CMD
                    if tgid:
                        tracing.tgid_ref -= 1
                        file.flags &= ~EVENT_FILE_FL_RECORDED_TGID
                    self.kernel.printk(f"event trace: Could not enable event {call.name}")
                    return ret
                file.flags |= EVENT_FILE_FL_ENABLED | EVENT_FILE_FL_WAS_ENABLED
        return ret

    def _reg(self, call: EventCall, file: EventFile, on: bool) -> int:
        """class->reg(); trace_event_reg() (the default) links the file to the call's
        tracepoint."""
        if call.reg is not None:
            return call.reg(call, TRACE_REG_REGISTER if on else TRACE_REG_UNREGISTER, file)
        tp = self.tracepoint_of(call)
        if on:
            tp.link(file)
        else:
            tp.unlink(file)
        return 0

    def ftrace_event_enable_disable(self, file: EventFile, enable: bool) -> int:
        return self.event_enable_disable(file, enable, False)

    def set_clr_event(self, tr: TraceArray, match: str | None, sub: str | None,
                      event: str | None, set_: bool) -> int:
        """__ftrace_set_clr_event_nolock(): -EINVAL when nothing matched."""
        ret = -errno.EINVAL
        eret = 0
        files = self.inst(tr).files
        for call in self._candidates(match, sub, event):
            file = files.get(call)
            if file is None or call.ignore_enable:
                continue
            if match and match != call.name and match != call.system:
                continue
            if sub and sub != call.system:
                continue
            if event and event != call.name:
                continue
            ret = self.event_enable_disable(file, set_)
            if ret and not eret:
                eret = ret
            ret = eret
        return ret

    def _candidates(self, match: str | None, sub: str | None, event: str | None) -> list[EventCall]:
        """The calls a set_event word can match, from a name/system index (in list
        order), so one word costs O(matches) rather than O(all 1,500 events)."""
        if self._index_gen != self._calls_gen:
            by_system: dict[str, list[EventCall]] = {}
            by_name: dict[str, list[EventCall]] = {}
            for call in self.calls:
                by_system.setdefault(call.system, []).append(call)
                by_name.setdefault(call.name, []).append(call)
            self._by_system, self._by_name = by_system, by_name
            self._pos = {id(c): i for i, c in enumerate(self.calls)}
            self._index_gen = self._calls_gen
        if sub:
            return list(self._by_system.get(sub, ()))
        if event:
            return list(self._by_name.get(event, ()))
        if match:
            both = {id(c): c for c in (*self._by_name.get(match, ()), *self._by_system.get(match, ()))}
            return sorted(both.values(), key=lambda c: self._pos[id(c)])
        return list(self.calls)

    def set_clr_event_str(self, tr: TraceArray, buf: str, set_: bool) -> int:
        """ftrace_set_clr_event(): ``sys:event``, ``sys:``, ``:event``, ``name``."""
        match: str | None = buf
        sub = event = None
        if ":" in buf:
            sub, event = buf.split(":", 1)
            match = None
            if not sub or sub == "*":
                sub = None
            if not event or event == "*":
                event = None
        return self.set_clr_event(tr, match, sub, event, set_)

    def set_event_write_word(self, tr: TraceArray, word: str) -> None:
        """ftrace_event_write() for one parsed word; raises on error."""
        if not word:
            return
        self.kernel.trace.update_buffers()
        set_ = not word.startswith("!")
        ret = self.set_clr_event_str(tr, word[0 if set_ else 1:], set_)
        if ret:
            raise KernelError(-ret)

    def clear_events(self, tr: TraceArray) -> None:
        """ftrace_clear_events() (O_TRUNC on set_event)."""
        for file in list(self.inst(tr).files.values()):
            self.event_enable_disable(file, False)

    def set_event_text(self, tr: TraceArray) -> str:
        """``set_event``: enabled events (soft-disabled ones are not listed)."""
        out = []
        for call, f in self.inst(tr).files.items():
            if f.flags & EVENT_FILE_FL_ENABLED and not f.flags & EVENT_FILE_FL_SOFT_DISABLED:
                out.append(f"{call.system}:{call.name}\n")
        return "".join(out)

    def available_events_text(self) -> str:
        out = []
        for call in self.calls:
            if call.ignore_enable:
                continue
            out.append(f"{call.system}:{call.name}\n")
        return "".join(out)

    def system_enable_text(self, tr: TraceArray, system: str | None) -> str:
        """system_enable_read(): 0, 1 or X (mixed); '?' with no events."""
        state = 0
        for call, f in self.inst(tr).files.items():
            if call.ignore_enable:
                continue
            if system is not None and call.system != system:
                continue
            state |= 1 << (1 if f.flags & EVENT_FILE_FL_ENABLED else 0)
            if state == 3:
                break
        return "?01X"[state] + "\n"

    def system_enable_write(self, tr: TraceArray, system: str | None, val: int) -> None:
        self.kernel.trace.update_buffers()
        if val not in (0, 1):
            raise KernelError(errno.EINVAL)
        ret = self.set_clr_event(tr, None, system, None, bool(val))
        if ret:
            raise KernelError(-ret)

    def event_enable_write(self, file: EventFile, val: int) -> None:
        if val not in (0, 1):
            raise KernelError(errno.EINVAL)
        if file.flags & EVENT_FILE_FL_FREED:
            raise KernelError(errno.ENODEV)
        self.kernel.trace.update_buffers()
        ret = self.event_enable_disable(file, bool(val))
        if ret:
            raise KernelError(-ret)

    # ------------------------------------------------------------- pids
    def pid_list(self, tr: TraceArray, notrace: bool) -> set[int] | None:
        inst = self.inst(tr)
        return inst.filtered_no_pids if notrace else inst.filtered_pids

    def pids_text(self, tr: TraceArray, notrace: bool) -> str:
        pids = self.pid_list(tr, notrace)
        return "".join(f"{p}\n" for p in sorted(pids or ()))

    def clear_pids(self, tr: TraceArray, pids: bool = True, no_pids: bool = False) -> None:
        """ftrace_clear_event_pids()."""
        inst = self.inst(tr)
        if pids:
            inst.filtered_pids = None
        if no_pids:
            inst.filtered_no_pids = None
        self._update_pid_flags(inst)

    def pid_write(self, tr: TraceArray, notrace: bool, data: bytes) -> int:
        """event_pid_write(): trace_pid_write() into a new list (all or nothing).
        Returns the bytes consumed."""
        inst = self.inst(tr)
        self.kernel.trace.update_buffers()
        new, read = trace_pid_write(inst.filtered_no_pids if notrace else inst.filtered_pids, data)
        if notrace:
            inst.filtered_no_pids = new
        else:
            inst.filtered_pids = new
        self._update_pid_flags(inst)
        return read

    @staticmethod
    def _update_pid_flags(inst: InstanceEvents) -> None:
        on = inst.has_pid_lists()
        for f in inst.files.values():
            if on:
                f.flags |= EVENT_FILE_FL_PID_FILTER
            else:
                f.flags &= ~EVENT_FILE_FL_PID_FILTER

    def on_fork(self, parent_pid: int, child_pid: int) -> None:
        """event_filter_pid_sched_process_fork(): with event-fork, children inherit."""
        for inst in self.instances.values():
            if not inst.tr.flags & ITER_EVENT_FORK:
                continue
            for pids in (inst.filtered_pids, inst.filtered_no_pids):
                if pids is not None and parent_pid in pids:
                    pids.add(child_pid)

    def on_exit(self, pid: int) -> None:
        """event_filter_pid_sched_process_exit() on sched_process_free: a freed task
        leaves the lists of the instances with event-fork (trace_event_follow_fork()
        registers it with the fork hook; without it a freed pid stays listed)."""
        for inst in self.instances.values():
            if not inst.tr.flags & ITER_EVENT_FORK:
                continue
            for pids in (inst.filtered_pids, inst.filtered_no_pids):
                if pids is not None:
                    pids.discard(pid)

    # ------------------------------------------------------------- tracepoints
    def tracepoint_of(self, call: EventCall) -> Tracepoint:
        """The tracepoint an event's files link to (trace_event_reg's call->tp); the
        static ones are also found by name, for the workload and tprobes."""
        tp = call.tracepoint
        if tp is None:
            tp = self.tracepoints.get(call.name)
            if tp is None or tp.call is not call:
                tp = Tracepoint(self, call, call.name, self._stub_addr(call.name))
                if call.name not in self.tracepoints and not call.is_dynamic:
                    self.tracepoints[call.name] = tp
            call.tracepoint = tp
        return tp

    def _stub_addr(self, name: str) -> int:
        return self.kernel.kallsyms.addr_of("__probestub_" + name) or 0

    def tracepoint(self, name: str) -> Tracepoint | None:
        """The tracepoint ``name`` (event name), or None when the kernel has none."""
        tp = self.tracepoints.get(name)
        if tp is not None:
            return tp
        call = self.find_by_name(name)
        if call is None or call.system in ("ftrace", "syscalls") and not name.startswith("sys_"):
            return None
        if call.is_dynamic:
            return None
        return self.tracepoint_of(call)

    def find(self, name: str) -> Tracepoint | None:
        """for_each_kernel_tracepoint lookup used by tprobes: one with a probe stub."""
        tp = self.tracepoint(name)
        return tp if tp is not None and tp.probestub else None

    def call_probes(self, tp: Tracepoint, values: tuple[FieldValue, ...], stubs: bool) -> None:
        """Callbacks (``stubs`` False) or probe stubs (True: ``__probestub_*`` addresses,
        run through their ftrace site by ``stub_caller``)."""
        for func, data in list(tp.probes):
            if isinstance(func, int):
                if stubs and self.stub_caller is not None:
                    self.stub_caller(func, values)
            elif not stubs:
                func(data, *values) if data is not None else func(*values)

    # ------------------------------------------------------------- printers
    def register_printers(self) -> None:
        out = self.kernel.trace.output
        for call in self.calls:
            if call.system == "ftrace" or call.is_dynamic:
                continue
            if call.type_id in out.printers:
                continue
            out.register(call.type_id, self.printer_for(call))

    @staticmethod
    def printer_for(call: EventCall) -> Printer:
        if call.system == "syscalls":
            if call.name.startswith("sys_enter_"):
                return SyscallEnterPrinter(call)
            if call.name.startswith("sys_exit_"):
                return SyscallExitPrinter(call)
        return EventPrinter(call)


def boot(kernel: Kernel) -> TraceEvents:
    """event_trace_init + early_event_add_tracer: calls, printers, per-instance files."""
    ev = TraceEvents(kernel)
    ev.register_printers()
    tracing = kernel.trace
    for tr in tracing.all_arrays():
        ev.init_instance(tr)
    tracing.instance_hooks.append((ev.init_instance, ev.remove_instance))
    return ev


def iter_calls(events: TraceEvents, system: str | None = None) -> Iterable[EventCall]:
    for call in events.calls:
        if system is None or call.system == system:
            yield call
