"""Event filters (kernel/trace/trace_events_filter.c).

``create_filter(tr, call, text, kernel)`` runs the kernel's three steps: ``calc_stack``
(parentheses and quotes), ``predicate_parse`` (the "first/second/third pass" program
with branch targets) and ``parse_pred`` per predicate; the result is an
``EventFilter`` with the filter text as the ``filter`` file shows it (on error: the
text, a caret line and ``parse_error: ...``) and a predicate ``pred(buf, off) -> bool``
that runs the program over the record bytes at ``off``.

Errors: the ``FiltErr`` table is the kernel's ``ERRORS`` X-macro; parse_error()
records the error and its position in ``ParseError`` and append_filter_err() writes
the caret text and the error_log entry.  Inside the parser a failure unwinds with
``_Fail(ret)`` to create_filter(), which returns ``ret`` (-errno, or calc_stack's raw
-1/-2/-3 as the kernel returns them); the file-facing ``apply_event_filter()`` /
``apply_subsystem_filter()`` raise ``KernelError`` for the adapter.
"""

from __future__ import annotations

import errno
import re
import struct
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING

from .errors import KernelError
from .ftrace import MATCH_END_ONLY, MATCH_FRONT_ONLY, MATCH_GLOB, MATCH_MIDDLE_ONLY, filter_parse_regex
from .lib import glob_to_regex, isalnum, isdigit, isspace, kstrtoll, kstrtoul, kstrtoull
from .sched import TASK_COMM_LEN
from .trace_events import EventCall, EventFile, Subsystem
from .trace_events_h import (
    EVENT_FILE_FL_FILTERED,
    EVENT_FILE_FL_FREED,
    FILTER_COMM,
    FILTER_CPU,
    FILTER_CPUMASK,
    FILTER_DYN_STRING,
    FILTER_OTHER,
    FILTER_PTR_STRING,
    FILTER_RDYN_STRING,
    FILTER_STATIC_STRING,
    Field,
)

if TYPE_CHECKING:
    from .core import Kernel
    from .trace import TraceArray
    from .trace_events import TraceEvents

DEFAULT_SYS_FILTER_MESSAGE = (
    "### global filter ###\n"
    "# Use this to set filters for multiple events.\n"
    "# Only events with the given fields will be affected.\n"
    "# If no events are modified, an error message will be displayed here")

OPS = ("~", "!=", "==", "<=", "<", ">=", ">", "&")
OP_GLOB, OP_NE, OP_EQ, OP_LE, OP_LT, OP_GE, OP_GT, OP_BAND = range(8)

MAX_FILTER_STR_VAL = 256        # trace.h
NR_CPUS = 8192                  # CONFIG_NR_CPUS: cpulist_parse()'s limit
INVERT, PROCESS_AND, PROCESS_OR = 1, 2, 4
_NUM_BUF = 24                   # parse_pred()'s num_buf: "big enough to hold an address"

Record = bytes | bytearray
Pred = Callable[[Record, int], bool]


class FiltErr(Enum):
    """The ``ERRORS`` X-macro of trace_events_filter.c (FILT_ERR_*), in the same order,
    same texts."""

    NONE = "No error"
    INVALID_OP = "Invalid operator"
    TOO_MANY_OPEN = "Too many '('"
    TOO_MANY_CLOSE = "Too few '('"
    MISSING_QUOTE = "Missing matching quote"
    MISSING_BRACE_OPEN = "Missing '{'"
    MISSING_BRACE_CLOSE = "Missing '}'"
    OPERAND_TOO_LONG = "Operand too long"
    EXPECT_STRING = "Expecting string field"
    EXPECT_DIGIT = "Expecting numeric field"
    ILLEGAL_FIELD_OP = "Illegal operation for field type"
    FIELD_NOT_FOUND = "Field not found"
    ILLEGAL_INTVAL = "Illegal integer value"
    BAD_SUBSYS_FILTER = "Couldn't find or set field in one of a subsystem's events"
    TOO_MANY_PREDS = "Too many terms in predicate expression"
    INVALID_FILTER = "Meaningless filter expression"
    INVALID_CPULIST = "Invalid cpulist"
    IP_FIELD_ONLY = "Only 'ip' field is supported for function trace"
    INVALID_VALUE = "Invalid value (did you forget quotes)?"
    NO_FUNCTION = "Function not found"
    ERRNO = "Error"
    NO_FILTER = "No filter found"


class EventFilter:
    """``struct event_filter``: the text shown by the file and the compiled program."""

    __slots__ = ("text", "pred")

    def __init__(self, text: str | None, pred: Pred | None = None) -> None:
        self.text = text
        self.pred = pred


class ParseError:
    """``struct filter_parse_error``: the last error and its position."""

    __slots__ = ("lasterr", "lasterr_pos")

    def __init__(self) -> None:
        self.lasterr = FiltErr.NONE
        self.lasterr_pos = 0

    def set(self, err: FiltErr, pos: int) -> None:
        """parse_error()."""
        self.lasterr = err
        self.lasterr_pos = pos


class _Fail(Exception):
    """A parse failure unwinding to create_filter(): ``ret`` is its return value."""

    def __init__(self, ret: int) -> None:
        self.ret = ret


def is_string_field(f: Field) -> bool:
    """trace.h is_string_field()."""
    return f.filter_type in (FILTER_DYN_STRING, FILTER_RDYN_STRING, FILTER_STATIC_STRING,
                             FILTER_PTR_STRING, FILTER_COMM)


# --------------------------------------------------------------------------- calc_stack
def calc_stack(s: str) -> tuple[int, int, int, int]:
    """Returns (ret, parens, preds, err_index); ret -1/-2/-3 as the kernel."""
    is_pred = False
    nr_preds = 0
    open_ = 1
    last_quote = 0
    max_open = 1
    quote = ""
    n = len(s)
    i = 0
    while i < n:
        c = s[i]
        if isspace(c):
            i += 1
            continue
        if quote:
            if c == quote:
                quote = ""
            i += 1
            continue
        if c in "'\"":
            quote = c
            last_quote = i
        elif c in "|&" and i + 1 < n and s[i + 1] == c:
            is_pred = False
            i += 1
            continue
        elif c == "(":
            is_pred = False
            open_ += 1
            max_open = max(max_open, open_)
            i += 1
            continue
        elif c == ")":
            is_pred = False
            if open_ == 1:
                return -1, 0, 0, i
            open_ -= 1
            i += 1
            continue
        if not is_pred:
            nr_preds += 1
            is_pred = True
        i += 1
    if quote:
        return -3, 0, 0, last_quote
    if open_ != 1:
        level = open_
        i = n - 1
        while i > 0:
            c = s[i]
            if quote:
                if c == quote:
                    quote = ""
            elif c == "(":
                if level == open_:
                    return -2, 0, 0, i
                level -= 1
            elif c == ")":
                level += 1
            elif c in "'\"":
                quote = c
            i -= 1
        return -2, 0, 0, 0
    return 0, max_open, nr_preds, 0


# --------------------------------------------------------------------------- values
def _cpulist_parse(text: str) -> set[int] | None:
    """cpulist_parse(): ``N``, ``N-M``, ``N-M:used/group``, comma separated."""
    out: set[int] = set()
    for part in text.split(","):
        if not part:
            return None
        stride = 1
        if ":" in part:
            part, rest = part.split(":", 1)
            if "/" not in rest:
                return None
            used, group = rest.split("/", 1)
            if not (used.isdigit() and group.isdigit()):
                return None
            del used
            stride = int(group) or 1
        if "-" in part:
            a, b = part.split("-", 1)
            if not (a.isdigit() and b.isdigit()) or int(a) > int(b):
                return None
            lo, hi = int(a), int(b)
        else:
            if not part.isdigit():
                return None
            lo = hi = int(part)
        if hi >= NR_CPUS:
            return None
        out.update(range(lo, hi + 1, stride))
    return out


# --------------------------------------------------------------------------- regex
def _cstr(raw: bytes, length: int) -> bytes:
    """The C string in ``raw``: at most ``length`` bytes (0: all), up to the NUL."""
    if length:
        raw = raw[:length]
    nul = raw.find(b"\0")
    return raw if nul < 0 else raw[:nul]


def _regex(pattern: str, op: int) -> tuple[Callable[[bytes, int], bool], bool]:
    """filter_build_regex(): the regex_match_* function and the 'not' flag that a
    ``~ "!..."`` glob sets (filter_parse_regex())."""
    not_ = False
    kind = -1                                   # MATCH_FULL (MATCH_INDEX matches full)
    search = pattern
    if op == OP_GLOB:
        g = filter_parse_regex(pattern)
        kind, search, not_ = g.type, g.search, g.negate
    pat = search.encode("latin-1", "replace")
    plen = len(pat)

    if kind == MATCH_FRONT_ONLY:
        def m_front(raw: bytes, length: int) -> bool:
            if length and length < plen:
                return False
            return _cstr(raw, 0).startswith(pat) if plen else True
        return m_front, not_
    if kind == MATCH_MIDDLE_ONLY:
        return (lambda raw, length: pat in _cstr(raw, length)), not_
    if kind == MATCH_END_ONLY:
        def m_end(raw: bytes, length: int) -> bool:
            strlen = length - 1
            return strlen >= plen and raw[strlen - plen:strlen] == pat
        return m_end, not_
    if kind == MATCH_GLOB:
        glob = re.compile(glob_to_regex(search), re.S).fullmatch

        def m_glob(raw: bytes, length: int) -> bool:
            return glob(_cstr(raw, length).decode("latin-1")) is not None
        return m_glob, not_

    def m_full(raw: bytes, length: int) -> bool:
        if not length:
            return _cstr(raw, 0) == pat
        if length < plen:
            return False
        return _cstr(raw, length) == _cstr(pat, length)
    return m_full, not_


# --------------------------------------------------------------------------- predicates
_INT = {(1, False): "<B", (1, True): "<b", (2, False): "<H", (2, True): "<h",
        (4, False): "<I", (4, True): "<i", (8, False): "<Q", (8, True): "<q"}
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


def _scalar_pred(field: Field, op: int, val: int, not_: bool, signed: bool | None = None) -> Pred:
    size = field.size
    sgn = field.is_signed if signed is None else signed
    st = struct.Struct(_INT.get((size, sgn), "<Q"))
    off = field.offset
    bits = size * 8
    v = val & ((1 << bits) - 1)
    if sgn and v >> (bits - 1):
        v -= 1 << bits
    if op in (OP_EQ, OP_NE):
        uv = val & ((1 << bits) - 1)
        ust = struct.Struct(_INT.get((size, False), "<Q"))
        return lambda b, o: (ust.unpack_from(b, o + off)[0] == uv) ^ not_
    if op == OP_LT:
        return lambda b, o: st.unpack_from(b, o + off)[0] < v
    if op == OP_LE:
        return lambda b, o: st.unpack_from(b, o + off)[0] <= v
    if op == OP_GT:
        return lambda b, o: st.unpack_from(b, o + off)[0] > v
    if op == OP_GE:
        return lambda b, o: st.unpack_from(b, o + off)[0] >= v
    if op == OP_BAND:
        return lambda b, o: bool(st.unpack_from(b, o + off)[0] & v)
    return lambda b, o: False


def _cmp_cpu(op: int, cpu: int, val: int) -> bool:
    return {OP_EQ: cpu == val, OP_NE: cpu != val, OP_LT: cpu < val, OP_LE: cpu <= val,
            OP_GT: cpu > val, OP_GE: cpu >= val}.get(op, False)


def _scalar_cpumask(op: int, cpu: int, mask: set[int]) -> bool:
    """do_filter_scalar_cpumask()."""
    if op == OP_EQ:
        return False
    if op == OP_NE:
        return True
    if op == OP_BAND:
        return cpu in mask
    return False


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


def _cpumask_reader(field: Field) -> Callable[[Record, int], set[int]]:
    foff = field.offset

    def get(buf: Record, o: int) -> set[int]:
        item = _U32.unpack_from(buf, o + foff)[0]
        loc, ln = item & 0xFFFF, item >> 16
        val = int.from_bytes(bytes(buf[o + loc:o + loc + ln]), "little")
        return {b for b in range(ln * 8) if val >> b & 1}
    return get


class PredParser:
    """parse_pred() for one event call.

    ``s[start:]`` is the predicate; ``i`` counts from ``start`` and error positions
    are ``pos + i`` as in the kernel (``pos`` is where the predicate starts in the
    whole filter, plus one).  Each operand kind has its own method returning
    (characters consumed, predicate).
    """

    def __init__(self, call: EventCall, kernel: Kernel | None) -> None:
        self.call = call
        self.kernel = kernel
        self.s = ""
        self.start = 0
        self.pos = 0
        self.pe = ParseError()

    def ch(self, j: int) -> str:
        j += self.start
        return self.s[j] if j < len(self.s) else ""

    def word(self, b: int, i: int) -> str:
        return self.s[self.start + b:self.start + i]

    def fail(self, err: FiltErr, i: int) -> _Fail:
        """parse_error(pe, err, pos + i) and the -EINVAL to raise."""
        self.pe.set(err, self.pos + i)
        return _Fail(-errno.EINVAL)

    def cur_cpu(self) -> int:
        return self.kernel.sched.cpu if self.kernel is not None else 0

    def parse(self, s: str, start: int, pos: int, pe: ParseError) -> tuple[int, Pred]:
        """Parse the predicate at ``s[start:]``; returns (length consumed, predicate)."""
        self.s, self.start, self.pos, self.pe = s, start, pos, pe
        ch = self.ch
        i = 0
        while isspace(ch(i)):
            i += 1
        b = i
        while isalnum(ch(i)) or ch(i) == "_":
            i += 1
        if i == b:
            raise _Fail(-1)
        field = self.call.find_field(self.word(b, i))
        if field is None:
            raise self.fail(FiltErr.FIELD_NOT_FOUND, i)
        rest = s[start + i:]
        if rest.startswith(".ustring"):
            i += len(".ustring")
            rest = s[start + i:]
        function = False
        if rest.startswith(".function"):
            function = True
            i += len(".function")
        while isspace(ch(i)):
            i += 1
        op = next((n for n, o in enumerate(OPS) if s.startswith(o, start + i)), -1)
        if op < 0:
            raise self.fail(FiltErr.INVALID_OP, i)
        i += len(OPS[op])
        while isspace(ch(i)):
            i += 1
        if function:
            return self._function(field, op, i)
        if s.startswith("CPUS", start + i):
            return self._cpus(field, op, i)
        c = ch(i)
        if c in ("'", '"') and c:
            return self._string(field, op, i)
        if isdigit(c) or c == "-":
            return self._number(field, op, i)
        raise self.fail(FiltErr.INVALID_VALUE, i)

    def _function(self, field: Field, op: int, i: int) -> tuple[int, Pred]:
        """``FIELD.function == SYMBOL|ADDRESS``: the address is inside the function."""
        b = i
        if field.size != 8:
            raise self.fail(FiltErr.ILLEGAL_FIELD_OP, i)
        if op not in (OP_NE, OP_EQ):
            raise self.fail(FiltErr.INVALID_OP, i)
        k = self.kernel
        if isdigit(self.ch(i)):
            while isalnum(self.ch(i)):
                i += 1
            if i - b >= _NUM_BUF:
                raise self.fail(FiltErr.OPERAND_TOO_LONG, i)
            err, ip = kstrtoul(self.word(b, i), 0)
            if err:
                raise self.fail(FiltErr.INVALID_VALUE, i)
        else:
            b = i
            while self.ch(i) and not isspace(self.ch(i)):
                i += 1
            ip = k.kallsyms.addr_of(self.word(b, i)) if k is not None else 0
            if not ip:
                raise self.fail(FiltErr.NO_FUNCTION, i)
        look = k.kallsyms.lookup_addr(ip) if k is not None else None
        if look is None:
            raise self.fail(FiltErr.NO_FUNCTION, i)
        lo = ip - look[1]
        hi = lo + look[2]
        off = field.offset
        eq = op == OP_EQ

        def p_func(buf: Record, o: int) -> bool:
            a = _U64.unpack_from(buf, o + off)[0]
            return (lo <= a < hi) == eq
        return i, p_func

    def _cpus(self, field: Field, op: int, i: int) -> tuple[int, Pred]:
        """``FIELD OP CPUS{LIST}``: a cpumask field, the current CPU or a CPU number."""
        ft = field.filter_type
        if ft not in (FILTER_CPUMASK, FILTER_CPU, FILTER_OTHER):
            raise self.fail(FiltErr.ILLEGAL_FIELD_OP, i)
        if op not in (OP_EQ, OP_NE, OP_BAND):
            raise self.fail(FiltErr.ILLEGAL_FIELD_OP, i)
        i += 4
        c = self.ch(i)
        i += 1
        if c != "{":
            raise self.fail(FiltErr.MISSING_BRACE_OPEN, i)
        maskstart = i
        while self.ch(i) and self.ch(i) != "}":
            i += 1
        if self.ch(i) != "}":
            raise self.fail(FiltErr.MISSING_BRACE_CLOSE, i)
        if maskstart == i:
            raise self.fail(FiltErr.INVALID_CPULIST, i)
        mask = _cpulist_parse(self.word(maskstart, i))
        if mask is None:
            raise self.fail(FiltErr.INVALID_CPULIST, i)
        i += 1
        single = len(mask) == 1
        cur = self.cur_cpu
        nr = self.kernel.nr_cpus if self.kernel is not None else 1
        if ft == FILTER_CPUMASK:
            getm = _cpumask_reader(field)
            if single:
                (cpu1,) = tuple(mask)

                def p_mcpu(buf: Record, o: int) -> bool:
                    m = getm(buf, o)
                    if op == OP_EQ:
                        return m == {cpu1}
                    if op == OP_NE:
                        return m != {cpu1}
                    return cpu1 in m
                return i, p_mcpu

            def p_mm(buf: Record, o: int) -> bool:
                m = getm(buf, o)
                if op == OP_EQ:
                    return m == mask
                if op == OP_NE:
                    return m != mask
                return bool(m & mask)
            return i, p_mm
        if ft == FILTER_CPU:
            if single:
                (cpu1,) = tuple(mask)
                op2 = OP_EQ if op == OP_BAND else op
                return i, lambda buf, o: _cmp_cpu(op2, cur(), cpu1)
            return i, lambda buf, o: _scalar_cpumask(op, cur(), mask)
        if single:
            (cpu1,) = tuple(mask)
            op2 = OP_EQ if op == OP_BAND else op
            return i, _scalar_pred(field, op2, cpu1, op2 == OP_NE, signed=False)
        ust = struct.Struct(_INT.get((field.size, False), "<Q"))
        foff = field.offset

        def p_scm(buf: Record, o: int) -> bool:
            cpu = ust.unpack_from(buf, o + foff)[0]
            if cpu >= nr:
                return False
            return _scalar_cpumask(op, cpu, mask)
        return i, p_scm

    def _string(self, field: Field, op: int, i: int) -> tuple[int, Pred]:
        """``FIELD ==|!=|~ "STRING"`` on a string field."""
        b = i
        q = self.ch(i)
        not_ = False
        if op == OP_NE:
            not_ = True
        elif op not in (OP_GLOB, OP_EQ):
            raise self.fail(FiltErr.ILLEGAL_FIELD_OP, i)
        if not is_string_field(field):
            raise self.fail(FiltErr.EXPECT_DIGIT, i)
        i += 1
        while self.ch(i) and self.ch(i) != q:
            i += 1
        if not self.ch(i):
            raise self.fail(FiltErr.MISSING_QUOTE, i)
        b += 1
        if i - b >= MAX_FILTER_STR_VAL:
            raise self.fail(FiltErr.OPERAND_TOO_LONG, i)
        match, gnot = _regex(self.word(b, i), op)
        not_ = not_ or gnot
        i += 1
        ft = field.filter_type
        foff = field.offset
        k = self.kernel
        if ft == FILTER_COMM:
            def p_comm(buf: Record, o: int) -> bool:
                comm = k.sched.current.comm.encode("utf-8", "replace")[:TASK_COMM_LEN - 1] if k else b""
                return match(comm.ljust(TASK_COMM_LEN, b"\0"), TASK_COMM_LEN) ^ not_
            return i, p_comm
        if ft == FILTER_STATIC_STRING:
            fsize = field.size
            if not fsize:   # char buf[] (ftrace print): NUL-terminated, as len 0 means
                def p_str0(buf: Record, o: int) -> bool:
                    raw = _cstr(bytes(buf[o + foff:]), 0)
                    return match(raw, len(raw)) ^ not_
                return i, p_str0
            return i, lambda buf, o: match(bytes(buf[o + foff:o + foff + fsize]), fsize) ^ not_
        if ft in (FILTER_DYN_STRING, FILTER_RDYN_STRING):
            rel = ft == FILTER_RDYN_STRING

            def p_loc(buf: Record, o: int) -> bool:
                item = _U32.unpack_from(buf, o + foff)[0]
                loc, ln = item & 0xFFFF, item >> 16
                if rel:
                    loc += foff + 4
                return match(bytes(buf[o + loc:o + loc + ln]), ln) ^ not_
            return i, p_loc
        # a char * into kernel/user memory: the simulation cannot read it
        return i, lambda buf, o: False

    def _number(self, field: Field, op: int, i: int) -> tuple[int, Pred]:
        """``FIELD OP NUMBER`` on a numeric field."""
        b = i
        if is_string_field(field):
            raise self.fail(FiltErr.EXPECT_STRING, i)
        if op == OP_GLOB:
            raise self.fail(FiltErr.ILLEGAL_FIELD_OP, i)
        if self.ch(i) == "-":
            i += 1
        while isalnum(self.ch(i)):
            i += 1
        if i - b >= _NUM_BUF:
            raise self.fail(FiltErr.OPERAND_TOO_LONG, i)
        num = self.word(b, i)
        err, val = kstrtoll(num, 0) if field.is_signed else kstrtoull(num, 0)
        if err:
            raise self.fail(FiltErr.ILLEGAL_INTVAL, b)
        if field.filter_type == FILTER_CPU:
            cur = self.cur_cpu
            return i, lambda buf, o: _cmp_cpu(op, cur(), _s32(val))
        return i, _scalar_pred(field, op, val, op == OP_NE)


# --------------------------------------------------------------------------- program
def predicate_parse(s: str, nr_parens: int, nr_preds: int, parser: PredParser,
                    pe: ParseError) -> Pred:
    """The kernel's first/second/third pass; returns the program as a predicate."""
    n = len(s)

    def ch(j: int) -> str:
        return s[j] if j < n else ""

    stack = [0]
    invert = 0
    inverts: list[int] = []
    preds: list[Pred] = []
    target: list[int] = []
    when: list[int] = []

    def update_preds(N: int, inv: int) -> None:  # noqa: N803 - kernel name
        t = target[N]
        s2 = target[t]
        when[t] = inv
        target[t] = N
        target[N] = s2

    ptr = 0
    ret = -errno.ENOMEM
    done = False
    while ch(ptr):
        nxt = ptr
        ptr += 1
        c = ch(nxt)
        if isspace(c):
            continue
        if c == "(":
            if len(stack) - 1 >= nr_parens - 1:
                raise _Fail(-errno.EINVAL)
            stack.append(invert)
            continue
        if c == "!" and ch(nxt + 1) not in ("=", "~"):
            invert = 1 - invert
            continue
        N = len(preds)  # noqa: N806
        if N >= nr_preds:
            pe.set(FiltErr.TOO_MANY_PREDS, nxt)
            raise _Fail(ret)
        inverts.append(invert)
        target.append(N - 1)
        when.append(0)
        length, pred = parser.parse(s, nxt, ptr, pe)
        preds.append(pred)
        ptr = nxt + length
        N += 1  # noqa: N806
        ret = -1
        while True:
            nxt = ptr
            ptr += 1
            c = ch(nxt)
            if isspace(c):
                continue
            if c in (")", ""):
                pass
            elif c in ("&", "|"):
                if ch(nxt + 1) == c:
                    ptr += 1
                else:
                    pe.set(FiltErr.TOO_MANY_PREDS, nxt)
                    raise _Fail(ret)
            else:
                pe.set(FiltErr.TOO_MANY_PREDS, nxt)
                raise _Fail(ret)
            invert = stack[-1] & INVERT
            if stack[-1] & PROCESS_AND:
                update_preds(N - 1, invert)
                stack[-1] &= ~PROCESS_AND
            if c == "&":
                stack[-1] |= PROCESS_AND
                break
            if stack[-1] & PROCESS_OR:
                update_preds(N - 1, 1 - invert)
                stack[-1] &= ~PROCESS_OR
            if c == "|":
                stack[-1] |= PROCESS_OR
                break
            if not c:
                done = True
                break
            if len(stack) == 1:
                pe.set(FiltErr.TOO_MANY_CLOSE, ptr)
                raise _Fail(-1)
            stack.pop()
        if done:
            break
    if not done:
        if preds:
            pe.set(FiltErr.INVALID_FILTER, ptr)
            raise _Fail(-errno.EINVAL)
    if len(stack) != 1:
        pe.set(FiltErr.TOO_MANY_OPEN, ptr)
        raise _Fail(ret)
    N = len(preds)  # noqa: N806
    if not N:
        pe.set(FiltErr.NO_FILTER, ptr)
        raise _Fail(-errno.EINVAL)
    # TRUE / FALSE entries
    target += [1, 0]
    when += [0, 0]
    target[N - 1] = N
    when[N - 1] = 0
    for i in range(N - 2, -1, -1):
        t = target[i]
        if when[i] == when[t]:
            target[i] = target[t]
    for i in range(N):
        when[i] = inverts[i] ^ when[i]
        if target[i] <= i:
            raise _Fail(-errno.EINVAL)
    prog = tuple(zip(preds, when[:N], target[:N], strict=True))
    final = tuple(target)

    if N == 1:
        p0, w0, _t0 = prog[0]
        if w0 == 0:
            return lambda buf, off: bool(p0(buf, off))
        return lambda buf, off: not p0(buf, off)

    def run(buf: Record, off: int) -> bool:
        # filter_match_preds(): a taken branch lands on target + 1 (the for loop's i++)
        i = 0
        while i < N:
            p, w, t = prog[i]
            if int(bool(p(buf, off))) == w:
                i = t
            i += 1
        return bool(final[i])
    return run


def process_preds(call: EventCall, text: str, pe: ParseError, kernel: Kernel | None) -> Pred:
    ret, parens, preds, index = calc_stack(text)
    if ret < 0:
        err = {-3: FiltErr.MISSING_QUOTE, -2: FiltErr.TOO_MANY_OPEN}.get(ret, FiltErr.TOO_MANY_CLOSE)
        pe.set(err, index)
        raise _Fail(ret)
    if not preds:
        raise _Fail(-errno.EINVAL)
    return predicate_parse(text, parens, preds, PredParser(call, kernel), pe)


def append_filter_err(tr: TraceArray | None, pe: ParseError, text: str) -> str:
    """The filter text with the caret line and the parse_error, logged to error_log."""
    pos = min(pe.lasterr_pos, len(text))
    if pos:
        pos += 1
    if pe.lasterr is not FiltErr.NONE:
        out = f"{text}\n{'^':>{pos}}\nparse_error: {pe.lasterr.value}\n"
        if tr is not None:
            tr.log_err("event filter parse error", text, pe.lasterr.value, pe.lasterr_pos)
    else:
        out = f"{text}\nError: (0)\n"
        if tr is not None:
            tr.log_err("event filter parse error", text, FiltErr.ERRNO.value, 0)
    return out


def create_filter(tr: TraceArray | None, call: EventCall, text: str, kernel: Kernel | None,
                  set_str: bool = True) -> tuple[EventFilter, int]:
    """create_filter(): (filter, 0) or (filter with the error text, -errno)."""
    pe = ParseError()
    try:
        pred = process_preds(call, text, pe, kernel)
    except _Fail as e:
        # kmemdup_nul of the seq: the stored string keeps its trailing newline
        shown = append_filter_err(tr, pe, text) if set_str else None
        return EventFilter(shown), e.ret
    return EventFilter(text if set_str else None, pred), 0


def _strip_input(data: bytes | str) -> str:
    text = data.decode("latin-1") if isinstance(data, (bytes, bytearray)) else data
    nul = text.find("\0")
    if nul >= 0:
        text = text[:nul]
    return text.rstrip(" \t\n\v\f\r")


def apply_event_filter(events: TraceEvents, file: EventFile, data: bytes | str) -> None:
    """apply_event_filter(): raises KernelError with the kernel's code on error."""
    if file.flags & EVENT_FILE_FL_FREED:
        raise KernelError(errno.ENODEV)
    events.attach_gen += 1      # the file's FILTERED flag may change (file_takes_nothing)
    text = _strip_input(data)
    if text.lstrip(" \t\n\v\f\r") == "0":
        file.flags &= ~EVENT_FILE_FL_FILTERED
        file.filter = None
        return
    flt, err = create_filter(file.tr, file.call, text, events.kernel)
    if err:
        file.flags &= ~EVENT_FILE_FL_FILTERED
    else:
        file.flags |= EVENT_FILE_FL_FILTERED
    file.filter = flt
    if err:
        raise KernelError(-err)


def subsystem_filter_text(events: TraceEvents, tr: TraceArray, system: str) -> str:
    sub = events.inst(tr).systems.get(system)
    if sub is not None and sub.filter_text is not None:
        return sub.filter_text + "\n"
    return DEFAULT_SYS_FILTER_MESSAGE + "\n"


def apply_subsystem_filter(events: TraceEvents, tr: TraceArray, system: str, data: bytes | str) -> None:
    """apply_subsystem_event_filter(): raises KernelError for the adapter."""
    inst = events.inst(tr)
    files = [f for c, f in inst.files.items() if c.system == system]
    if not files:
        raise KernelError(errno.ENODEV)
    sub = inst.systems.setdefault(system, Subsystem(system))
    events.attach_gen += 1      # the files' FILTERED flags may change (file_takes_nothing)
    text = _strip_input(data)
    if text.lstrip(" \t\n\v\f\r") == "0":
        for f in files:
            f.flags &= ~EVENT_FILE_FL_FILTERED
            f.filter = None
        sub.filter_text = None
        return
    for f in files:
        pe = ParseError()
        try:
            pred = process_preds(f.call, text, pe, events.kernel)
        except _Fail:
            f.flags &= ~EVENT_FILE_FL_FILTERED
            pe.set(FiltErr.BAD_SUBSYS_FILTER, 0)
            shown = append_filter_err(tr, pe, text)
            f.filter = EventFilter(shown)
            continue
        f.flags |= EVENT_FILE_FL_FILTERED
        f.filter = EventFilter(text, pred)
    # System filters just show the default message once applied.
    sub.filter_text = None


def compile_filter(call: EventCall, text: str, kernel: Kernel | None = None) -> Pred:
    """A predicate for ``text`` or KernelError (no error_log): a Python API for
    in-kernel users and tests."""
    flt, err = create_filter(None, call, text, kernel, set_str=False)
    if err or flt.pred is None:
        raise KernelError(errno.EINVAL if err >= -1 else -err)
    return flt.pred
