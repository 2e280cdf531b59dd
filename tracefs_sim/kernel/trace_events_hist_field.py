"""The hist_field expression tree of trace_events_hist.c: one node per key, value,
variable, expression, constant or variable reference; its name and print forms; and
hist_fn_call(), the value of a node for one event record.

Expressions keep the kernel's shape: the operator found last (``strrchr``, see
contains_operator()) is the root, so operators of equal precedence evaluate left to
right; constants fold at parse time; division by a constant uses the kernel's
multiply-and-shift (its results can differ by one from ``//``: 100/3 is 34).
Values are u64 (``int`` masked to 64 bits) or, for string fields, the bytes up to NUL.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from .lib import MASK64
from .trace_events_filter import MAX_FILTER_STR_VAL, is_string_field
from .trace_events_h import (
    FILTER_DYN_STRING,
    FILTER_PTR_STRING,
    FILTER_RDYN_STRING,
    FILTER_STACKTRACE,
    FILTER_STATIC_STRING,
    Field,
)

if TYPE_CHECKING:
    from .trace_events_hist_data import HistData

HIST_STACKTRACE_DEPTH = 16
HIST_STACKTRACE_SIZE = HIST_STACKTRACE_DEPTH * 8
HIST_KEY_SIZE_MAX = MAX_FILTER_STR_VAL + HIST_STACKTRACE_SIZE
HIST_DIV_SHIFT = 20

# enum hist_field_flags, in the kernel's bit order
(FL_HITCOUNT, FL_KEY, FL_STRING, FL_HEX, FL_SYM, FL_SYM_OFFSET, FL_EXECNAME, FL_SYSCALL,
 FL_STACKTRACE, FL_LOG2, FL_TIMESTAMP, FL_TIMESTAMP_USECS, FL_VAR, FL_EXPR, FL_VAR_REF,
 FL_CPU, FL_ALIAS, FL_BUCKET, FL_CONST, FL_PERCENT, FL_GRAPH) = (1 << i for i in range(21))

# enum field_op_id
OP_NONE, OP_PLUS, OP_MINUS, OP_UNARY_MINUS, OP_DIV, OP_MULT = range(6)
_OP_CHAR = {OP_PLUS: "+", OP_MINUS: "-", OP_DIV: "/", OP_MULT: "*"}

# the division functions chosen at parse time for a constant divisor
DIV_POWER2, DIV_MULT_SHIFT, DIV_NOT_POWER2 = "power2", "mult_shift", "not_power2"

# (timestamp, cpu, clock in ns) of the record being evaluated
HistCtx = tuple[int, int, bool]
HistValue = int | bytes

_INT_READ = {(1, False): struct.Struct("<B"), (1, True): struct.Struct("<b"),
             (2, False): struct.Struct("<H"), (2, True): struct.Struct("<h"),
             (4, False): struct.Struct("<I"), (4, True): struct.Struct("<i"),
             (8, False): struct.Struct("<Q"), (8, True): struct.Struct("<q")}
_U32 = struct.Struct("<I")


class HistField:
    """``struct hist_field``: a key, value, variable, expression, constant or reference."""

    __slots__ = ("field", "flags", "buckets", "type", "size", "offset", "is_signed",
                 "operands", "hist", "var_name", "var_idx", "operator", "name",
                 "constant", "div_fn", "div_mult", "system", "event_name", "read_once",
                 "var_ref_idx", "ref_var")

    def __init__(self, hist: HistData, fld: Field | None, flags: int,
                 var_name: str | None = None) -> None:
        self.hist = hist
        self.field = fld
        self.flags = flags
        self.buckets = 0
        self.type = ""
        self.size = 0
        self.offset = 0
        self.is_signed = False
        self.operands: list[HistField] = []
        self.var_name = var_name
        self.var_idx = -1
        self.operator = OP_NONE
        self.name: str | None = None
        self.constant = 0
        self.div_fn = ""
        self.div_mult = 0
        self.system: str | None = None
        self.event_name: str | None = None
        self.read_once = False
        self.var_ref_idx = 0
        self.ref_var: HistField | None = None    # the variable a VAR_REF points to


def create_hist_field(hist: HistData, fld: Field | None, flags: int,
                      var_name: str | None = None) -> HistField:
    """create_hist_field(): type and size of a field (its value function is
    hist_fn_call()'s dispatch on the flags)."""
    hf = HistField(hist, fld, flags, var_name)
    if flags & (FL_EXPR | FL_ALIAS | FL_VAR_REF):
        return hf
    if flags & (FL_HITCOUNT | FL_CONST):
        hf.size, hf.type = 8, "u64"
    elif flags & FL_STACKTRACE:
        hf.size, hf.type = HIST_STACKTRACE_SIZE, "unsigned long[]"
    elif flags & (FL_LOG2 | FL_BUCKET):
        inner = create_hist_field(hist, fld, flags & ~(FL_LOG2 | FL_BUCKET))
        hf.operands = [inner]
        hf.size, hf.type, hf.is_signed = inner.size, inner.type, inner.is_signed
    elif flags & FL_TIMESTAMP:
        hf.size, hf.type = 8, "u64"
    elif flags & FL_CPU:
        hf.size, hf.type = 4, "unsigned int"
    elif fld is not None:
        if is_string_field(fld) and fld.filter_type != FILTER_PTR_STRING:
            hf.flags |= FL_STRING
            hf.type = fld.type
            hf.size = fld.size if fld.filter_type == FILTER_STATIC_STRING else MAX_FILTER_STR_VAL
        elif fld.filter_type == FILTER_STACKTRACE:
            hf.flags |= FL_STACKTRACE
            hf.size, hf.type = MAX_FILTER_STR_VAL, fld.type
        else:
            hf.size, hf.is_signed, hf.type = fld.size, fld.is_signed, fld.type
    return hf


def has_var_refs(hf: HistField, level: int = 0) -> bool:
    if level > 3:
        return False
    if hf.flags & FL_VAR_REF:
        return True
    return any(has_var_refs(o, level + 1) for o in hf.operands)


# ----------------------------------------------------------------------------- names
_FLAG_NAMES = ((FL_HEX, "hex"), (FL_SYM, "sym"), (FL_SYM_OFFSET, "sym-offset"),
               (FL_EXECNAME, "execname"), (FL_SYSCALL, "syscall"), (FL_LOG2, "log2"),
               (FL_BUCKET, "buckets"), (FL_TIMESTAMP_USECS, "usecs"),
               (FL_PERCENT, "percent"), (FL_GRAPH, "graph"), (FL_STACKTRACE, "stacktrace"))


def field_flags_str(hf: HistField) -> str | None:
    """get_hist_field_flags()."""
    f = hf.flags
    for bit, text in _FLAG_NAMES:
        if f & bit:
            return text
    return None


def field_name(hf: HistField, level: int = 0) -> str:
    """hist_field_name()."""
    if level > 1:
        return ""
    if hf.field is not None:
        return hf.field.name
    f = hf.flags
    if f & (FL_LOG2 | FL_ALIAS | FL_BUCKET):
        return field_name(hf.operands[0], level + 1) if hf.operands else ""
    if f & FL_CPU:
        return "common_cpu"
    if f & (FL_EXPR | FL_VAR_REF):
        if hf.system:
            fmt = "{}.{}.${}" if f & FL_VAR_REF else "{}.{}.{}"
            return fmt.format(hf.system, hf.event_name, hf.name)
        return hf.name or ""
    if f & FL_TIMESTAMP:
        return "common_timestamp"
    if f & FL_STACKTRACE:
        return "common_stacktrace"
    if f & FL_HITCOUNT:
        return "hitcount"
    return ""


def _expr_field_str(hf: HistField) -> str:
    s = ""
    if hf.flags & FL_VAR_REF:
        if not hf.system:
            s += "$"
    elif hf.flags & FL_CONST:
        s += str(hf.constant)
    s += field_name(hf)
    if hf.flags and not hf.flags & FL_VAR_REF:
        fl = field_flags_str(hf)
        if fl:
            s += "." + fl
    return s


def expr_str(hf: HistField, level: int = 0) -> str:
    """expr_str(): the name an expression prints as (one level of operands)."""
    if not hf.operands:
        return _expr_field_str(hf)
    if hf.operator == OP_UNARY_MINUS:
        return f"-({expr_str(hf.operands[0], level + 1)})"
    return (_expr_field_str(hf.operands[0]) + _OP_CHAR.get(hf.operator, "")
            + _expr_field_str(hf.operands[1]))


def field_print(hf: HistField) -> str:
    """hist_field_print(): a key, value or variable in the trigger's text."""
    s = f"{hf.var_name}=" if hf.var_name else ""
    name = field_name(hf)
    if hf.flags & FL_CPU:
        s += "common_cpu"
    elif hf.flags & FL_CONST:
        s += str(hf.constant)
    elif name:
        if hf.flags & (FL_VAR_REF | FL_ALIAS) and not hf.system:
            s += "$"
        s += name
    elif hf.flags & FL_TIMESTAMP:
        s += "common_timestamp"
    if hf.flags and not hf.flags & (FL_VAR_REF | FL_EXPR | FL_STACKTRACE):
        fl = field_flags_str(hf)
        if fl:
            s += "." + fl
    if hf.buckets:
        s += f"={hf.buckets}"
    return s


def contains_operator(s: str) -> tuple[int, int]:
    """contains_operator(): (operator, index of the root operator) — the last one of the
    lowest precedence, so that equal precedence evaluates left to right."""
    minus = s.rfind("-")
    op = OP_NONE
    if minus >= 0:
        if minus == 0:
            return OP_UNARY_MINUS, 0
        op = OP_MINUS
    plus = s.rfind("+")
    if plus >= 0 or minus >= 0:
        if plus > minus:
            return OP_PLUS, plus
        return OP_MINUS, minus
    div = s.rfind("/")
    if div >= 0:
        op = OP_DIV
    mult = s.rfind("*")
    if mult > div:
        return OP_MULT, mult
    return op, (div if op == OP_DIV else -1)


# ----------------------------------------------------------------------------- values
def hist_fn_call(hf: HistField, rec: bytes | bytearray | None, ctx: HistCtx | None,
                 ref_vals: list[HistValue] | None = None) -> HistValue:
    """hist_fn_call(): the u64 (or string bytes) of a field for one record; ``rec`` and
    ``ctx`` are None when a constant expression folds at parse time."""
    f = hf.flags
    if f & FL_CONST and not hf.operands:
        return hf.constant
    if f & FL_HITCOUNT:
        return 1
    if f & FL_VAR_REF:
        return ref_vals[hf.var_ref_idx] if ref_vals and hf.var_ref_idx < len(ref_vals) else 0
    if f & FL_ALIAS:
        return hist_fn_call(hf.operands[0], rec, ctx, ref_vals)
    if hf.operands:
        a = hist_fn_call(hf.operands[0], rec, ctx, ref_vals)
        assert isinstance(a, int)
        if f & (FL_LOG2 | FL_BUCKET) and not f & (FL_EXPR | FL_CONST):
            if f & FL_LOG2:
                return 0 if a <= 1 else (a - 1).bit_length()     # order_base_2()
            return (a // hf.buckets) * hf.buckets
        if hf.operator == OP_UNARY_MINUS:
            return (-a) & MASK64
        b = hist_fn_call(hf.operands[1], rec, ctx, ref_vals)
        assert isinstance(b, int)
        op = hf.operator
        if op == OP_PLUS:
            return (a + b) & MASK64
        if op == OP_MINUS:
            return (a - b) & MASK64
        if op == OP_MULT:
            return (a * b) & MASK64
        return _div(hf, a, b)
    if f & FL_TIMESTAMP:
        if ctx is None:
            return 0
        ts, _cpu, in_ns = ctx
        if hf.hist.attrs.ts_in_usecs and in_ns:
            ts //= 1000
        return ts
    if f & FL_CPU:
        return ctx[1] if ctx is not None else 0
    fld = hf.field
    if fld is None or rec is None:
        return 0
    if f & FL_STRING:
        return read_string(fld, rec)
    rd = _INT_READ.get((fld.size, fld.is_signed))
    if rd is None:
        return 0
    return rd.unpack_from(rec, fld.offset)[0] & MASK64


def _div(hf: HistField, a: int, b: int) -> int:
    """div_by_power_of_two / div_by_mult_and_shift / div_by_not_power_of_two."""
    op2 = hf.operands[1]
    if hf.div_fn == DIV_POWER2:
        return a >> (op2.constant.bit_length() - 1)
    if hf.div_fn == DIV_MULT_SHIFT:
        if a < (1 << HIST_DIV_SHIFT):
            return ((a * op2.div_mult) + ((1 << HIST_DIV_SHIFT) - 1) >> HIST_DIV_SHIFT) & MASK64
        return a // op2.constant
    if hf.div_fn == DIV_NOT_POWER2:
        return a // op2.constant
    return a // b if b else MASK64


def read_string(fld: Field, rec: bytes | bytearray) -> bytes:
    """A string field's bytes up to the NUL: static, ``__data_loc`` or ``__rel_loc``."""
    if fld.filter_type in (FILTER_DYN_STRING, FILTER_RDYN_STRING):
        (loc,) = _U32.unpack_from(rec, fld.offset)
        off, ln = loc & 0xFFFF, loc >> 16
        if fld.filter_type == FILTER_RDYN_STRING:
            off += fld.offset + fld.size
        raw = bytes(rec[off:off + ln])
    elif fld.size:
        raw = bytes(rec[fld.offset:fld.offset + fld.size])
    else:                       # char buf[]: to the NUL
        raw = bytes(rec[fld.offset:])
    nul = raw.find(b"\0")
    return raw if nul < 0 else raw[:nul]
