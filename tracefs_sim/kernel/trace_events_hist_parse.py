"""Parsing a hist trigger's spec into its ``HistData`` (trace_events_hist.c
parse_hist_trigger_attrs() and create_hist_data() without the actions)::

    hist:[name=NAME:]keys=K[,K..][:vals=V[,V..]][:VAR=EXPR[,..]][:sort=S[,S]][:size=N]
         [:clock=C][:nohitcount][:pause|:cont|:clear][:ACTION..] [if FILTER]

The fields come out as the kernel orders them (hitcount, values, variables, keys) and
get their tracing_map fields in that order (create_tracing_map_fields()); expressions
are parsed by parse_expr() into the hist_field tree of trace_events_hist_field.py.
Variable references are found by (system, event, name) across the histograms of the
trace array (find_event_var()).

A failure logs through ``HistLog`` and raises ``HistError(-errno)``, which the hist
command's parse entry point turns into its -errno return.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from .lib import isdigit, kstrtoul, kstrtoull
from .trace_events_h import FILTER_CPU, FILTER_STACKTRACE, Field
from .trace_events_hist_data import HIST_ACTIONS_MAX, Attrs, HistData, HistErr, HistError, HistLog
from .trace_events_hist_field import (
    DIV_MULT_SHIFT,
    DIV_NOT_POWER2,
    DIV_POWER2,
    FL_ALIAS,
    FL_BUCKET,
    FL_CONST,
    FL_CPU,
    FL_EXECNAME,
    FL_EXPR,
    FL_GRAPH,
    FL_HEX,
    FL_HITCOUNT,
    FL_KEY,
    FL_LOG2,
    FL_PERCENT,
    FL_STACKTRACE,
    FL_STRING,
    FL_SYM,
    FL_SYM_OFFSET,
    FL_SYSCALL,
    FL_TIMESTAMP,
    FL_TIMESTAMP_USECS,
    FL_VAR,
    FL_VAR_REF,
    HIST_DIV_SHIFT,
    HIST_KEY_SIZE_MAX,
    HIST_STACKTRACE_SIZE,
    OP_DIV,
    OP_NONE,
    OP_UNARY_MINUS,
    HistField,
    contains_operator,
    create_hist_field,
    expr_str,
    field_name,
    has_var_refs,
    hist_fn_call,
)
from .tracing_map import (
    TRACING_MAP_BITS_MAX,
    TRACING_MAP_BITS_MIN,
    TRACING_MAP_KEYS_MAX,
    TRACING_MAP_SORT_KEYS_MAX,
    TRACING_MAP_VALS_MAX,
    TRACING_MAP_VARS_MAX,
    cmp_none,
    cmp_num,
    cmp_string,
)

if TYPE_CHECKING:
    from .trace import TraceArray
    from .trace_events import TraceEvents

# parse_field()'s plain modifiers
_MODIFIERS = {"hex": FL_HEX, "sym": FL_SYM, "symXoffset": FL_SYM_OFFSET,
              "syscall": FL_SYSCALL, "log2": FL_LOG2, "usecs": FL_TIMESTAMP_USECS}
# the common fields that are no event field
_COMMON_FLAGS = {"common_stacktrace": FL_STACKTRACE, "common_cpu": FL_CPU,
                 "hitcount": FL_HITCOUNT}


def separate_filter(text: str) -> tuple[str | None, str | None]:
    """``k:v [if filter]``: the first `` if `` word (blank before and after)."""
    p = 0
    while True:
        p = text.find("if", p)
        if p < 0:
            return text, None
        if p == 0:
            return None, None
        if text[p - 1] not in " \t":
            p += 1
            continue
        if p >= len(text) - 2 - 1:
            return None, None
        if text[p + 2] not in " \t":
            p += 1
            continue
        return text[:p - 1].strip(), text[p:].strip()[2:].strip()


class HistParser:
    """The hist trigger parser of one kernel: spec → fields, sort keys, map fields."""

    def __init__(self, events: TraceEvents, log: HistLog) -> None:
        self.events = events
        self.log = log

    def err(self, hist: HistData, err: HistErr, text: str | None = None) -> None:
        self.log.err(hist.tr, err, text)

    # ------------------------------------------------------------------ attrs
    def parse_attrs(self, tr: TraceArray, param: str) -> Attrs:
        """parse_hist_trigger_attrs()."""
        attrs = Attrs()
        for s in param.split(":"):
            eq = s.find("=")
            if eq >= 0:
                if not s[eq + 1:]:
                    self.log.err(tr, HistErr.EMPTY_ASSIGNMENT, s)
                    raise HistError(-errno.EINVAL)
                self._parse_assignment(tr, s, attrs)
            elif s in ("nohitcount", "NOHC"):
                attrs.no_hitcount = True
            elif s == "pause":
                attrs.pause = True
            elif s in ("cont", "continue"):
                attrs.cont = True
            elif s == "clear":
                attrs.clear = True
            elif (s.startswith(("onmatch(", "onmax(", "onchange("))
                  and len(attrs.actions) < HIST_ACTIONS_MAX):
                attrs.actions.append(s)
            else:
                raise HistError(-errno.EINVAL)
        if attrs.keys_str is None:
            raise HistError(-errno.EINVAL)
        return attrs

    def _parse_assignment(self, tr: TraceArray, s: str, attrs: Attrs) -> None:
        """parse_assignment()."""
        for pre in ("key=", "keys="):
            if s.startswith(pre):
                attrs.keys_str = s[len(pre):]
                return
        for pre in ("val=", "vals=", "values="):
            if s.startswith(pre):
                attrs.vals_str = s[len(pre):]
                return
        if s.startswith("sort="):
            attrs.sort_key_str = s[5:]
        elif s.startswith("name="):
            attrs.name = s
        elif s.startswith("clock="):
            attrs.clock = s[6:].strip()
        elif s.startswith("size="):
            attrs.map_bits = self._parse_map_size(s[5:])
        else:
            if len(attrs.assignments) == TRACING_MAP_VARS_MAX:
                self.log.err(tr, HistErr.TOO_MANY_VARS, s)
                raise HistError(-errno.EINVAL)
            attrs.assignments.append(s)

    @staticmethod
    def _parse_map_size(s: str) -> int:
        """parse_map_size(): the map's bits for a size rounded up to a power of two."""
        err, size = kstrtoull(s, 0)
        if err:
            raise HistError(-errno.EINVAL)
        bits = max(0, (size - 1).bit_length()) if size else 0
        if not TRACING_MAP_BITS_MIN <= bits <= TRACING_MAP_BITS_MAX:
            raise HistError(-errno.EINVAL)
        return bits

    # ------------------------------------------------------------------ fields
    def create_fields(self, hist: HistData) -> None:
        """The field part of create_hist_data(): variables' definitions, values,
        variables, keys, sort keys, then the map's fields."""
        self._parse_var_defs(hist)
        self._create_val_fields(hist)
        for name, expr in hist.var_defs:
            self._create_var_field(hist, name, expr)
        self._create_key_fields(hist)
        self._create_sort_keys(hist)
        self._create_tracing_map_fields(hist)

    @staticmethod
    def _create_tracing_map_fields(hist: HistData) -> None:
        """create_tracing_map_fields(): keys and sums get map field indices in order
        (what sort keys index); variables get element slots."""
        m = hist.map
        pos = 0
        for hf in hist.fields:
            if hf.flags & FL_VAR:
                hf.var_idx = m.add_var()
                hist.sum_of.append(-1)
            elif hf.flags & FL_KEY:
                if hf.flags & FL_STRING:
                    cmp = cmp_string
                elif hf.flags & FL_STACKTRACE:
                    cmp = cmp_none
                else:
                    fld = hf.field
                    size = fld.size if fld is not None and not hf.flags & FL_CPU else hf.size
                    cmp = cmp_num(size, fld.is_signed if fld is not None else hf.is_signed)
                m.add_key_field(pos, cmp)
                pos += 1
                hist.sum_of.append(-1)
            else:
                hist.sum_of.append(m.fields[m.add_sum_field()].idx)

    def _parse_var_defs(self, hist: HistData) -> None:
        for s in hist.attrs.assignments:
            for part in s.split(","):
                name, eq, expr = part.partition("=")
                if not eq:
                    self.err(hist, HistErr.MALFORMED_ASSIGNMENT, name)
                    raise HistError(-errno.EINVAL)
                if len(hist.var_defs) == TRACING_MAP_VARS_MAX:
                    self.err(hist, HistErr.TOO_MANY_VARS, name)
                    raise HistError(-errno.EINVAL)
                hist.var_defs.append((name, expr))

    def _create_val_fields(self, hist: HistData) -> None:
        hist.fields.append(create_hist_field(hist, None, FL_HITCOUNT))
        hist.n_vals = 1
        j = 1
        vals = hist.attrs.vals_str
        if vals is not None:
            parts = vals.split(",")
            n_hitcount = 0
            i = 0
            while i < len(parts) and i < TRACING_MAP_VALS_MAX and j < TRACING_MAP_VALS_MAX:
                s = parts[i]
                i += 1
                if s == "hitcount":
                    n_hitcount += 1
                    if n_hitcount == 1:
                        continue
                self._create_val_field(hist, s, None, 0)
                j += 1
            rest = parts[i:]
            if rest and ",".join(rest) != "hitcount":
                raise HistError(-errno.EINVAL)
        if j == 1 and hist.attrs.no_hitcount:
            self.err(hist, HistErr.NEED_NOHC_VAL)
            raise HistError(-errno.ENOENT)

    def _create_val_field(self, hist: HistData, s: str, var_name: str | None, flags: int) -> None:
        """__create_val_field()."""
        hf = self.parse_expr(hist, s, flags, var_name, [0])
        if hf.flags & FL_VAR:
            bad = hf.flags & (FL_GRAPH | FL_PERCENT | FL_BUCKET | FL_LOG2)
        else:
            bad = hf.flags & (FL_BUCKET | FL_LOG2 | FL_SYM | FL_SYM_OFFSET | FL_SYSCALL
                              | FL_STACKTRACE)
        if bad:
            self.err(hist, HistErr.BAD_FIELD_MODIFIER, s)
            raise HistError(-errno.EINVAL)
        hist.fields.append(hf)
        hist.n_vals += 1

    def _create_var_field(self, hist: HistData, name: str, expr: str) -> None:
        if find_var_field(hist, name) is not None and not hist.remove:
            self.err(hist, HistErr.DUPLICATE_VAR, name)
            raise HistError(-errno.EINVAL)
        if not hist.remove and self._find_var_on_file(hist, name) is not None:
            self.err(hist, HistErr.DUPLICATE_VAR, name)
            raise HistError(-errno.EINVAL)
        hist.n_vars += 1
        self._create_val_field(hist, expr, name, FL_VAR)

    def _create_key_fields(self, hist: HistData) -> None:
        assert hist.attrs.keys_str is not None
        parts = hist.attrs.keys_str.split(",")
        if len(parts) > TRACING_MAP_KEYS_MAX:
            raise HistError(-errno.EINVAL)
        offset = 0
        for s in parts:
            if s == "stacktrace":
                hf = create_hist_field(hist, None, FL_KEY | FL_STACKTRACE)
                size = HIST_STACKTRACE_SIZE
            else:
                hf = self.parse_expr(hist, s, FL_KEY, None, [0])
                if has_var_refs(hf):
                    self.err(hist, HistErr.INVALID_REF_KEY, s)
                    raise HistError(-errno.EINVAL)
                size = hf.size
            size = (size + 7) & ~7
            hf.size = size
            hf.offset = offset
            offset += size
            hist.key_size += size
            if hist.key_size > HIST_KEY_SIZE_MAX:
                raise HistError(-errno.EINVAL)
            hist.fields.append(hf)
            hist.n_keys += 1

    def _create_sort_keys(self, hist: HistData) -> None:
        s = hist.attrs.sort_key_str
        hist.sort_keys = [(0, False)]
        if s is None:
            return
        parts = s.split(",")
        keys: list[tuple[int, bool]] = []
        for i, fs in enumerate(parts):
            if i >= TRACING_MAP_SORT_KEYS_MAX:
                break
            if not fs:
                self.err(hist, HistErr.EMPTY_SORT_FIELD, "sort=")
                raise HistError(-errno.EINVAL)
            if i == TRACING_MAP_SORT_KEYS_MAX - 1 and i + 1 < len(parts):
                self.err(hist, HistErr.TOO_MANY_SORT_FIELDS, "sort=")
                raise HistError(-errno.EINVAL)
            name, dot, mod = fs.partition(".")
            modifier = mod if dot else None
            if not name:
                self.err(hist, HistErr.EMPTY_SORT_FIELD, "sort=")
                raise HistError(-errno.EINVAL)
            if name == "hitcount":
                keys.append((0, self._is_descending(hist, modifier)))
                continue
            k = 1
            for hf in hist.fields[1:]:
                if hf.flags & FL_VAR:
                    continue
                idx = k
                k += 1
                if name == field_name(hf):
                    keys.append((idx, self._is_descending(hist, modifier)))
                    break
            else:
                self.err(hist, HistErr.INVALID_SORT_FIELD, name)
                raise HistError(-errno.EINVAL)
        hist.sort_keys = keys

    def _is_descending(self, hist: HistData, mod: str | None) -> bool:
        if mod is None or mod == "ascending":
            return False
        if mod == "descending":
            return True
        self.err(hist, HistErr.INVALID_SORT_MODIFIER, mod)
        raise HistError(-errno.EINVAL)

    # ------------------------------------------------------------------ expressions
    def parse_expr(self, hist: HistData, s: str, flags: int, var_name: str | None,
                   n_sub: list[int]) -> HistField:
        """parse_expr(): ``n_sub`` counts sub-expressions (3 at most)."""
        if n_sub[0] > 3:
            self.err(hist, HistErr.TOO_MANY_SUBEXPR, s)
            raise HistError(-errno.EINVAL)
        op, sep = contains_operator(s)
        if op == OP_NONE:
            return self.parse_atom(hist, s, flags, var_name)
        if op == OP_UNARY_MINUS:
            return self._parse_unary(hist, s, flags, var_name, n_sub)
        n_sub[0] += 1
        left, right = s[:sep], s[sep + 1:]
        if not left or not right:
            raise HistError(-errno.EINVAL)
        op1 = self._operand(hist, left, n_sub)
        op2 = self._operand(hist, right, n_sub)
        var1 = op1.ref_var if op1.flags & (FL_VAR_REF | FL_ALIAS) else None
        var2 = op2.ref_var if op2.flags & (FL_VAR_REF | FL_ALIAS) else None
        f1 = var1.flags if var1 is not None else op1.flags
        f2 = var2.flags if var2 is not None else op2.flags
        if (f1 & FL_TIMESTAMP_USECS) != (f2 & FL_TIMESTAMP_USECS):
            self.err(hist, HistErr.TIMESTAMP_MISMATCH)
            raise HistError(-errno.EINVAL)
        combine = bool(f1 & f2 & FL_CONST)
        flags |= FL_CONST if combine else FL_EXPR
        flags |= op1.flags & (FL_TIMESTAMP | FL_TIMESTAMP_USECS)
        expr = create_hist_field(hist, None, flags, var_name)
        op1.read_once = op2.read_once = True
        expr.operands = [op1, op2]
        expr.operator = op
        if op == OP_DIV and f2 & FL_CONST:
            divisor = var2.constant if var2 is not None else op2.constant
            if not divisor:
                self.err(hist, HistErr.DIVISION_BY_ZERO, right)
                raise HistError(-errno.EDOM)
            op2.constant = divisor
            if not divisor & (divisor - 1):
                expr.div_fn = DIV_POWER2
            elif divisor > (1 << HIST_DIV_SHIFT):
                expr.div_fn = DIV_NOT_POWER2
            else:
                expr.div_fn = DIV_MULT_SHIFT
                op2.div_mult = (1 << HIST_DIV_SHIFT) // divisor
        if combine:
            if var1 is not None:
                expr.operands[0] = var1
            if var2 is not None:
                expr.operands[1] = var2
            const = hist_fn_call(expr, None, None, None)
            assert isinstance(const, int)
            expr.constant = const
            expr.operands = []
            expr.operator = OP_NONE
            expr.name = expr_str(expr)
            expr.size, expr.type = 8, "u64"
        else:
            expr.size, expr.is_signed, expr.type = op1.size, op1.is_signed, op1.type
            expr.name = expr_str(expr)
        return expr

    def _operand(self, hist: HistData, s: str, n_sub: list[int]) -> HistField:
        """One side of a binary operator: no strings."""
        hf = self.parse_expr(hist, s, 0, None, n_sub)
        if hf.flags & FL_STRING:
            self.err(hist, HistErr.INVALID_STR_OPERAND, s)
            raise HistError(-errno.EINVAL)
        return hf

    def _parse_unary(self, hist: HistData, s: str, flags: int, var_name: str | None,
                     n_sub: list[int]) -> HistField:
        """parse_unary(): ``-(EXPR)``."""
        n_sub[0] += 1
        if n_sub[0] > 3:
            self.err(hist, HistErr.TOO_MANY_SUBEXPR, s)
            raise HistError(-errno.EINVAL)
        s = s[1:]
        if "(" not in s:
            raise HistError(-errno.EINVAL)
        s = s[1:]
        close = s.rfind(")")
        if close < 0:
            raise HistError(-errno.EINVAL)
        if close + 1 != len(s):
            self.err(hist, HistErr.UNARY_MINUS_SUBEXPR, s)
            raise HistError(-errno.EINVAL)
        inner_s = s[:close]
        expr = create_hist_field(hist, None, flags | FL_EXPR, var_name)
        op1 = self._operand(hist, inner_s, n_sub)
        expr.flags |= op1.flags & (FL_TIMESTAMP | FL_TIMESTAMP_USECS)
        expr.operands = [op1]
        expr.operator = OP_UNARY_MINUS
        expr.size, expr.is_signed, expr.type = op1.size, op1.is_signed, op1.type
        expr.name = expr_str(expr)
        return expr

    def parse_atom(self, hist: HistData, s: str, flags: int, var_name: str | None) -> HistField:
        """parse_atom(): a constant, a variable reference (or its alias) or a field."""
        if isdigit(s[:1]):
            err, v = kstrtoull(s, 0)
            if err:
                self.err(hist, HistErr.EXPECT_NUMBER, s)
                raise HistError(-errno.EINVAL)
            hf = create_hist_field(hist, None, flags | FL_CONST, var_name)
            hf.constant = v
            return hf
        ref_system = ref_event = None
        ref_var = s
        first = s.find(".")
        if first >= 0 and s.find(".", first + 1) >= 0:
            ref_system, rest = s.split(".", 1)
            ref_event, ref_var = rest.split(".", 1)
        local = self._local_field_var_ref(hist, ref_system, ref_event, ref_var)
        if local is None:
            ref = self.parse_var_ref(hist, ref_system, ref_event, ref_var)
            if ref is not None:
                if var_name:
                    alias = create_hist_field(hist, None, FL_ALIAS | FL_VAR, var_name)
                    alias.operands = [ref]
                    alias.ref_var = ref.ref_var
                    alias.system, alias.event_name = ref.system, ref.event_name
                    alias.var_ref_idx = ref.var_ref_idx
                    alias.type, alias.size = ref.type, ref.size
                    return alias
                return ref
        else:
            s = local
        fld, fflags, buckets = self._parse_field(hist, s, flags)
        hf = create_hist_field(hist, fld, fflags, var_name)
        hf.buckets = buckets
        return hf

    def _local_field_var_ref(self, hist: HistData, system: str | None, event: str | None,
                             var: str) -> str | None:
        """local_field_var_ref(): ``$var`` of this hist defined as a plain field."""
        if system and event:
            call = hist.file.call
            if system != call.system or event != call.name:
                return None
        if bool(system) != bool(event):
            return None
        if len(var) < 2 or var[0] != "$":
            return None
        for name, expr in hist.var_defs:
            if name == var[1:]:
                if contains_operator(expr)[0] != OP_NONE or (len(expr) >= 2 and expr[0] == "$"):
                    continue
                return expr
        return None

    def parse_var_ref(self, hist: HistData, system: str | None, event: str | None,
                      var: str) -> HistField | None:
        """parse_var_ref(): None when ``var`` is no ``$name``."""
        if len(var) < 2 or var[0] != "$":
            return None
        name = var[1:]
        target = self.find_event_var(hist, system, event, name)
        if target is None:
            self.err(hist, HistErr.VAR_NOT_FOUND, name)
            raise HistError(-errno.EINVAL)
        ref = create_hist_field(hist, None, FL_VAR_REF)
        ref.ref_var = target
        ref.name = name
        ref.system, ref.event_name = system, event
        ref.type, ref.size, ref.is_signed = target.type, target.size, target.is_signed
        ref.flags |= target.flags & (FL_TIMESTAMP | FL_TIMESTAMP_USECS | FL_STRING)
        for i, r in enumerate(hist.var_refs):
            if r.ref_var is target:
                ref.var_ref_idx = i
                return ref
        ref.var_ref_idx = len(hist.var_refs)
        hist.var_refs.append(ref)
        return ref

    def _parse_field(self, hist: HistData, s: str, flags: int) -> tuple[Field | None, int, int]:
        """parse_field(): NAME[.MODIFIER] as (event field, flags, buckets)."""
        name, dot, modifier = s.partition(".")
        stack_modifier = False
        buckets = 0
        if dot:
            if modifier in _MODIFIERS:
                flags |= _MODIFIERS[modifier]
            elif modifier == "execname" and name == "common_pid":
                flags |= FL_EXECNAME
            elif modifier == "stacktrace":
                flags |= FL_STACKTRACE
                stack_modifier = True
            elif modifier.startswith("bucket"):
                m = modifier[6:]
                if m.startswith("s"):
                    m = m[1:]
                err, buckets = kstrtoul(m[1:], 0) if m.startswith("=") else (-errno.EINVAL, 0)
                if err or not buckets:
                    self.err(hist, HistErr.BAD_FIELD_MODIFIER, modifier)
                    raise HistError(-errno.EINVAL)
                flags |= FL_BUCKET
            elif modifier.startswith(("percent", "graph")) and not flags & (FL_VAR | FL_KEY):
                flags |= FL_PERCENT if modifier.startswith("percent") else FL_GRAPH
            else:
                self.err(hist, HistErr.BAD_FIELD_MODIFIER, modifier)
                raise HistError(-errno.EINVAL)
        fld: Field | None = None
        if name == "common_timestamp":
            flags |= FL_TIMESTAMP
            hist.enable_timestamps = True
            if flags & FL_TIMESTAMP_USECS:
                hist.attrs.ts_in_usecs = True
        elif name in _COMMON_FLAGS:
            flags |= _COMMON_FLAGS[name]
        else:
            fld = hist.file.call.find_field(name)
            if fld is None or not fld.size:
                if fld is not None and fld.filter_type == FILTER_CPU:
                    flags |= FL_CPU
                elif fld is not None and fld.filter_type == FILTER_STACKTRACE:
                    flags |= FL_STACKTRACE
                    fld = None
                else:
                    self.err(hist, HistErr.FIELD_NOT_FOUND, name)
                    raise HistError(-errno.EINVAL)
        if stack_modifier and (fld is None or fld.filter_type != FILTER_STACKTRACE):
            self.err(hist, HistErr.BAD_FIELD_MODIFIER, s)
            raise HistError(-errno.EINVAL)
        if fld is not None and fld.filter_type == FILTER_CPU:
            flags |= FL_CPU
            fld = None
        return fld, flags, buckets

    # ------------------------------------------------------------------ variables
    def hist_datas(self, tr: TraceArray) -> list[HistData]:
        """The histograms of every event of the trace array."""
        out = []
        for file in list(self.events.inst(tr).files.values()):
            for t in file.triggers:
                if t.hist is not None:
                    out.append(t.hist)
        return out

    @staticmethod
    def _find_var_on_file(hist: HistData, name: str) -> HistField | None:
        """find_var(): a variable of this name in another hist on the same event."""
        for t in hist.file.triggers:
            h = t.hist
            if h is not None and h is not hist:
                hf = find_var_field(h, name)
                if hf is not None:
                    return hf
        return None

    def find_event_var(self, hist: HistData, system: str | None, event: str | None,
                       name: str) -> HistField | None:
        """find_event_var(): own hist, then any hist of the trace array (unique), or the
        named SYS.EVENT's."""
        if not system or not event:
            own = find_var_field(hist, name)
            if own is not None:
                return own
            found = [hf for h in self.hist_datas(hist.tr) if h is not hist
                     for hf in [find_var_field(h, name)] if hf is not None]
            if len(found) > 1:
                self.err(hist, HistErr.VAR_NOT_UNIQUE, name)
                return None
            if found:
                return found[0]
            return None
        for h in self.hist_datas(hist.tr):
            call = h.file.call
            if call.system == system and call.name == event:
                hf = find_var_field(h, name)
                if hf is not None:
                    return hf
        return None


def find_var_field(hist: HistData, name: str) -> HistField | None:
    """find_var_field(): a variable defined by ``hist``."""
    for hf in hist.fields[:hist.n_vals]:
        if hf.flags & FL_VAR and hf.var_name == name:
            return hf
    return None
