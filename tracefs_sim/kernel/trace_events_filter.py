"""Event filters (kernel/trace/trace_events_filter.c).

``create_filter(events, tr, call, text)`` runs the kernel's three steps: ``calc_stack``
(parentheses and quotes), ``predicate_parse`` (the "first/second/third pass" program
with branch targets) and ``parse_pred`` per predicate; the result is an
``EventFilter`` with the filter text as the ``filter`` file shows it (on error: the
text, a caret line and ``parse_error: ...``) and a predicate ``pred(buf, off) -> bool``
that runs the program over the record bytes.  Errors carry the kernel's return code
(calc_stack's -1/-2/-3 included) and are logged to ``error_log`` like
``append_filter_err``.
"""

from __future__ import annotations

import errno
import fnmatch
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import KernelError
from .lib import isalnum, isdigit, isspace
from .trace_events import EventCall, EventFile
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
    from .trace import TraceArray
    from .trace_events import TraceEvents

DEFAULT_SYS_FILTER_MESSAGE = (
    "### global filter ###\n"
    "# Use this to set filters for multiple events.\n"
    "# Only events with the given fields will be affected.\n"
    "# If no events are modified, an error message will be displayed here")

OPS = ("~", "!=", "==", "<=", "<", ">=", ">", "&")
OP_GLOB, OP_NE, OP_EQ, OP_LE, OP_LT, OP_GE, OP_GT, OP_BAND = range(8)

ERR_TEXT = (
    "No error", "Invalid operator", "Too many '('", "Too few '('", "Missing matching quote",
    "Missing '{'", "Missing '}'", "Operand too long", "Expecting string field",
    "Expecting numeric field", "Illegal operation for field type", "Field not found",
    "Illegal integer value", "Couldn't find or set field in one of a subsystem's events",
    "Too many terms in predicate expression", "Meaningless filter expression",
    "Invalid cpulist", "Only 'ip' field is supported for function trace",
    "Invalid value (did you forget quotes)?", "Function not found", "Error", "No filter found",
)
(FILT_ERR_NONE, FILT_ERR_INVALID_OP, FILT_ERR_TOO_MANY_OPEN, FILT_ERR_TOO_MANY_CLOSE,
 FILT_ERR_MISSING_QUOTE, FILT_ERR_MISSING_BRACE_OPEN, FILT_ERR_MISSING_BRACE_CLOSE,
 FILT_ERR_OPERAND_TOO_LONG, FILT_ERR_EXPECT_STRING, FILT_ERR_EXPECT_DIGIT,
 FILT_ERR_ILLEGAL_FIELD_OP, FILT_ERR_FIELD_NOT_FOUND, FILT_ERR_ILLEGAL_INTVAL,
 FILT_ERR_BAD_SUBSYS_FILTER, FILT_ERR_TOO_MANY_PREDS, FILT_ERR_INVALID_FILTER,
 FILT_ERR_INVALID_CPULIST, FILT_ERR_IP_FIELD_ONLY, FILT_ERR_INVALID_VALUE,
 FILT_ERR_NO_FUNCTION, FILT_ERR_ERRNO, FILT_ERR_NO_FILTER) = range(22)

MAX_FILTER_STR_VAL = 256
TASK_COMM_LEN = 16
NR_CPUS = 8192
INVERT, PROCESS_AND, PROCESS_OR = 1, 2, 4

Pred = Callable[[Any, int], bool]


class EventFilter:
    """``struct event_filter``: the text shown by the file and the compiled program."""

    __slots__ = ("text", "pred")

    def __init__(self, text: str | None, pred: Pred | None = None) -> None:
        self.text = text
        self.pred = pred


class ParseError:
    __slots__ = ("lasterr", "lasterr_pos")

    def __init__(self) -> None:
        self.lasterr = 0
        self.lasterr_pos = 0

    def set(self, err: int, pos: int) -> None:
        self.lasterr = err
        self.lasterr_pos = pos


class _Fail(Exception):
    def __init__(self, ret: int) -> None:
        self.ret = ret


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
def _kstrto(text: str, signed: bool) -> int | None:
    """kstrtoll/kstrtoull with base 0 (None on error or overflow)."""
    t = text
    neg = False
    if t.startswith("+"):
        t = t[1:]
    elif t.startswith("-"):
        if not signed:
            return None
        neg = True
        t = t[1:]
    if t[:2].lower() == "0x" and len(t) > 2:
        digits, base = t[2:], 16
    elif t.startswith("0") and len(t) > 1:
        digits, base = t[1:], 8
    else:
        digits, base = t, 10
    if not digits:
        return None
    try:
        v = int(digits, base)
    except ValueError:
        return None
    if any(c in "+-_ " for c in digits):
        return None
    if neg:
        if v > 1 << 63:
            return None
        return -v
    if signed and v >= 1 << 63:
        return None
    if v >= 1 << 64:
        return None
    return v


def _cpulist_parse(text: str) -> set[int] | None:
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
def _regex(pattern: str, op: int) -> tuple[Callable[[bytes, int], bool], bool]:
    """filter_build_regex(): the matcher and the 'not' flag a '~ "!..."' glob sets."""
    not_ = False
    kind = "full"
    search = pattern
    if op == OP_GLOB:
        buff = pattern
        if buff.startswith("!"):
            not_ = True
            buff = buff[1:]
        search = buff
        if buff[:1].isdigit():
            kind = "full"
        else:
            n = len(buff)
            for i, ch in enumerate(buff):
                if ch == "*":
                    if i == 0:
                        kind = "end"
                    elif i == n - 1:
                        kind = "middle" if kind == "end" else "front"
                        buff = buff[:i]
                        break
                    else:
                        kind = "glob"
                        break
                elif ch in "[?\\":
                    kind = "glob"
                    break
            if kind != "glob":
                search = buff[1:] if buff.startswith("*") else buff
            else:
                search = pattern[1:] if not_ else pattern
    pat = search.encode("latin-1", "replace")
    plen = len(pat)

    def cstr(raw: bytes, length: int) -> bytes:
        if length:
            raw = raw[:length]
        nul = raw.find(b"\0")
        return raw if nul < 0 else raw[:nul]

    if kind == "full":
        def m_full(raw: bytes, length: int) -> bool:
            if not length:
                return cstr(raw, 0) == pat
            if length < plen:
                return False
            return cstr(raw, length) == cstr(pat, length)
        return m_full, not_
    if kind == "front":
        def m_front(raw: bytes, length: int) -> bool:
            if length and length < plen:
                return False
            return cstr(raw, 0).startswith(pat) if plen else True
        return m_front, not_
    if kind == "middle":
        return (lambda raw, length: pat in cstr(raw, length)), not_
    if kind == "end":
        def m_end(raw: bytes, length: int) -> bool:
            strlen = length - 1
            return strlen >= plen and raw[strlen - plen:strlen] == pat
        return m_end, not_
    glob = search

    def m_glob(raw: bytes, length: int) -> bool:
        return fnmatch.fnmatchcase(cstr(raw, length).decode("latin-1"), glob)
    return m_glob, not_


# --------------------------------------------------------------------------- predicates
_INT = {(1, False): "<B", (1, True): "<b", (2, False): "<H", (2, True): "<h",
        (4, False): "<I", (4, True): "<i", (8, False): "<Q", (8, True): "<q"}


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


class PredParser:
    """parse_pred() for one event call."""

    def __init__(self, call: EventCall, kernel: Any) -> None:
        self.call = call
        self.kernel = kernel

    def parse(self, s: str, start: int, pos: int, pe: ParseError) -> tuple[int, Pred]:
        """Parse the predicate at ``s[start:]``; returns (length consumed, predicate)."""
        k = self.kernel

        def ch(j: int) -> str:
            j += start
            return s[j] if j < len(s) else ""

        i = 0
        while isspace(ch(i)):
            i += 1
        b = i
        while isalnum(ch(i)) or ch(i) == "_":
            i += 1
        if i == b:
            raise _Fail(-1)
        name = s[start + b:start + i]
        field = self.call.find_field(name)
        if field is None:
            pe.set(FILT_ERR_FIELD_NOT_FOUND, pos + i)
            raise _Fail(-errno.EINVAL)
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
        op = -1
        for n, o in enumerate(OPS):
            if s.startswith(o, start + i):
                op = n
                break
        if op < 0:
            pe.set(FILT_ERR_INVALID_OP, pos + i)
            raise _Fail(-errno.EINVAL)
        i += len(OPS[op])
        while isspace(ch(i)):
            i += 1
        b = i

        def fail(err: int, at: int) -> None:
            pe.set(err, at)
            raise _Fail(-errno.EINVAL)

        if function:
            if field.size != 8:
                fail(FILT_ERR_ILLEGAL_FIELD_OP, pos + i)
            if op not in (OP_NE, OP_EQ):
                fail(FILT_ERR_INVALID_OP, pos + i)
            if isdigit(ch(i)):
                while isalnum(ch(i)):
                    i += 1
                if i - b >= 24:
                    fail(FILT_ERR_OPERAND_TOO_LONG, pos + i)
                ip = _kstrto(s[start + b:start + i], False)
                if ip is None:
                    fail(FILT_ERR_INVALID_VALUE, pos + i)
            else:
                b = i
                while ch(i) and not isspace(ch(i)):
                    i += 1
                ip = k.kallsyms.addr_of(s[start + b:start + i]) if k is not None else 0
                if not ip:
                    fail(FILT_ERR_NO_FUNCTION, pos + i)
            assert ip is not None
            look = k.kallsyms.lookup_addr(ip) if k is not None else None
            if look is None:
                fail(FILT_ERR_NO_FUNCTION, pos + i)
            assert look is not None
            lo = ip - look[1]
            hi = lo + look[2]
            off = field.offset
            eq = op == OP_EQ
            u64 = struct.Struct("<Q")

            def p_func(buf: Any, o: int) -> bool:
                a = u64.unpack_from(buf, o + off)[0]
                return (lo <= a < hi) == eq
            return i, p_func
        if s.startswith("CPUS", start + i):
            ft = field.filter_type
            if ft not in (FILTER_CPUMASK, FILTER_CPU, FILTER_OTHER):
                fail(FILT_ERR_ILLEGAL_FIELD_OP, pos + i)
            if op not in (OP_EQ, OP_NE, OP_BAND):
                fail(FILT_ERR_ILLEGAL_FIELD_OP, pos + i)
            i += 4
            c = ch(i)
            i += 1
            if c != "{":
                fail(FILT_ERR_MISSING_BRACE_OPEN, pos + i)
            maskstart = i
            while ch(i) and ch(i) != "}":
                i += 1
            if ch(i) != "}":
                fail(FILT_ERR_MISSING_BRACE_CLOSE, pos + i)
            if maskstart == i:
                fail(FILT_ERR_INVALID_CPULIST, pos + i)
            mask = _cpulist_parse(s[start + maskstart:start + i])
            if mask is None:
                fail(FILT_ERR_INVALID_CPULIST, pos + i)
            assert mask is not None
            i += 1
            single = len(mask) == 1
            cur = (lambda: k.sched.cpu) if k is not None else (lambda: 0)
            nr = k.nr_cpus if k is not None else 1
            if ft == FILTER_CPUMASK:
                getm = _cpumask_reader(field)
                if single:
                    (cpu1,) = tuple(mask)

                    def p_mcpu(buf: Any, o: int) -> bool:
                        m = getm(buf, o)
                        if op == OP_EQ:
                            return m == {cpu1}
                        if op == OP_NE:
                            return m != {cpu1}
                        return cpu1 in m
                    return i, p_mcpu

                def p_mm(buf: Any, o: int) -> bool:
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

            def p_scm(buf: Any, o: int) -> bool:
                cpu = ust.unpack_from(buf, o + foff)[0]
                if cpu >= nr:
                    return False
                return _scalar_cpumask(op, cpu, mask)
            return i, p_scm
        c = ch(i)
        if c in ("'", '"') and c:
            q = c
            not_ = False
            if op == OP_NE:
                not_ = True
            elif op not in (OP_GLOB, OP_EQ):
                fail(FILT_ERR_ILLEGAL_FIELD_OP, pos + i)
            if not _is_string_field(field):
                fail(FILT_ERR_EXPECT_DIGIT, pos + i)
            i += 1
            while ch(i) and ch(i) != q:
                i += 1
            if not ch(i):
                fail(FILT_ERR_MISSING_QUOTE, pos + i)
            b += 1
            if i - b >= MAX_FILTER_STR_VAL:
                fail(FILT_ERR_OPERAND_TOO_LONG, pos + i)
            match, gnot = _regex(s[start + b:start + i], op)
            not_ = not_ or gnot
            i += 1
            ft = field.filter_type
            foff = field.offset
            if ft == FILTER_COMM:
                def p_comm(buf: Any, o: int) -> bool:
                    comm = k.sched.current.comm.encode("utf-8", "replace")[:TASK_COMM_LEN - 1] if k else b""
                    return match(comm.ljust(TASK_COMM_LEN, b"\0"), TASK_COMM_LEN) ^ not_
                return i, p_comm
            if ft == FILTER_STATIC_STRING:
                fsize = field.size
                if not fsize:   # char buf[] (ftrace print): NUL-terminated, as len 0 means
                    def p_str0(buf: Any, o: int) -> bool:
                        raw = bytes(buf[o + foff:])
                        raw = raw[:raw.find(b"\0")] if b"\0" in raw else raw
                        return match(raw, len(raw)) ^ not_
                    return i, p_str0
                return i, lambda buf, o: match(bytes(buf[o + foff:o + foff + fsize]), fsize) ^ not_
            if ft in (FILTER_DYN_STRING, FILTER_RDYN_STRING):
                rel = ft == FILTER_RDYN_STRING
                u32 = struct.Struct("<I")

                def p_loc(buf: Any, o: int) -> bool:
                    item = u32.unpack_from(buf, o + foff)[0]
                    loc, ln = item & 0xFFFF, item >> 16
                    if rel:
                        loc += foff + 4
                    return match(bytes(buf[o + loc:o + loc + ln]), ln) ^ not_
                return i, p_loc
            # a char * into kernel/user memory: the simulation cannot read it
            return i, lambda buf, o: False
        if isdigit(c) or c == "-":
            if _is_string_field(field):
                fail(FILT_ERR_EXPECT_STRING, pos + i)
            if op == OP_GLOB:
                fail(FILT_ERR_ILLEGAL_FIELD_OP, pos + i)
            if c == "-":
                i += 1
            while isalnum(ch(i)):
                i += 1
            if i - b >= 24:
                fail(FILT_ERR_OPERAND_TOO_LONG, pos + i)
            val = _kstrto(s[start + b:start + i], field.is_signed)
            if val is None:
                fail(FILT_ERR_ILLEGAL_INTVAL, pos + b)
            assert val is not None
            if field.filter_type == FILTER_CPU:
                v = val
                return i, lambda buf, o: _cmp_cpu(op, k.sched.cpu if k else 0, _s32(v))
            return i, _scalar_pred(field, op, val, op == OP_NE)
        fail(FILT_ERR_INVALID_VALUE, pos + i)
        raise AssertionError  # unreachable


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


def _cpumask_reader(field: Field) -> Callable[[Any, int], set[int]]:
    u32 = struct.Struct("<I")
    foff = field.offset

    def get(buf: Any, o: int) -> set[int]:
        item = u32.unpack_from(buf, o + foff)[0]
        loc, ln = item & 0xFFFF, item >> 16
        val = int.from_bytes(bytes(buf[o + loc:o + loc + ln]), "little")
        return {b for b in range(ln * 8) if val >> b & 1}
    return get


def _is_string_field(f: Field) -> bool:
    return f.filter_type in (FILTER_DYN_STRING, FILTER_RDYN_STRING, FILTER_STATIC_STRING,
                             FILTER_PTR_STRING, FILTER_COMM)


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
            pe.set(FILT_ERR_TOO_MANY_PREDS, nxt)
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
                    pe.set(FILT_ERR_TOO_MANY_PREDS, nxt)
                    raise _Fail(ret)
            else:
                pe.set(FILT_ERR_TOO_MANY_PREDS, nxt)
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
                pe.set(FILT_ERR_TOO_MANY_CLOSE, ptr)
                raise _Fail(-1)
            stack.pop()
        if done:
            break
    if not done:
        if preds:
            pe.set(FILT_ERR_INVALID_FILTER, ptr)
            raise _Fail(-errno.EINVAL)
    if len(stack) != 1:
        pe.set(FILT_ERR_TOO_MANY_OPEN, ptr)
        raise _Fail(ret)
    N = len(preds)  # noqa: N806
    if not N:
        pe.set(FILT_ERR_NO_FILTER, ptr)
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

    def run(buf: Any, off: int) -> bool:
        # filter_match_preds(): a taken branch lands on target + 1 (the for loop's i++)
        i = 0
        while i < N:
            p, w, t = prog[i]
            if int(bool(p(buf, off))) == w:
                i = t
            i += 1
        return bool(final[i])
    return run


def process_preds(call: EventCall, text: str, pe: ParseError, kernel: Any) -> Pred:
    ret, parens, preds, index = calc_stack(text)
    if ret < 0:
        err = {-3: FILT_ERR_MISSING_QUOTE, -2: FILT_ERR_TOO_MANY_OPEN}.get(ret, FILT_ERR_TOO_MANY_CLOSE)
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
    if pe.lasterr > 0:
        out = f"{text}\n{'^':>{pos}}\nparse_error: {ERR_TEXT[pe.lasterr]}\n"
        if tr is not None:
            tr.log_err("event filter parse error", text, ERR_TEXT[pe.lasterr], pe.lasterr_pos)
    else:
        out = f"{text}\nError: ({pe.lasterr})\n"
        if tr is not None:
            tr.log_err("event filter parse error", text, ERR_TEXT[FILT_ERR_ERRNO], 0)
    return out


def create_filter(tr: TraceArray | None, call: EventCall, text: str, kernel: Any,
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
    """apply_subsystem_event_filter()."""
    from .trace_events import Subsystem

    inst = events.inst(tr)
    files = [f for c, f in inst.files.items() if c.system == system]
    if not files:
        raise KernelError(errno.ENODEV)
    sub = inst.systems.setdefault(system, Subsystem(system))
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
            pe.set(FILT_ERR_BAD_SUBSYS_FILTER, 0)
            shown = append_filter_err(tr, pe, text)
            f.filter = EventFilter(shown)
            continue
        f.flags |= EVENT_FILE_FL_FILTERED
        f.filter = EventFilter(text, pred)
    # System filters just show the default message once applied.
    sub.filter_text = None


def compile_filter(call: EventCall, text: str, kernel: Any = None) -> Pred:
    """A predicate for ``text`` or KernelError (no error_log): trigger filters, tests."""
    flt, err = create_filter(None, call, text, kernel, set_str=False)
    if err or flt.pred is None:
        raise KernelError(errno.EINVAL if err >= -1 else -err)
    return flt.pred
