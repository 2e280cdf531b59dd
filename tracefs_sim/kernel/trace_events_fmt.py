"""The print fmt of an event, compiled to Python (the TP_printk half of TRACE_EVENT).

The kernel turns each event's ``TP_printk(fmt, args)`` into ``trace_raw_output_<event>()``
at build time (include/trace/trace_events.h, the ``__print_*``/``__get_*`` helpers of
include/trace/stages/stage3_trace_output.h and trace_output.c, vsprintf's conversions);
``call->print_fmt`` keeps the text that the ``format`` file shows.  The simulator only has
that text, so this module compiles it, once per event at first use, into a function of
the record: the same output with no per-record parsing.  It is kept apart from
trace_events.py because it is a compiler (tokenizer, C-expression parser, printf), not
event bookkeeping; a kernel engineer looks for it under the name of the thing it
compiles: the event's print fmt.

The compiler understands the C subset the formats use: ``REC->field``, arithmetic,
casts, ternaries, ``__print_flags``/``__print_symbolic`` (and ``_u64``), ``__get_str``,
``__get_dynamic_array(_len)``, ``__print_hex(_str)``, ``__print_array``,
``__print_dynamic_array``, ``__get_bitmask``; printf conversions with flags, width,
precision, length modifiers and the ``%p`` extensions.  A format it cannot compile
raises ``FmtError`` (the event then prints ``field=value`` pairs).
"""

from __future__ import annotations

import ipaddress
import re
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from .clock import jiffies_of
from .trace_events_h import COMMON_FIELDS, TYPE_SIZES, Field

if TYPE_CHECKING:
    from .kallsyms import Kallsyms
    from .trace_output import TraceIter


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


# what a compiled piece of a print fmt reads: (record buffer, offset of the entry, size,
# the iterator or None when no trace file is being read)
Ctx = tuple["bytes | bytearray", int, int, "TraceIter | None"]
Value = int | str | Arr           # a C value: an integer, a string, or a run of bytes
Ev = Callable[[Ctx], Value]
Arg = Ev | tuple[str, list[Ev]]   # a call argument: an expression or a {a, b} list

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
                         "struct", "bool", "_Bool", "volatile", "enum", "union")) | frozenset(TYPE_SIZES)


def mask_int(v: int, bits: int, signed: bool) -> int:
    """``v`` truncated to a C integer of ``bits`` bits (sign-extended if ``signed``)."""
    v &= (1 << bits) - 1
    if signed and v >> (bits - 1):
        v -= 1 << bits
    return v


def _to_int(v: Value) -> int:
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
    # include/net/tcp_states.h: show_tcp_state_name() in the tcp system's events (sock.h's
    # TRACE_DEFINE_ENUMs rewrite only the sock system's formats)
    "TCP_ESTABLISHED": 1, "TCP_SYN_SENT": 2, "TCP_SYN_RECV": 3, "TCP_FIN_WAIT1": 4,
    "TCP_FIN_WAIT2": 5, "TCP_TIME_WAIT": 6, "TCP_CLOSE": 7, "TCP_CLOSE_WAIT": 8, "TCP_LAST_ACK": 9,
    "TCP_LISTEN": 10, "TCP_CLOSING": 11, "TCP_NEW_SYN_RECV": 12,
    # a variable, not an enum: the kmem page events print (struct page *)vmemmap_base + pfn
    "vmemmap_base": 0xFFFFEA0000000000,
}


class FmtCompiler:
    """Compile one print fmt (``"FMT", ARGS...``) into ``render(ctx) -> str``.

    ``kallsyms`` names the addresses of ``%pS``/``%ps``; without it they print as hex.
    """

    def __init__(self, fields: list[Field], kallsyms: Kallsyms | None) -> None:
        self.kallsyms = kallsyms
        self.fields = {f.name: f for f in fields}
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
        return compile_printf(fmt, args, self.kallsyms)

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
            if val == "jiffies":
                return _jiffies
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
            return dyn_str(f)
        if name in ("__get_dynamic_array", "__get_rel_dynamic_array", "__get_bitmask",
                    "__get_rel_bitmask", "__get_cpumask", "__get_rel_cpumask", "__get_sockaddr",
                    "__get_rel_sockaddr"):
            f = self.field_arg()
            self.expect(")")
            get = dyn_arr(f)
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
            get = dyn_arr(f)
            return lambda c: print_array(get(c).data, len(get(c).data) // (el(c) or 1), el(c))
        args = self.call_args()
        return _builtin(name, args)

    def call_args(self) -> list[Arg]:
        args: list[Arg] = []
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
            def rd_str(c: Ctx) -> Value:
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


def dyn_arr(f: Field) -> Ev:
    def get(c: Ctx) -> Arr:
        start, length = _dyn_loc(c, f)
        return Arr(bytes(c[0][c[1] + start:c[1] + start + length]), f.elem_size or 1)
    return get


def dyn_str(f: Field) -> Ev:
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


def _jiffies(c: Ctx) -> int:
    """``jiffies`` in a print fmt (writeback's ``age=``) is read when the record is
    printed, not when it was written."""
    it = c[3]
    assert it is not None, "jiffies needs the trace iterator's kernel"
    return jiffies_of(it.kernel.boot_clock.peek())


def _deref(v: Value) -> Value:
    if isinstance(v, Arr):
        return v.item(0)
    raise FmtError("deref")


def _index(node: Ev, idx: Ev) -> Ev:
    def get(c: Ctx) -> Value:
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

    def cast(c: Ctx) -> Value:
        v = sub(c)
        if isinstance(v, (str, Arr)):
            return v
        return mask_int(v, nb, signed)
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


def _pairs(args: list[Arg]) -> list[tuple[Ev, Ev]]:
    pairs = []
    for a in args:
        if not (isinstance(a, tuple) and a[0] == "list" and len(a[1]) == 2):
            raise FmtError("flag/symbol list")
        pairs.append((a[1][0], a[1][1]))
    return pairs


def _const_pairs(args: list[Arg]) -> list[tuple[int, str]]:
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


def print_array(data: bytes, count: int, el: int) -> str:
    """trace_print_array_seq()."""
    out = []
    data = data[:count * el] if el in (1, 2, 4, 8) else data[:count]
    if el not in (1, 2, 4, 8):
        return "{" + ",".join(f"BAD SIZE:{el} 0x{b:x}" for b in data[:1]) + "}"
    for i in range(0, len(data) - el + 1, el):
        v = int.from_bytes(data[i:i + el], "little")
        out.append(f"0x{v:x}")
    return "{" + ",".join(out) + "}"


def _as_bytes(v: Value) -> bytes:
    if isinstance(v, Arr):
        return v.data
    if isinstance(v, str):
        return v.encode("latin-1", "replace")
    return b""


def _builtin(name: str, args: list[Arg]) -> Ev:
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
        return lambda c: print_array(_as_bytes(arr(c)), _to_int(cnt(c)), _to_int(el(c)))
    if name == "__print_ns_to_secs":
        v = args[0]
        return lambda c: str(_to_int(v(c)) // 1_000_000_000)
    if name == "__print_ns_without_secs":
        v = args[0]
        return lambda c: str(_to_int(v(c)) % 1_000_000_000)
    if name == "__builtin_expect" and len(args) == 2:
        return args[0]      # a branch hint: the value of its first argument
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


def ip6_compressed(data: bytes) -> str:
    """ip6_compressed_string(): ``%pI6c``; a v4-mapped address ends in dotted quad."""
    if data[:12] == bytes(10) + b"\xff\xff":
        return "::ffff:" + ".".join(str(b) for b in data[12:16])
    return str(ipaddress.IPv6Address(data))


def sockaddr_string(data: bytes, port: bool, compressed: bool) -> str:
    """ip_addr_string()'s ``%pIS``: a struct sockaddr_in/_in6 by its family (with
    ``p`` the port: ``127.0.0.1:80``, ``[::1]:80``)."""
    family = int.from_bytes(data[:2], "little") if len(data) >= 2 else 0
    sport = int.from_bytes(data[2:4], "big") if len(data) >= 4 else 0
    if family == 2 and len(data) >= 8:
        addr = ".".join(str(b) for b in data[4:8])
        return f"{addr}:{sport}" if port else addr
    if family == 10 and len(data) >= 24:
        raw = data[8:24]
        addr = ip6_compressed(raw) if compressed else \
            ":".join(f"{int.from_bytes(raw[i:i + 2], 'big'):04x}" for i in range(0, 16, 2))
        return f"[{addr}]:{sport}" if port else addr
    return "(einval)"


def hashed_ptr(addr: int) -> str:
    """Plain ``%p``: the kernel prints a hashed id; keep it stable per address."""
    if not addr:
        return "0000000000000000"
    x = (addr * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x ^= x >> 29
    return f"{x & 0xFFFFFFFF:016x}"


def _int_conv(v: Value, conv: str, length: str | None) -> int:
    iv = _to_int(v)
    bits = 64 if length in ("l", "ll", "z", "t", "j", "L") else 16 if length == "h" else \
        8 if length == "hh" else 32
    return mask_int(iv, bits, conv in "di")


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


def compile_printf(fmt: str, args: list[Ev], kallsyms: Kallsyms | None) -> Callable[[Ctx], str]:
    """Split ``fmt`` into literal text and conversions bound to ``args``."""
    parts: list[str | Callable[[Ctx], str]] = []
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
        parts.append(_make_conv(conv, flags, wconst, wfn, pconst, pfn, length, ext, arg, kallsyms))
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
               kallsyms: Kallsyms | None) -> Callable[[Ctx], str]:
    def width(c: Ctx) -> tuple[str, int]:
        if wfn is None:
            return flags, wconst
        w = mask_int(_to_int(wfn(c)), 32, True)
        return (flags + "-", -w) if w < 0 else (flags, w)

    def precision(c: Ctx) -> int | None:
        if pfn is None:
            return pconst
        p = mask_int(_to_int(pfn(c)), 32, True)
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
                # a char * field: the string it points to in kernel memory (a TPS()
                # string, a static name), read when the record is printed
                it = c[3]
                raw = it.kernel.mem.read_str(_to_int(v), 4096) if it is not None else None
                s = "(efault)" if raw is None else raw.decode("utf-8", "surrogateescape")
            p = precision(c)
            if p is not None:
                s = s[:p]
            fl, w = width(c)
            return _pad(s, fl, w)
        return f_str
    if conv == "p":
        return _make_ptr(ext, flags, width, arg, kallsyms, wfn)
    raise FmtError(f"conversion %{conv}")


def _make_ptr(ext: str, flags: str, width: Callable[[Ctx], tuple[str, int]], arg: Ev,
              ks: Kallsyms | None, wfn: Ev | None) -> Callable[[Ctx], str]:
    e0 = ext[:1]
    if e0 in ("s", "f", "S", "B", "F"):
        # %ps/%pf: the symbol; %pS/%pB/%pF: with +offset/size
        sym = None if ks is None else ks.format_ps if e0 in ("s", "f") else ks.format_pS

        def f_sym(c: Ctx) -> str:
            a = _to_int(arg(c)) & 0xFFFFFFFFFFFFFFFF
            fl, w = width(c)
            return _pad(sym(a) if sym is not None else f"0x{a:x}", fl, w)
        return f_sym
    if e0 == "x":
        def f_raw(c: Ctx) -> str:
            a = _to_int(arg(c)) & 0xFFFFFFFFFFFFFFFF
            fl, w = width(c)
            return _pad(f"{a:016x}", fl, w)
        return f_raw
    if e0 == "h":
        sep = {"C": ":", "D": "-", "N": ""}.get(ext[1:2], " ")

        def f_hex(c: Ctx) -> str:
            n = mask_int(_to_int(wfn(c)), 32, True) if wfn is not None else 1
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
            if ext[:3] == "I6c" and len(data) == 16:
                return ip6_compressed(data)
            sep = ":" if ext[0] == "I" else ""
            return sep.join(f"{x:04x}" for x in words)
        return f_ip6
    if ext[:2] in ("IS", "iS"):
        have_p = "p" in ext[2:]

        def f_sa(c: Ctx) -> str:
            return sockaddr_string(_as_bytes(arg(c)), have_p, "c" in ext[2:])
        return f_sa
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


