"""Trace events (kernel/trace/trace_events.c, trace_export.c, the TRACE_EVENT output).

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
  packs one record into every enabled instance after the filters;
* one printer per event (the print fmt compiled once, lazily, into Python).

The print fmt compiler understands the C subset the formats use: ``REC->field``,
arithmetic, casts, ternaries, ``__print_flags``/``__print_symbolic`` (and ``_u64``),
``__get_str``, ``__get_dynamic_array(_len)``, ``__print_hex(_str)``, ``__print_array``,
``__print_dynamic_array``, ``__get_bitmask``; printf conversions with flags, width,
precision, length modifiers and the ``%p`` extensions.  A format it cannot compile
prints ``field=value`` pairs instead.
"""

from __future__ import annotations

import errno
import gzip
import re
import struct
from collections.abc import Callable, Iterable
from importlib import resources
from typing import TYPE_CHECKING, Any

from .errors import KernelError
from .trace_output import Printer, TraceIter

if TYPE_CHECKING:
    from .core import Kernel
    from .trace import TraceArray

# ----------------------------------------------------------------------------- flags
# trace_event_call.flags (include/linux/trace_events.h)
TRACE_EVENT_FL_FILTERED = 1 << 0
TRACE_EVENT_FL_CAP_ANY = 1 << 1
TRACE_EVENT_FL_NO_SET_FILTER = 1 << 2
TRACE_EVENT_FL_IGNORE_ENABLE = 1 << 3
TRACE_EVENT_FL_TRACEPOINT = 1 << 4
TRACE_EVENT_FL_DYNAMIC = 1 << 5
TRACE_EVENT_FL_KPROBE = 1 << 6
TRACE_EVENT_FL_UPROBE = 1 << 7
TRACE_EVENT_FL_EPROBE = 1 << 8
TRACE_EVENT_FL_FPROBE = 1 << 9
TRACE_EVENT_FL_CUSTOM = 1 << 10

# trace_event_file.flags
EVENT_FILE_FL_ENABLED = 1 << 0
EVENT_FILE_FL_RECORDED_CMD = 1 << 1
EVENT_FILE_FL_RECORDED_TGID = 1 << 2
EVENT_FILE_FL_FILTERED = 1 << 3
EVENT_FILE_FL_NO_SET_FILTER = 1 << 4
EVENT_FILE_FL_SOFT_MODE = 1 << 5
EVENT_FILE_FL_SOFT_DISABLED = 1 << 6
EVENT_FILE_FL_TRIGGER_MODE = 1 << 7
EVENT_FILE_FL_TRIGGER_COND = 1 << 8
EVENT_FILE_FL_PID_FILTER = 1 << 9
EVENT_FILE_FL_WAS_ENABLED = 1 << 10
EVENT_FILE_FL_FREED = 1 << 11

TRACE_REG_REGISTER = 0
TRACE_REG_UNREGISTER = 1

# filter types (trace_events.h enum filter_type)
FILTER_OTHER = 0
FILTER_STATIC_STRING = 1
FILTER_DYN_STRING = 2
FILTER_RDYN_STRING = 3
FILTER_PTR_STRING = 4
FILTER_TRACE_FN = 5
FILTER_CPUMASK = 6
FILTER_COMM = 7
FILTER_CPU = 8
FILTER_STACKTRACE = 9

EVENT_BUF_SIZE = 127          # trace_events.c: EVENT_BUF_SIZE
PID_MAX_DEFAULT = 0x8000
TRACE_LAST_TYPE = 20          # __TRACE_LAST_TYPE: first id the ida hands out
TRACE_EVENT_TYPE_MAX = (1 << 16) - 1

_ENTRY = struct.Struct("<HBBi")


# ============================================================================ data
def load_event_data() -> tuple[bytes, bytes, bytes, bytes]:
    """The captured formats, available_events, header_page and header_event.

    The one place that reads the packaged data (tracefs_sim/data, from gen_data.py).
    """
    pkg = resources.files("tracefs_sim.data")
    formats = gzip.decompress(pkg.joinpath("events.txt.gz").read_bytes())
    return (formats, pkg.joinpath("available_events.txt").read_bytes(),
            pkg.joinpath("header_page").read_bytes(), pkg.joinpath("header_event").read_bytes())


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


# ============================================================================ fields
def filter_assign_type(type_: str) -> int:
    """trace_events_filter.c filter_assign_type()."""
    if "__data_loc" in type_:
        if "char" in type_:
            return FILTER_DYN_STRING
        if "cpumask_t" in type_:
            return FILTER_CPUMASK
    if "__rel_loc" in type_ and "char" in type_:
        return FILTER_RDYN_STRING
    if "[" in type_ and "char" in type_:
        return FILTER_STATIC_STRING
    if type_ in ("char *", "const char *"):
        return FILTER_PTR_STRING
    return FILTER_OTHER


class Field:
    """``struct ftrace_event_field`` plus what packing/printing need.

    ``type`` is the kernel's internal type string (``char[16]``, ``__data_loc char[]``).
    """

    __slots__ = ("type", "name", "offset", "size", "is_signed", "filter_type", "len",
                 "elem_size", "count", "is_dynamic", "is_rel", "is_char", "is_ptr")

    def __init__(self, type_: str, name: str, offset: int, size: int, is_signed: bool,
                 filter_type: int = FILTER_OTHER, length: int = 0) -> None:
        self.type = type_
        self.name = name
        self.offset = offset
        self.size = size
        self.is_signed = bool(is_signed)
        self.filter_type = filter_assign_type(type_) if filter_type == FILTER_OTHER else filter_type
        self.is_dynamic = type_.startswith("__data_loc")
        self.is_rel = type_.startswith("__rel_loc")
        base = type_.split("[", 1)[0].strip()
        for pre in ("__data_loc ", "__rel_loc "):
            if base.startswith(pre):
                base = base[len(pre):]
        self.is_ptr = base.endswith("*")
        self.is_char = base in ("char", "unsigned char", "signed char", "const char") and not self.is_ptr
        self.len = length
        if "[" in type_ and not (self.is_dynamic or self.is_rel):
            inner = type_[type_.index("[") + 1:type_.index("]")]
            count = int(inner, 0) if inner.strip().isdigit() else 0
            self.count = count or length
            self.elem_size = size // self.count if self.count else 1
        else:
            self.count = 0
            self.elem_size = _type_size(base) if (self.is_dynamic or self.is_rel) else size

    def decl(self) -> str:
        """The ``field:`` declaration as f_show prints it."""
        t = self.type
        br = t.find("[")
        if br < 0 or t.startswith("__data_loc"):
            return f"{t} {self.name}"
        if self.len:
            return f"{t[:br]} {self.name}[{self.len}]"
        return f"{t[:br]} {self.name}[]"

    def __repr__(self) -> str:
        return f"Field({self.type!r}, {self.name!r}, {self.offset}, {self.size}, {self.is_signed})"


_TYPE_SIZES = {
    "char": 1, "unsigned char": 1, "signed char": 1, "u8": 1, "s8": 1, "__u8": 1, "__s8": 1,
    "bool": 1, "_Bool": 1, "short": 2, "unsigned short": 2, "u16": 2, "s16": 2, "__u16": 2,
    "__s16": 2, "__le16": 2, "__be16": 2, "int": 4, "unsigned int": 4, "unsigned": 4, "u32": 4,
    "s32": 4, "__u32": 4, "__s32": 4, "__le32": 4, "__be32": 4, "pid_t": 4, "long": 8,
    "unsigned long": 8, "long long": 8, "unsigned long long": 8, "u64": 8, "s64": 8, "__u64": 8,
    "__s64": 8, "size_t": 8, "ssize_t": 8, "dma_addr_t": 8, "gfp_t": 4, "umode_t": 2,
}


def _type_size(base: str) -> int:
    base = base.replace("const ", "").replace("volatile ", "").strip()
    if base.endswith("*"):
        return 8
    return _TYPE_SIZES.get(base, 1)


COMMON_FIELDS: tuple[Field, ...] = (
    Field("unsigned short", "common_type", 0, 2, False),
    Field("unsigned char", "common_flags", 2, 1, False),
    Field("unsigned char", "common_preempt_count", 3, 1, False),
    Field("int", "common_pid", 4, 4, True),
)
# ftrace_generic_fields: looked up after the event's own fields
GENERIC_FIELDS: tuple[Field, ...] = (
    Field("int", "CPU", 0, 0, True, FILTER_CPU),
    Field("int", "cpu", 0, 0, True, FILTER_CPU),
    Field("int", "common_cpu", 0, 0, True, FILTER_CPU),
    Field("char *", "COMM", 0, 0, True, FILTER_COMM),
    Field("char *", "comm", 0, 0, True, FILTER_COMM),
    Field("char *", "stacktrace", 0, 0, True, FILTER_STACKTRACE),
    Field("char *", "STACKTRACE", 0, 0, True, FILTER_STACKTRACE),
)

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


# ============================================================================ printing
class FmtError(Exception):
    """A print fmt the compiler does not understand."""


class Arr:
    """A run of bytes in the record (array field / dynamic array) with its element size."""

    __slots__ = ("data", "elem", "signed")

    def __init__(self, data: bytes, elem: int, signed: bool = False) -> None:
        self.data = data
        self.elem = elem
        self.signed = signed

    def item(self, i: int) -> int:
        e = self.elem
        if i < 0 or (i + 1) * e > len(self.data):
            return 0
        return int.from_bytes(self.data[i * e:(i + 1) * e], "little", signed=self.signed)

    def cstr(self) -> str:
        raw = self.data
        nul = raw.find(b"\0")
        return (raw if nul < 0 else raw[:nul]).decode("utf-8", "replace")


Ctx = tuple  # (buf, off, size, it)
Ev = Callable[[Ctx], Any]

_TOKEN_RE = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<chr>'(?:[^'\\]|\\.)+')
  | (?P<num>0[xX][0-9a-fA-F]+[uUlL]*|\d+[uUlL]*)
  | (?P<id>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>->|<<|>>|<=|>=|==|!=|&&|\|\||[-+*/%&|^~!<>?:(),{}\[\].])
""", re.X | re.S)

_ESC = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'", "0": "\0", "r": "\r"}


def _unescape(s: str) -> str:
    out = []
    i = 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            out.append(_ESC.get(s[i + 1], s[i + 1]))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def tokenize(text: str) -> list[tuple[str, str]]:
    toks = []
    pos = 0
    n = len(text)
    while pos < n:
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            raise FmtError(f"bad char {text[pos]!r}")
        pos = m.end()
        kind = m.lastgroup
        if kind == "ws":
            continue
        toks.append((kind, m.group(kind)))
    toks.append(("end", ""))
    return toks


_TYPE_WORDS = frozenset(("unsigned", "signed", "long", "int", "short", "char", "void", "const",
                         "struct", "bool", "_Bool", "volatile", "enum", "union")) | frozenset(_TYPE_SIZES)


class _Node:
    """AST node: ('kind', ...)."""


def _mask(v: int, bits: int, signed: bool) -> int:
    v &= (1 << bits) - 1
    if signed and v >> (bits - 1):
        v -= 1 << bits
    return v


def _to_int(v: Any) -> int:
    if isinstance(v, int):
        return v
    if isinstance(v, Arr):
        return 1   # a pointer to data: non-NULL
    if isinstance(v, str):
        return 1
    return int(bool(v))


# enum constants some print fmts use without TRACE_DEFINE_ENUM (values of 6.12 x86_64)
ENUM_VALUES: dict[str, int] = {
    "HRTIMER_MODE_ABS": 0, "HRTIMER_MODE_REL": 1, "HRTIMER_MODE_PINNED": 2,
    "HRTIMER_MODE_SOFT": 4, "HRTIMER_MODE_HARD": 8, "HRTIMER_MODE_ABS_PINNED": 2,
    "HRTIMER_MODE_REL_PINNED": 3, "HRTIMER_MODE_ABS_SOFT": 4, "HRTIMER_MODE_REL_SOFT": 5,
    "HRTIMER_MODE_ABS_PINNED_SOFT": 6, "HRTIMER_MODE_REL_PINNED_SOFT": 7,
    "HRTIMER_MODE_ABS_HARD": 8, "HRTIMER_MODE_REL_HARD": 9, "HRTIMER_MODE_ABS_PINNED_HARD": 10,
    "HRTIMER_MODE_REL_PINNED_HARD": 11,
    # a variable, not an enum: the kmem page events print (struct page *)vmemmap_base + pfn
    "vmemmap_base": 0xFFFFEA0000000000,
}


class FmtCompiler:
    """Compile one print fmt (``"FMT", ARGS...``) into ``render(ctx) -> str``."""

    def __init__(self, call: EventCall, kernel: Kernel | None) -> None:
        self.call = call
        self.kernel = kernel
        self.fields = {f.name: f for f in call.fields}
        self.toks: list[tuple[str, str]] = []
        self.i = 0

    # ----------------------------------------------------------- tokens
    def peek(self, k: int = 0) -> tuple[str, str]:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def take(self) -> tuple[str, str]:
        t = self.toks[self.i]
        self.i += 1
        return t

    def expect(self, val: str) -> None:
        t = self.take()
        if t[1] != val:
            raise FmtError(f"expected {val!r}, got {t[1]!r}")

    # ----------------------------------------------------------- top level
    def compile(self, print_fmt: str) -> Callable[[Ctx], str]:
        self.toks = tokenize(print_fmt)
        self.i = 0
        kind, first = self.take()
        if kind != "str":
            raise FmtError("print fmt does not start with a string")
        fmt = _unescape(first[1:-1])
        while self.peek()[0] == "str":   # adjacent literals
            fmt += _unescape(self.take()[1][1:-1])
        args: list[Ev] = []
        while self.peek()[1] == ",":
            self.take()
            args.append(self.expr())
        if self.peek()[0] != "end":
            raise FmtError(f"trailing {self.peek()[1]!r}")
        return compile_printf(fmt, args, self.kernel)

    # ----------------------------------------------------------- expressions
    _BINPREC = {"||": 1, "&&": 2, "|": 3, "^": 4, "&": 5, "==": 6, "!=": 6, "<": 7, "<=": 7,
                ">": 7, ">=": 7, "<<": 8, ">>": 8, "+": 9, "-": 9, "*": 10, "/": 10, "%": 10}

    def expr(self) -> Ev:
        cond = self.binary(1)
        if self.peek()[1] == "?":
            self.take()
            a = self.expr()
            self.expect(":")
            b = self.expr()
            return lambda c: a(c) if _to_int(cond(c)) else b(c)
        return cond

    def binary(self, minprec: int) -> Ev:
        left = self.unary()
        while True:
            op = self.peek()[1]
            prec = self._BINPREC.get(op) if self.peek()[0] == "op" else None
            if prec is None or prec < minprec:
                return left
            self.take()
            right = self.binary(prec + 1)
            left = _binop(op, left, right)

    def unary(self) -> Ev:
        kind, val = self.peek()
        if kind == "op" and val in ("-", "+", "!", "~", "*", "&"):
            self.take()
            sub = self.unary()
            if val == "-":
                return lambda c: -_to_int(sub(c))
            if val == "+":
                return sub
            if val == "!":
                return lambda c: int(not _to_int(sub(c)))
            if val == "~":
                return lambda c: ~_to_int(sub(c))
            if val == "&":
                return sub        # &REC->field[0] and friends: the data itself
            return lambda c: _deref(sub(c))
        if kind == "op" and val == "(" and self._is_cast():
            self.take()
            tname = []
            while self.peek()[1] != ")":
                tname.append(self.take()[1])
            self.take()
            sub = self.unary()
            return _cast(" ".join(tname), sub)
        if kind == "id" and val == "sizeof":
            self.take()
            self.expect("(")
            depth = 1
            words = []
            while depth:
                t = self.take()[1]
                if t == "(":
                    depth += 1
                elif t == ")":
                    depth -= 1
                    if not depth:
                        break
                words.append(t)
            size = _sizeof(" ".join(words), self.fields)
            return lambda c: size
        return self.postfix()

    def _is_cast(self) -> bool:
        j = 1
        seen = False
        while True:
            kind, val = self.peek(j)
            if kind == "id" and (val in _TYPE_WORDS or (seen and val not in ("REC",))
                                 or val.endswith("_t") or val.startswith("__u") or val.startswith("__s")):
                seen = True
            elif kind == "op" and val == "*" and seen:
                pass
            elif kind == "op" and val == ")" and seen:
                return self.peek(j + 1)[1] not in (")", ",", "?", ":", "") and \
                    self.peek(j + 1)[0] != "end" and \
                    (self.peek(j + 1)[1] not in self._BINPREC or self.peek(j + 1)[1] in ("-", "*", "&"))
            else:
                return False
            j += 1

    def postfix(self) -> Ev:
        node = self.primary()
        while True:
            val = self.peek()[1]
            if val == "[":
                self.take()
                idx = self.expr()
                self.expect("]")
                node = _index(node, idx)
            elif val in (".", "->") and self.peek(1)[0] == "id":
                raise FmtError("member access")
            else:
                return node

    def primary(self) -> Ev:
        kind, val = self.take()
        if kind == "num":
            v = int(val.rstrip("uUlL"), 0)
            return lambda c: v
        if kind == "chr":
            ch = ord(_unescape(val[1:-1])[0])
            return lambda c: ch
        if kind == "str":
            s = _unescape(val[1:-1])
            while self.peek()[0] == "str":
                s += _unescape(self.take()[1][1:-1])
            return lambda c: s
        if kind == "op" and val == "(":
            e = self.expr()
            while self.peek()[1] == ",":   # comma operator
                self.take()
                e = self.expr()
            self.expect(")")
            return e
        if kind == "id":
            if val == "REC":
                self.expect("->")
                name = self.take()[1]
                return self.field_ref(name)
            if self.peek()[1] == "(":
                return self.call_fn(val)
            if val in ("true", "false"):
                b = int(val == "true")
                return lambda c: b
            if val == "NULL":
                return lambda c: 0
            if val in ENUM_VALUES:
                ev = ENUM_VALUES[val]
                return lambda c: ev
            raise FmtError(f"identifier {val}")
        raise FmtError(f"unexpected {val!r}")

    # ----------------------------------------------------------- record access
    def field(self, name: str) -> Field:
        f = self.fields.get(name)
        if f is None:
            for cf in COMMON_FIELDS:
                if cf.name == name:
                    return cf
            raise FmtError(f"no field {name}")
        return f

    def field_ref(self, name: str) -> Ev:
        return field_reader(self.field(name))

    def field_arg(self) -> Field:
        """The argument of __get_str(field) & co: a bare field name."""
        kind, name = self.take()
        if kind != "id":
            raise FmtError("field name expected")
        return self.field(name)

    def call_fn(self, name: str) -> Ev:
        self.expect("(")
        if name in ("__get_str", "__get_rel_str"):
            f = self.field_arg()
            self.expect(")")
            return _dyn_str(f)
        if name in ("__get_dynamic_array", "__get_rel_dynamic_array", "__get_bitmask",
                    "__get_rel_bitmask", "__get_cpumask", "__get_rel_cpumask", "__get_sockaddr",
                    "__get_rel_sockaddr"):
            f = self.field_arg()
            self.expect(")")
            get = _dyn_arr(f)
            if "mask" in name:
                return lambda c: _bitmask_str(get(c))
            return get
        if name in ("__get_dynamic_array_len", "__get_rel_dynamic_array_len",
                    "__get_sockaddr_len", "__get_rel_sockaddr_len"):
            f = self.field_arg()
            self.expect(")")
            off = f.offset
            return lambda c: _U32.unpack_from(c[0], c[1] + off)[0] >> 16
        if name == "__print_dynamic_array":
            f = self.field_arg()
            self.expect(",")
            el = self.expr()
            self.expect(")")
            get = _dyn_arr(f)
            return lambda c: _print_array(get(c).data, len(get(c).data) // (el(c) or 1), el(c))
        args = self.call_args()
        return _builtin(name, args)

    def call_args(self) -> list[Any]:
        args: list[Any] = []
        if self.peek()[1] == ")":
            self.take()
            return args
        while True:
            if self.peek()[1] == "{":
                self.take()
                items = []
                while self.peek()[1] != "}":
                    items.append(self.expr())
                    if self.peek()[1] == ",":
                        self.take()
                self.take()
                args.append(("list", items))
            else:
                args.append(self.expr())
            t = self.take()[1]
            if t == ")":
                return args
            if t != ",":
                raise FmtError(f"bad call args at {t!r}")


_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_INT_FMT = {(1, False): "B", (1, True): "b", (2, False): "H", (2, True): "h", (4, False): "I",
            (4, True): "i", (8, False): "Q", (8, True): "q"}


def field_reader(f: Field) -> Ev:
    off = f.offset
    if f.is_dynamic or f.is_rel:
        return lambda c: _U32.unpack_from(c[0], c[1] + off)[0]
    if f.count:
        size, elem, signed = f.size, f.elem_size, f.is_signed
        if f.is_char:
            def rd_str(c: Ctx) -> Any:
                raw = bytes(c[0][c[1] + off:c[1] + off + size])
                return Arr(raw, 1, signed)
            return rd_str
        return lambda c: Arr(bytes(c[0][c[1] + off:c[1] + off + size]), elem, signed)
    code = _INT_FMT.get((f.size, f.is_signed))
    if code is None:
        size = f.size
        return lambda c: int.from_bytes(c[0][c[1] + off:c[1] + off + size], "little")
    st = struct.Struct("<" + code)
    return lambda c: st.unpack_from(c[0], c[1] + off)[0]


def _dyn_loc(c: Ctx, f: Field) -> tuple[int, int]:
    item = _U32.unpack_from(c[0], c[1] + f.offset)[0]
    start, length = item & 0xFFFF, item >> 16
    if f.is_rel:
        start += f.offset + 4
    return start, length


def _dyn_arr(f: Field) -> Ev:
    def get(c: Ctx) -> Arr:
        start, length = _dyn_loc(c, f)
        return Arr(bytes(c[0][c[1] + start:c[1] + start + length]), f.elem_size or 1)
    return get


def _dyn_str(f: Field) -> Ev:
    def get(c: Ctx) -> str:
        start, length = _dyn_loc(c, f)
        raw = bytes(c[0][c[1] + start:c[1] + start + length])
        nul = raw.find(b"\0")
        return (raw if nul < 0 else raw[:nul]).decode("utf-8", "replace")
    return get


def _bitmask_str(a: Arr) -> str:
    """trace_seq_bitmask: ``%*pb`` — 32-bit hex chunks, most significant first."""
    data = a.data
    nbits = len(data) * 8
    val = int.from_bytes(data, "little")
    chunks = []
    for i in range((nbits + 31) // 32):
        chunks.append((val >> (32 * i)) & 0xFFFFFFFF)
    chunks.reverse()
    if not chunks:
        return ""
    first_bits = nbits - 32 * (len(chunks) - 1)
    out = [f"{chunks[0]:0{(first_bits + 3) // 4}x}"] + [f"{x:08x}" for x in chunks[1:]]
    return ",".join(out)


def _deref(v: Any) -> Any:
    if isinstance(v, Arr):
        return v.item(0)
    raise FmtError("deref")


def _index(node: Ev, idx: Ev) -> Ev:
    def get(c: Ctx) -> Any:
        a = node(c)
        i = _to_int(idx(c))
        if isinstance(a, Arr):
            return a.item(i)
        if isinstance(a, str):
            return ord(a[i]) if i < len(a) else 0
        return 0
    return get


def _cdiv(a: int, b: int) -> int:
    if b == 0:
        return 0
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _cmod(a: int, b: int) -> int:
    if b == 0:
        return 0
    return a - b * _cdiv(a, b)


def _binop(op: str, a: Ev, b: Ev) -> Ev:
    ti = _to_int
    if op == "&&":
        return lambda c: int(bool(ti(a(c))) and bool(ti(b(c))))
    if op == "||":
        return lambda c: int(bool(ti(a(c))) or bool(ti(b(c))))
    fn: Callable[[int, int], int] = {
        "|": lambda x, y: x | y, "^": lambda x, y: x ^ y, "&": lambda x, y: x & y,
        "==": lambda x, y: int(x == y), "!=": lambda x, y: int(x != y),
        "<": lambda x, y: int(x < y), "<=": lambda x, y: int(x <= y),
        ">": lambda x, y: int(x > y), ">=": lambda x, y: int(x >= y),
        "<<": lambda x, y: (x << y) & 0xFFFFFFFFFFFFFFFF if 0 <= y < 64 else 0,
        ">>": lambda x, y: x >> y if y >= 0 else 0,
        "+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y,
        "/": _cdiv, "%": _cmod,
    }[op]
    if op in ("==", "!="):
        def cmp(c: Ctx) -> int:
            x, y = a(c), b(c)
            if isinstance(x, str) or isinstance(y, str):
                return int((x == y) == (op == "=="))
            return fn(ti(x), ti(y))
        return cmp
    return lambda c: fn(ti(a(c)), ti(b(c)))


def _ctype_bits(tname: str) -> tuple[int, bool] | None:
    t = tname.replace("const ", "").replace("volatile ", "").strip()
    if t.endswith("*"):
        return 64, False
    if t in ("unsigned", "unsigned int", "u32", "__u32", "uint32_t", "gfp_t", "unsigned int"):
        return 32, False
    if t in ("int", "signed", "signed int", "s32", "__s32", "int32_t", "pid_t"):
        return 32, True
    if t in ("long", "long long", "signed long", "s64", "__s64", "int64_t", "ssize_t", "long int"):
        return 64, True
    if t in ("unsigned long", "unsigned long long", "u64", "__u64", "uint64_t", "size_t",
             "unsigned long int"):
        return 64, False
    if t in ("short", "signed short", "s16", "__s16"):
        return 16, True
    if t in ("unsigned short", "u16", "__u16", "umode_t"):
        return 16, False
    if t in ("char", "signed char", "s8", "__s8"):
        return 8, True
    if t in ("unsigned char", "u8", "__u8", "bool", "_Bool"):
        return 8, False
    return None


def _cast(tname: str, sub: Ev) -> Ev:
    bits = _ctype_bits(tname)
    if bits is None:
        return sub
    nb, signed = bits
    if tname.replace("const ", "").strip() in ("bool", "_Bool"):
        return lambda c: int(bool(_to_int(sub(c))))

    def cast(c: Ctx) -> Any:
        v = sub(c)
        if isinstance(v, (str, Arr)):
            return v
        return _mask(v, nb, signed)
    return cast


def _sizeof(tname: str, fields: dict[str, Field]) -> int:
    if tname.startswith("REC->") or tname.startswith("REC ->"):
        name = tname.split(">", 1)[1].strip()
        if name in fields:
            return fields[name].size
    bits = _ctype_bits(tname)
    if bits is not None:
        return bits[0] // 8
    raise FmtError(f"sizeof({tname})")


def _sym_list(arg: Any) -> list[tuple[int, str]]:
    out = []
    for item in arg[1]:
        # each item is a {mask, "name"} pair: parsed as a nested list
        out.append(item)
    return out


def _pairs(args: list[Any]) -> list[tuple[Ev, Ev]]:
    pairs = []
    for a in args:
        if not (isinstance(a, tuple) and a[0] == "list" and len(a[1]) == 2):
            raise FmtError("flag/symbol list")
        pairs.append((a[1][0], a[1][1]))
    return pairs


def _const_pairs(args: list[Any]) -> list[tuple[int, str]]:
    c: Ctx = (b"", 0, 0, None)
    return [(int(m(c)), str(s(c))) for m, s in _pairs(args)]


def print_flags(flags: int, delim: str, table: list[tuple[int, str]]) -> str:
    """trace_print_flags_seq()."""
    out = []
    flags &= 0xFFFFFFFFFFFFFFFF
    for mask, name in table:
        if not flags:
            break
        if (flags & mask) != mask:
            continue
        flags &= ~mask
        out.append(name)
    text = delim.join(out)
    if flags:
        text += (delim if out else "") + f"0x{flags:x}"
    return text


def print_symbolic(val: int, table: list[tuple[int, str]]) -> str:
    """trace_print_symbols_seq()."""
    val &= 0xFFFFFFFFFFFFFFFF
    for mask, name in table:
        if val == mask & 0xFFFFFFFFFFFFFFFF:
            return name
    return f"0x{val:x}"


def _hex_seq(data: bytes, concatenate: bool) -> str:
    """trace_print_hex_seq(): %*ph per 16 bytes, rows separated by a space."""
    parts = []
    for i in range(0, len(data), 16):
        chunk = data[i:i + 16]
        parts.append(chunk.hex() if concatenate else " ".join(f"{b:02x}" for b in chunk))
    return ("" if concatenate else " ").join(parts)


def _print_array(data: bytes, count: int, el: int) -> str:
    """trace_print_array_seq()."""
    out = []
    data = data[:count * el] if el in (1, 2, 4, 8) else data[:count]
    if el not in (1, 2, 4, 8):
        return "{" + ",".join(f"BAD SIZE:{el} 0x{b:x}" for b in data[:1]) + "}"
    for i in range(0, len(data) - el + 1, el):
        v = int.from_bytes(data[i:i + el], "little")
        out.append(f"0x{v:x}")
    return "{" + ",".join(out) + "}"


def _as_bytes(v: Any) -> bytes:
    if isinstance(v, Arr):
        return v.data
    if isinstance(v, str):
        return v.encode("latin-1", "replace")
    return b""


def _builtin(name: str, args: list[Any]) -> Ev:
    if name in ("__print_flags", "__print_flags_u64"):
        val, delim = args[0], args[1]
        table = _const_pairs(args[2:])
        return lambda c: print_flags(_to_int(val(c)), str(delim(c)), table)
    if name in ("__print_symbolic", "__print_symbolic_u64"):
        val = args[0]
        table = _const_pairs(args[1:])
        return lambda c: print_symbolic(_to_int(val(c)), table)
    if name in ("__print_hex", "__print_hex_str"):
        buf, ln = args[0], args[1]
        concat = name == "__print_hex_str"
        return lambda c: _hex_seq(_as_bytes(buf(c))[:max(0, _to_int(ln(c)))], concat)
    if name == "__print_array":
        arr, cnt, el = args
        return lambda c: _print_array(_as_bytes(arr(c)), _to_int(cnt(c)), _to_int(el(c)))
    if name == "__print_ns_to_secs":
        v = args[0]
        return lambda c: str(_to_int(v(c)) // 1_000_000_000)
    if name == "__print_ns_without_secs":
        v = args[0]
        return lambda c: str(_to_int(v(c)) % 1_000_000_000)
    if name in ("is_compat_task", "in_compat_syscall"):
        return lambda c: 0
    if name in ("MAJOR", "MINOR") and len(args) == 1:
        v = args[0]
        if name == "MAJOR":
            return lambda c: _to_int(v(c)) >> 20
        return lambda c: _to_int(v(c)) & ((1 << 20) - 1)
    if name in ("jiffies_to_msecs", "ktime_to_ns", "ktime_to_us") and len(args) == 1:
        v = args[0]
        if name == "jiffies_to_msecs":
            return lambda c: _to_int(v(c)) * 4   # HZ=250
        if name == "ktime_to_us":
            return lambda c: _to_int(v(c)) // 1000
        return v
    raise FmtError(f"function {name}")


# --------------------------------------------------------------------- printf
_SPEC_RE = re.compile(r"%([-+ #0]*)(\*|\d+)?(?:\.(\*|\d+))?(hh|h|ll|l|z|t|j|L)?([diouxXcspn%])")


def hashed_ptr(addr: int) -> str:
    """Plain ``%p``: the kernel prints a hashed id; keep it stable per address."""
    if not addr:
        return "0000000000000000"
    x = (addr * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x ^= x >> 29
    return f"{x & 0xFFFFFFFF:016x}"


def _int_conv(v: Any, conv: str, length: str | None) -> int:
    iv = _to_int(v)
    bits = 64 if length in ("l", "ll", "z", "t", "j", "L") else 16 if length == "h" else \
        8 if length == "hh" else 32
    return _mask(iv, bits, conv in "di")


def _pad(s: str, flags: str, width: int) -> str:
    if width and len(s) < width:
        return s.ljust(width) if "-" in flags else s.rjust(width)
    return s


def format_int(v: int, conv: str, flags: str, width: int, prec: int | None) -> str:
    """C printf of one integer conversion (value already masked/sign-extended)."""
    neg = v < 0
    a = -v if neg else v
    if conv in "di" or conv == "u":
        digits = str(a)
    elif conv == "o":
        digits = f"{a:o}"
    elif conv == "x":
        digits = f"{a:x}"
    else:
        digits = f"{a:X}"
    if prec is not None:
        if prec == 0 and a == 0:
            digits = ""
        digits = digits.rjust(prec, "0")
    prefix = ""
    if neg:
        prefix = "-"
    elif conv in "di" and "+" in flags:
        prefix = "+"
    elif conv in "di" and " " in flags:
        prefix = " "
    if "#" in flags and a:
        if conv == "x":
            prefix += "0x"
        elif conv == "X":
            prefix += "0X"
        elif conv == "o" and not digits.startswith("0"):
            digits = "0" + digits
    if "0" in flags and "-" not in flags and prec is None and width:
        digits = digits.rjust(width - len(prefix), "0")
    return _pad(prefix + digits, flags, width)


def compile_printf(fmt: str, args: list[Ev], kernel: Kernel | None) -> Callable[[Ctx], str]:
    """Split ``fmt`` into literal text and conversions bound to ``args``."""
    parts: list[Any] = []
    pos = 0
    ai = 0

    def next_arg() -> Ev:
        nonlocal ai
        if ai >= len(args):
            raise FmtError("too few args")
        a = args[ai]
        ai += 1
        return a

    while True:
        j = fmt.find("%", pos)
        if j < 0:
            if pos < len(fmt):
                parts.append(fmt[pos:])
            break
        if j > pos:
            parts.append(fmt[pos:j])
        m = _SPEC_RE.match(fmt, j)
        if m is None:
            raise FmtError(f"bad conversion at {fmt[j:j + 4]!r}")
        flags, width, prec, length, conv = m.groups()
        end = m.end()
        if conv == "%":
            parts.append("%")
            pos = end
            continue
        wfn = next_arg() if width == "*" else None
        pfn = next_arg() if prec == "*" else None
        wconst = int(width) if width and width != "*" else 0
        pconst = int(prec) if prec and prec != "*" else None
        if prec == "" :
            pconst = 0
        ext = ""
        if conv == "p":
            k = end
            while k < len(fmt) and fmt[k].isalnum():
                k += 1
            ext = fmt[end:k]
            end = k
        arg = next_arg()
        parts.append(_make_conv(conv, flags, wconst, wfn, pconst, pfn, length, ext, arg, kernel))
        pos = end
    if ai != len(args):
        raise FmtError("too many args")
    if all(isinstance(p, str) for p in parts):
        text = "".join(parts)
        return lambda c: text

    def render(c: Ctx) -> str:
        return "".join(p if isinstance(p, str) else p(c) for p in parts)
    return render


def _make_conv(conv: str, flags: str, wconst: int, wfn: Ev | None, pconst: int | None,
               pfn: Ev | None, length: str | None, ext: str, arg: Ev,
               kernel: Kernel | None) -> Ev:
    def width(c: Ctx) -> tuple[str, int]:
        if wfn is None:
            return flags, wconst
        w = _mask(_to_int(wfn(c)), 32, True)
        return (flags + "-", -w) if w < 0 else (flags, w)

    def precision(c: Ctx) -> int | None:
        if pfn is None:
            return pconst
        p = _mask(_to_int(pfn(c)), 32, True)
        return None if p < 0 else p

    if conv in "diouxX":
        def f_int(c: Ctx) -> str:
            fl, w = width(c)
            return format_int(_int_conv(arg(c), conv, length), conv, fl, w, precision(c))
        return f_int
    if conv == "c":
        def f_chr(c: Ctx) -> str:
            fl, w = width(c)
            return _pad(chr(_to_int(arg(c)) & 0xFF), fl, w)
        return f_chr
    if conv == "s":
        def f_str(c: Ctx) -> str:
            v = arg(c)
            if isinstance(v, Arr):
                s = v.cstr()
            elif isinstance(v, str):
                s = v
            elif not v:
                s = "(null)"
            else:
                s = "(efault)"
            p = precision(c)
            if p is not None:
                s = s[:p]
            fl, w = width(c)
            return _pad(s, fl, w)
        return f_str
    if conv == "p":
        return _make_ptr(ext, flags, width, arg, kernel, wfn)
    raise FmtError(f"conversion %{conv}")


def _make_ptr(ext: str, flags: str, width: Callable[[Ctx], tuple[str, int]], arg: Ev,
              kernel: Kernel | None, wfn: Ev | None) -> Ev:
    ks = kernel.kallsyms if kernel is not None else None
    e0 = ext[:1]
    if e0 in ("s", "f"):
        def f_sym(c: Ctx) -> str:
            a = _to_int(arg(c)) & 0xFFFFFFFFFFFFFFFF
            s = ks.format_ps(a) if ks is not None else f"0x{a:x}"
            fl, w = width(c)
            return _pad(s, fl, w)
        return f_sym
    if e0 in ("S", "B", "F"):
        def f_symoff(c: Ctx) -> str:
            a = _to_int(arg(c)) & 0xFFFFFFFFFFFFFFFF
            s = ks.format_pS(a) if ks is not None else f"0x{a:x}"
            fl, w = width(c)
            return _pad(s, fl, w)
        return f_symoff
    if e0 == "x":
        def f_raw(c: Ctx) -> str:
            a = _to_int(arg(c)) & 0xFFFFFFFFFFFFFFFF
            fl, w = width(c)
            return _pad(f"{a:016x}", fl, w)
        return f_raw
    if e0 == "h":
        sep = {"C": ":", "D": "-", "N": ""}.get(ext[1:2], " ")

        def f_hex(c: Ctx) -> str:
            n = _mask(_to_int(wfn(c)), 32, True) if wfn is not None else 1
            data = _as_bytes(arg(c))[:max(0, min(n, 64))]
            return sep.join(f"{b:02x}" for b in data)
        return f_hex
    if ext[:2] in ("I4", "i4"):
        dot = "." if ext[0] == "I" else ""

        def f_ip4(c: Ctx) -> str:
            data = _as_bytes(arg(c))[:4]
            s = ".".join(str(b) for b in data) if dot else ".".join(f"{b:03d}" for b in data)
            fl, w = width(c)
            return _pad(s, fl, w)
        return f_ip4
    if ext[:2] in ("I6", "i6"):
        def f_ip6(c: Ctx) -> str:
            data = _as_bytes(arg(c))[:16]
            words = [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]
            if ext[:3] == "I6c":
                import ipaddress
                try:
                    return str(ipaddress.IPv6Address(data))
                except ValueError:
                    pass
            sep = ":" if ext[0] == "I" else ""
            return sep.join(f"{x:04x}" for x in words)
        return f_ip6
    if e0 in ("M", "m"):
        sep = "" if e0 == "m" else ("-" if ext[1:2] == "F" else ":")

        def f_mac(c: Ctx) -> str:
            return sep.join(f"{b:02x}" for b in _as_bytes(arg(c))[:6])
        return f_mac
    if e0 == "U":
        def f_uuid(c: Ctx) -> str:
            d = _as_bytes(arg(c))[:16].hex()
            return f"{d[:8]}-{d[8:12]}-{d[12:16]}-{d[16:20]}-{d[20:32]}"
        return f_uuid
    if e0 == "K":
        return lambda c: _pad("0000000000000000", *width(c))

    def f_plain(c: Ctx) -> str:
        a = _to_int(arg(c)) & 0xFFFFFFFFFFFFFFFF
        fl, w = width(c)
        return _pad(hashed_ptr(a) if a else "(null)", fl, w)
    return f_plain


# ============================================================================ calls
class EventCall:
    """``struct trace_event_call`` (with its class): one event of ``available_events``.

    Static events keep the captured format text and id; a dynamic event wraps the
    call object its subsystem passed to ``add_event_call`` (``ext``).
    """

    def __init__(self, system: str, name: str, type_id: int, fmt_text: bytes | None = None,
                 flags: int = TRACE_EVENT_FL_TRACEPOINT, ext: Any = None) -> None:
        self.system = system
        self.name = name
        self.type_id = type_id
        self.flags = flags
        self.ext = ext
        self._fmt_text = fmt_text
        self._fields: list[Field] | None = None
        self._print_fmt: str | None = None
        self._packer: Packer | None = None
        self._render: Callable[[Ctx], str] | None = None
        self.refcnt = 0
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
        return self.ext is not None

    # ------------------------------------------------------------- format
    def _parse(self) -> None:
        if self.ext is not None:
            fields_fn = getattr(self.ext, "fields", None)
            raw = fields_fn() if callable(fields_fn) else (fields_fn or [])
            self._fields = [f if isinstance(f, Field) else
                            Field(f.type, f.name, f.offset, f.size, f.is_signed,
                                  getattr(f, "filter_type", FILTER_OTHER), getattr(f, "len", 0))
                            for f in raw]
            self._print_fmt = getattr(self.ext, "print_fmt", "") or ""
            return
        text = (self._fmt_text or b"").decode("utf-8", "surrogateescape")
        self._fields, self._print_fmt = parse_format(text)

    @property
    def fields(self) -> list[Field]:
        """The event's own fields (trace_get_fields), in definition order."""
        if self.ext is not None or self._fields is None:
            self._parse()
        assert self._fields is not None
        return self._fields

    @property
    def print_fmt(self) -> str:
        if self.ext is not None or self._print_fmt is None:
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
        if self.ext is None and self._fmt_text is not None:
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
        if self._packer is None:
            self._packer = Packer(self.fields)
        return self._packer

    def render(self, buf: bytes | bytearray, off: int, size: int, it: Any, kernel: Kernel | None) -> str:
        """The text of the print fmt for the record at ``off`` (no name, no newline)."""
        if self._render is None:
            self._render = self._compile(kernel)
        return self._render((buf, off, size, it))

    def _compile(self, kernel: Kernel | None) -> Callable[[Ctx], str]:
        try:
            return FmtCompiler(self, kernel).compile(self.print_fmt)
        except (FmtError, IndexError, ValueError, KeyError):
            return self._fields_printer()

    def _fields_printer(self) -> Callable[[Ctx], str]:
        """Fallback for an exotic print fmt: ``field=value`` for each field."""
        readers = []
        for f in self.fields:
            if f.is_dynamic and f.is_char:
                readers.append((f.name, _dyn_str(f)))
            elif f.is_dynamic or f.is_rel:
                readers.append((f.name, _dyn_arr(f)))
            else:
                readers.append((f.name, field_reader(f)))

        def show(c: Ctx) -> str:
            out = []
            for name, rd in readers:
                v = rd(c)
                if isinstance(v, Arr):
                    v = v.cstr() if v.elem == 1 else _print_array(v.data, len(v.data) // v.elem, v.elem)
                out.append(f"{name}={v}")
            return " ".join(out)
        return show

    def format_line(self, buf: bytes | bytearray, off: int, size: int, kernel: Kernel | None = None) -> str:
        """The trace line body: ``name: <print fmt output>`` (no newline)."""
        return f"{self.name}: {self.render(buf, off, size, None, kernel)}"

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
        self.ops: list[tuple[Field, Callable[[bytearray, int, Any], None] | None]] = []
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
    def _op(f: Field) -> Callable[[bytearray, int, Any], None] | None:
        off = f.offset
        if f.is_dynamic or f.is_rel:
            return None
        if f.count:
            size, elem, signed = f.size, f.elem_size, f.is_signed
            if f.is_char:
                def put_chars(b: bytearray, base: int, v: Any) -> None:
                    raw = v.encode("utf-8", "replace") if isinstance(v, str) else bytes(v or b"")
                    raw = raw[:size - 1] if isinstance(v, str) else raw[:size]
                    b[base + off:base + off + len(raw)] = raw
                return put_chars
            code = _INT_FMT.get((elem, signed))
            st = struct.Struct("<" + code) if code else None

            def put_arr(b: bytearray, base: int, v: Any) -> None:
                if isinstance(v, (bytes, bytearray)):
                    b[base + off:base + off + min(len(v), size)] = v[:size]
                    return
                for i, x in enumerate(list(v or ())[:size // elem]):
                    if st is not None:
                        st.pack_into(b, base + off + i * elem, _mask(int(x), elem * 8, signed))
            return put_arr
        code = _INT_FMT.get((f.size, f.is_signed))
        if code is None:
            size = f.size

            def put_raw(b: bytearray, base: int, v: Any) -> None:
                b[base + off:base + off + size] = (int(v) & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
            return put_raw
        st = struct.Struct("<" + code)
        bits, signed = f.size * 8, f.is_signed

        def put_int(b: bytearray, base: int, v: Any) -> None:
            st.pack_into(b, base + off, _mask(int(v), bits, signed))
        return put_int

    def pack(self, values: tuple[Any, ...]) -> bytearray:
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

    def pack_fields(self, values: tuple[Any, ...]) -> bytearray:
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
                    data = b"".join(_mask(int(x), es * 8, False).to_bytes(es, "little") for x in v)
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

    def defaults(self) -> list[Any]:
        out: list[Any] = []
        for f in self.fields:
            if f.is_char and (f.count or f.is_dynamic or f.is_rel):
                out.append("")
            elif f.is_dynamic or f.is_rel:
                out.append(b"")
            else:
                out.append(0)
        return out


class EventPrinter(Printer):
    """The trace_event_functions of a TRACE_EVENT: ``name: <print fmt>``."""

    def __init__(self, call: EventCall) -> None:
        self.call = call

    def trace(self, it: TraceIter) -> str:
        call = self.call
        return f"{call.name}: {call.render(it.buf, it.off, it.size, it, it.kernel)}\n"

    def raw(self, it: TraceIter) -> str:
        return ""   # trace_nop_print

    def hex(self, it: TraceIter) -> str:
        return ""

    def binary(self, it: TraceIter) -> bytes:
        return b""


class SyscallEnterPrinter(Printer):
    """trace_syscalls.c print_syscall_enter(): ``sys_NAME(arg: hex, ...)``."""

    def __init__(self, call: EventCall) -> None:
        self.call = call
        self.sys_name = "sys_" + call.name[len("sys_enter_"):]

    def trace(self, it: TraceIter) -> str:
        from .trace import ITER_VERBOSE

        args = []
        verbose = it.flags & ITER_VERBOSE
        for f in self.call.fields[1:]:
            v = _U64.unpack_from(it.buf, it.off + f.offset)[0] if f.size == 8 else \
                _mask(int.from_bytes(it.buf[it.off + f.offset:it.off + f.offset + f.size], "little"), 64, False)
            t = f"{f.type} " if verbose else ""
            args.append(f"{t}{f.name}: {v:x}")
        return f"{self.sys_name}(" + ", ".join(args) + ")\n"

    raw = EventPrinter.raw
    hex = EventPrinter.hex
    binary = EventPrinter.binary


class SyscallExitPrinter(Printer):
    """print_syscall_exit(): ``sys_NAME -> 0xRET``."""

    def __init__(self, call: EventCall) -> None:
        self.call = call
        self.sys_name = "sys_" + call.name[len("sys_exit_"):]

    def trace(self, it: TraceIter) -> str:
        ret = _U64.unpack_from(it.buf, it.off + 16)[0]
        return f"{self.sys_name} -> 0x{ret:x}\n"

    raw = EventPrinter.raw
    hex = EventPrinter.hex
    binary = EventPrinter.binary


# ============================================================================ files
class EventFile:
    """``struct trace_event_file``: one event in one trace array."""

    __slots__ = ("call", "tr", "flags", "sm_ref", "tm_ref", "filter", "triggers", "events",
                 "__weakref__")

    def __init__(self, events: TraceEvents, call: EventCall, tr: TraceArray) -> None:
        self.events = events
        self.call = call
        self.tr = tr
        self.flags = 0
        self.sm_ref = 0
        self.tm_ref = 0
        self.filter: Any = None      # trace_events_filter.EventFilter (text + predicate)
        self.triggers: list[Any] = []

    @property
    def enabled(self) -> bool:
        return bool(self.flags & EVENT_FILE_FL_ENABLED)

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

    def passes(self, buf: bytes | bytearray, off: int) -> bool:
        flt = self.filter
        if flt is None or not self.flags & EVENT_FILE_FL_FILTERED or flt.pred is None:
            return True
        return flt.pred(buf, off)

    def commit(self, cpu: int, off: int, size: int) -> None:
        """For writers that reserved already (probe events): filter, commit, triggers."""
        tr = self.tr
        buf = tr.event_buf(cpu)
        ok = self.passes(buf, off)
        rec = bytes(buf[off:off + size]) if self.triggers else b""
        if ok:
            tr.event_commit(cpu)
        else:
            discard = getattr(tr.buffer, "discard", None)
            if discard is not None:
                discard(cpu)
            else:
                tr.event_commit(cpu)
        if self.triggers:
            self.events.run_triggers(self, rec, 0, not ok)

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


# ============================================================================ tracepoints
class Tracepoint:
    """A static tracepoint: its event call, the linked event files and probes.

    ``enabled`` is kept up to date by the registry so the workload's check is one
    attribute read.
    """

    __slots__ = ("name", "call", "events", "files", "probes", "enabled", "probestub")

    def __init__(self, events: TraceEvents, call: EventCall | None, name: str,
                 probestub: int = 0) -> None:
        self.events = events
        self.call = call
        self.name = name
        self.files: list[EventFile] = []
        self.probes: list[tuple[Any, Any]] = []
        self.enabled = False
        self.probestub = probestub

    def _update(self) -> None:
        enabled = bool(self.files or self.probes)
        if enabled != self.enabled:
            # a count of live tracepoints lets an idle workload skip its work in O(1)
            self.events.nr_enabled_tps += 1 if enabled else -1
        self.enabled = enabled

    # tracepoint_probe_register & co (used by tprobes)
    def register_probe(self, fn: Any, data: Any = None) -> int:
        return self.probe_register_may_exist(fn, data)

    def probe_register_may_exist(self, func: Any, data: Any) -> int:
        if any(f == func and d is data for f, d in self.probes):
            return -errno.EEXIST
        self.probes.append((func, data))
        self._update()
        return 0

    def probe_unregister(self, func: Any, data: Any = None) -> int:
        for i, (f, d) in enumerate(self.probes):
            if f == func and d is data:
                del self.probes[i]
                self._update()
                return 0
        return -errno.ENOENT

    unregister_probe = probe_unregister

    def fire(self, *values: Any) -> None:
        """trace_NAME(args): the probes in priority order: callbacks (default priority)
        first, then the event's own (writes to each instance), then the probe stubs
        tprobes registered with priority 0."""
        if self.probes:
            self.events.call_probes(self, values, False)
        if self.files and self.call is not None:
            self.events.write_event(self, values)
        if self.probes:
            self.events.call_probes(self, values, True)

    def fire_defaults(self, *values: Any) -> None:
        """Like fire() with missing trailing values taken as 0 / ""."""
        if self.call is None:
            return self.fire(*values)
        vals = self.call.packer.defaults()
        for i, v in enumerate(values[:len(vals)]):
            vals[i] = v
        self.fire(*vals)
        return None


# ============================================================================ registry
class TraceEvents:
    """``k.events``: the event calls, per-instance files, set_event, tracepoints."""

    def __init__(self, kernel: Kernel) -> None:
        self.nr_enabled_tps = 0  # Tracepoints with a file or probe attached (see Tracepoint._update)
        self._calls_gen = 0  # bumped when calls change: invalidates the set_event index
        self._index_gen = -1
        self._by_system: dict[str, list[EventCall]] = {}
        self._by_name: dict[str, list[EventCall]] = {}
        self._pos: dict[int, int] = {}
        self.kernel = kernel
        formats, avail, self.header_page, self.header_event = load_event_data()
        self.calls: list[EventCall] = []     # ftrace_events / tr->events order
        self.by_name: dict[tuple[str, str], EventCall] = {}
        self.by_id: dict[int, EventCall] = {}
        self.used_ids: set[int] = set()
        order = {line: i for i, line in enumerate(avail.decode().split("\n")) if line}
        recs = split_formats(formats)
        static = []
        for system, name, type_id, text in recs:
            flags = TRACE_EVENT_FL_TRACEPOINT
            if system == "ftrace":
                flags = TRACE_EVENT_FL_IGNORE_ENABLE
            call = EventCall(system, name, type_id, text, flags)
            static.append((order.get(f"{system}:{name}", -1), call))
        # available_events order; the ftrace/* events (not listed) go at the end
        static.sort(key=lambda p: (p[0] < 0, p[0]))
        for _, call in static:
            self._link(call)
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
        self.triggers: Any = None           # trace_events_trigger.TriggerCommands
        self.filters: Any = None            # trace_events_filter module
        self.stub_caller: Callable[[int, tuple[Any, ...]], None] | None = None

    # ------------------------------------------------------------- calls
    def _link(self, call: EventCall, head: bool = False) -> None:
        if head:
            self.calls.insert(0, call)
            self._calls_gen += 1
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

    def add_event_call(self, ext: Any) -> int:
        """trace_add_event_call(): 0 or -errno; gives ``ext.type_id`` and a printer."""
        system, name = ext.system, ext.name
        if (system, name) in self.by_name:
            return -errno.EEXIST
        type_id = self.alloc_id()
        if not type_id:
            return -errno.ENODEV
        ext.type_id = type_id
        flags = getattr(ext, "flags", 0) | TRACE_EVENT_FL_DYNAMIC
        call = EventCall(system, name, type_id, None, flags, ext=ext)
        self._link(call, head=True)
        if system not in self._sys_seen:
            self._sys_seen.add(system)
            self.systems_order.append(system)
        printer = getattr(ext, "printer", None) or EventPrinter(call)
        self.kernel.trace.output.register(type_id, printer)
        self.kernel.workload.syscalls.eventfs_create_dir(name)  # event_create_dir(), top instance
        for inst in self.instances.values():
            f = EventFile(self, call, inst.tr)
            files = inst.files
            inst.files = {call: f, **files}
        self._changed()
        return 0

    def _wrapper(self, ext: Any) -> EventCall | None:
        if isinstance(ext, EventCall):
            return ext
        call = self.by_name.get((ext.system, ext.name))
        return call if call is not None and call.ext is ext else None

    def remove_event_call(self, ext: Any) -> int:
        """trace_remove_event_call(): -EBUSY while enabled anywhere or files are open."""
        call = self._wrapper(ext)
        if call is None:
            return -errno.ENOENT
        if call.refcnt or getattr(ext, "refcnt", 0):
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
        for call in self.calls:
            inst.files[call] = EventFile(self, call, tr)
        self.instances[id(tr)] = inst
        tr.events = inst
        return inst

    def instance_busy(self, tr: TraceArray) -> bool:
        """Events with open file references block rmdir (trace_array_destroy -> EBUSY)."""
        return False

    def remove_instance(self, tr: TraceArray) -> None:
        """event_trace_del_tracer(): disable everything, drop the files."""
        inst = self.instances.get(id(tr))
        if inst is None:
            return
        self.clear_pids(tr, True, True)
        for f in list(inst.files.values()):
            if self.triggers is not None:
                self.triggers.clear_all(f)
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
                from .trace import ITER_RECORD_CMD, ITER_RECORD_TGID

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
        """class->reg(): tracepoint events link the file to their tracepoint."""
        if call.ext is not None:
            reg = getattr(call.ext, "reg", None)
            if reg is None:
                return 0
            ret = reg(call.ext, TRACE_REG_REGISTER if on else TRACE_REG_UNREGISTER, file)
            return ret or 0
        tp = self.tracepoint_of(call)
        if on:
            if file not in tp.files:
                tp.files.append(file)
        elif file in tp.files:
            tp.files.remove(file)
        tp._update()
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

    def available_events_text(self, tr: TraceArray | None = None) -> str:
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
        """trace_pid_write(): parse all pids of ``data`` into a new list (old kept)."""
        from .trace_parser import TraceParser

        inst = self.inst(tr)
        old = inst.filtered_no_pids if notrace else inst.filtered_pids
        new: set[int] = set(old or ())
        parser = TraceParser(13)   # PID_BUF_SIZE + 1
        pos = 0
        nr = 0
        total = len(data)
        while pos < total:
            n = parser.feed(data[pos:], pos)
            if n <= 0:
                break
            pos += n
            if not parser.loaded():
                continue
            word = parser.word
            parser.clear()
            if not word.isdigit() or not word.isascii():
                raise KernelError(errno.EINVAL)
            val = int(word)
            if val >= PID_MAX_DEFAULT:
                raise KernelError(errno.EINVAL)
            new.add(val)
            nr += 1
        if not nr:
            # "echo > set_event_pid": an empty write clears the list
            new = set()
        if notrace:
            inst.filtered_no_pids = new or None
        else:
            inst.filtered_pids = new or None
        self._update_pid_flags(inst)
        return total

    def _update_pid_flags(self, inst: InstanceEvents) -> None:
        on = bool(inst.filtered_pids or inst.filtered_no_pids)
        for f in inst.files.values():
            if on:
                f.flags |= EVENT_FILE_FL_PID_FILTER
            else:
                f.flags &= ~EVENT_FILE_FL_PID_FILTER

    def ignore_pid(self, inst: InstanceEvents, pid: int) -> bool:
        """trace_ignore_this_task()."""
        pids, no_pids = inst.filtered_pids, inst.filtered_no_pids
        if pids is None and no_pids is None:
            return False
        return bool((pids is not None and pid not in pids) or (no_pids is not None and pid in no_pids))

    def on_fork(self, parent_pid: int, child_pid: int) -> None:
        """event_filter_pid_sched_process_fork(): with event-fork, children inherit."""
        from .trace import ITER_EVENT_FORK

        for inst in self.instances.values():
            if not inst.tr.flags & ITER_EVENT_FORK:
                continue
            for attr in ("filtered_pids", "filtered_no_pids"):
                pids = getattr(inst, attr)
                if pids is not None and parent_pid in pids:
                    pids.add(child_pid)

    def on_exit(self, pid: int) -> None:
        """event_filter_pid_sched_process_exit(): an exiting task leaves the lists."""
        for inst in self.instances.values():
            for attr in ("filtered_pids", "filtered_no_pids"):
                pids = getattr(inst, attr)
                if pids is not None:
                    pids.discard(pid)

    # ------------------------------------------------------------- tracepoints
    def tracepoint_of(self, call: EventCall) -> Tracepoint:
        tp = call.tracepoint
        if tp is None:
            tp = self.tracepoints.get(call.name)
            if tp is None or tp.call is not call:
                tp = Tracepoint(self, call, call.name, self._stub_addr(call.name))
                if call.name not in self.tracepoints:
                    self.tracepoints[call.name] = tp
            call.tracepoint = tp
        return tp

    def _stub_addr(self, name: str) -> int:
        try:
            return self.kernel.kallsyms.addr_of("__probestub_" + name) or 0
        except (AttributeError, OSError):
            return 0

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
        """for_each_kernel_tracepoint lookup used by tprobes; needs a probestub."""
        tp = self.tracepoint(name)
        if tp is None or not tp.probestub:
            return tp if tp is not None and tp.probestub else None
        return tp

    def call_probes(self, tp: Tracepoint, values: tuple[Any, ...], stubs: bool | None = None) -> None:
        """Callbacks (``stubs`` False), probe stubs (True: ``__probestub_*`` addresses,
        run through their ftrace site by ``stub_caller``) or both (None)."""
        for func, data in list(tp.probes):
            if callable(func):
                if stubs is not True:
                    func(data, *values) if data is not None else func(*values)
            elif isinstance(func, int) and self.stub_caller is not None and stubs is not False:
                self.stub_caller(func, values)

    # ------------------------------------------------------------- writing
    def write_event(self, tp: Tracepoint, values: tuple[Any, ...]) -> None:
        """trace_event_raw_event_*: pack once, then per enabled file reserve+commit."""
        call = tp.call
        assert call is not None
        k = self.kernel
        sched = k.sched
        pid = sched.current.pid
        rec: bytearray | None = None
        for file in list(tp.files):
            flags = file.flags
            inst = file.tr.events
            if flags & EVENT_FILE_FL_PID_FILTER and isinstance(inst, InstanceEvents):
                if self._pid_ignored(inst, call, values, pid):
                    continue
            if flags & EVENT_FILE_FL_SOFT_DISABLED and not file.triggers:
                continue
            if rec is None:
                rec = call.packer.pack(values)
                _ENTRY.pack_into(rec, 0, call.type_id, sched.irq_flags & 0xFF,
                                 sched.preempt_count & 0xFF, pid)
            triggers = file.triggers
            if triggers and self.triggers is not None:
                # triggers without a filter run before the record (event_triggers_call)
                self.triggers.call_pre(file, rec)
                if file.flags & EVENT_FILE_FL_SOFT_DISABLED:
                    continue
            ok = file.passes(rec, 0)
            if ok:
                self._commit(file.tr, rec)
            if triggers and self.triggers is not None:
                self.triggers.call_post(file, rec, ok)

    def _pid_ignored(self, inst: InstanceEvents, call: EventCall, values: tuple[Any, ...],
                     pid: int) -> bool:
        if not self.ignore_pid(inst, pid):
            return False
        # sched_switch / sched_wakeup are recorded when either task is traced
        if call.name == "sched_switch" and len(values) >= 6:
            return self.ignore_pid(inst, int(values[1])) and self.ignore_pid(inst, int(values[5]))
        if call.name in ("sched_wakeup", "sched_wakeup_new", "sched_waking") and len(values) >= 2:
            return self.ignore_pid(inst, int(values[1]))
        return True

    def _commit(self, tr: TraceArray, rec: bytes | bytearray) -> None:
        cpu = self.kernel.sched.cpu
        size = len(rec)
        off = tr.event_reserve(cpu, rec[0] | (rec[1] << 8), size)
        if off < 0:
            return
        buf = tr.event_buf(cpu)
        buf[off + 8:off + size] = rec[8:]
        tr.event_commit(cpu)

    def write_record(self, tr: TraceArray, rec: bytes | bytearray) -> None:
        """Write a packed record (common header included) into ``tr`` unconditionally."""
        self._commit(tr, rec)

    # ------------------------------------------------------------- printers
    def register_printers(self) -> None:
        out = self.kernel.trace.output
        for call in self.calls:
            if call.system == "ftrace" or call.ext is not None:
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

    def run_triggers(self, file: EventFile, rec: bytes | bytearray, off: int, discarded: bool) -> None:
        if self.triggers is not None:
            self.triggers.call_pre(file, rec)
            self.triggers.call_post(file, rec, not discarded)


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
