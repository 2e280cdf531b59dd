"""Histogram triggers (kernel/trace/trace_events_hist.c and tracing_map.c, 6.12).

``hist:[name=NAME:]keys=K[,K..][:vals=V[,V..]][:VAR=EXPR[,..]][:sort=S[,S]][:size=N]
[:clock=C][:nohitcount][:pause|:cont|:clear] [if FILTER]`` on an event's ``trigger``
file builds a ``HistData`` (the kernel's hist_trigger_data): ``fields`` holds hitcount,
the values and the variables first, then the keys, exactly as the kernel orders them,
because sort keys, ``vals=`` printing and named-trigger matching all index that array.
Every event record that passes the trigger's filter is reduced to a key (a tuple of the
key fields' values, standing for the kernel's compound key bytes) and updates one
element of a ``TracingMap`` (sums, variables, the comm for ``.execname``).

Expressions (``+ - * /``, unary ``-(..)``, constants, ``$var`` references,
``common_timestamp[.usecs]``, ``common_cpu``) follow parse_expr(): the operator found
last (``strrchr``) is the root so equal-precedence operators evaluate left to right,
at most three sub-expressions, constants fold at parse time and division by a constant
uses the kernel's multiply-and-shift (its results can differ by one from ``//``).

Errors go to error_log as ``hist:SYS:EVENT: error: TEXT`` with the command
``hist:PARAM`` and the caret at the first occurrence of the offending text in it
(err_pos() is a strstr).

Inter-event plumbing: variables live per element (``Elt.vars`` / ``Elt.var_set``),
``find_var()`` looks them up by (system, event, name) across the trace array's
histograms, and variable references are resolved against the element with the same
key in the defining histogram (resolve_var_refs()), an unset variable dropping the
event.  Actions (onmatch().trace()/synth(), onmax(), onchange(), save(), snapshot())
plug in at ``HistData.actions``: ``parse_actions`` keeps their text, ``run_actions``
is called after each element update with the resolved reference values.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import KernelError

if TYPE_CHECKING:
    from .core import Kernel
    from .trace_events import EventFile, Field

M64 = (1 << 64) - 1
# tracing_map.h / trace.h
TRACING_MAP_BITS_DEFAULT = 11
TRACING_MAP_BITS_MAX = 17
TRACING_MAP_BITS_MIN = 7
TRACING_MAP_KEYS_MAX = 3
TRACING_MAP_VALS_MAX = 3
TRACING_MAP_VARS_MAX = 16
TRACING_MAP_SORT_KEYS_MAX = 2
HIST_STACKTRACE_DEPTH = 16
HIST_STACKTRACE_SIZE = HIST_STACKTRACE_DEPTH * 8
MAX_FILTER_STR_VAL = 256
HIST_KEY_SIZE_MAX = MAX_FILTER_STR_VAL + HIST_STACKTRACE_SIZE
HIST_DIV_SHIFT = 20
HIST_ACTIONS_MAX = 8

# enum hist_field_flags
FL_HITCOUNT = 1 << 0
FL_KEY = 1 << 1
FL_STRING = 1 << 2
FL_HEX = 1 << 3
FL_SYM = 1 << 4
FL_SYM_OFFSET = 1 << 5
FL_EXECNAME = 1 << 6
FL_SYSCALL = 1 << 7
FL_STACKTRACE = 1 << 8
FL_LOG2 = 1 << 9
FL_TIMESTAMP = 1 << 10
FL_TIMESTAMP_USECS = 1 << 11
FL_VAR = 1 << 12
FL_EXPR = 1 << 13
FL_VAR_REF = 1 << 14
FL_CPU = 1 << 15
FL_ALIAS = 1 << 16
FL_BUCKET = 1 << 17
FL_CONST = 1 << 18
FL_PERCENT = 1 << 19
FL_GRAPH = 1 << 20

OP_NONE, OP_PLUS, OP_MINUS, OP_UNARY_MINUS, OP_DIV, OP_MULT = range(6)
_OP_CHAR = {OP_PLUS: "+", OP_MINUS: "-", OP_DIV: "/", OP_MULT: "*"}

# filter types of struct ftrace_event_field (trace_events_filter.c)
FILTER_STATIC_STRING = 1
FILTER_DYN_STRING = 2
FILTER_RDYN_STRING = 3
FILTER_PTR_STRING = 4
FILTER_CPU = 8
FILTER_STACKTRACE = 9

# the ERRORS table of trace_events_hist.c
ERR = {
    "DUPLICATE_VAR": "Variable already defined",
    "VAR_NOT_UNIQUE": "Variable name not unique, need to use fully qualified name "
                      "(subsys.event.var) for variable",
    "TOO_MANY_VARS": "Too many variables defined",
    "MALFORMED_ASSIGNMENT": "Malformed assignment",
    "NAMED_MISMATCH": "Named hist trigger doesn't match existing named trigger "
                      "(includes variables)",
    "TRIGGER_EEXIST": "Hist trigger already exists",
    "TRIGGER_ENOENT_CLEAR": "Can't clear or continue a nonexistent hist trigger",
    "SET_CLOCK_FAIL": "Couldn't set trace_clock",
    "BAD_FIELD_MODIFIER": "Invalid field modifier",
    "TOO_MANY_SUBEXPR": "Too many subexpressions (3 max)",
    "TIMESTAMP_MISMATCH": "Timestamp units in expression don't match",
    "INVALID_REF_KEY": "Using variable references in keys not supported",
    "VAR_NOT_FOUND": "Couldn't find variable",
    "FIELD_NOT_FOUND": "Couldn't find field",
    "EMPTY_ASSIGNMENT": "Empty assignment",
    "INVALID_SORT_MODIFIER": "Invalid sort modifier",
    "EMPTY_SORT_FIELD": "Empty sort field",
    "TOO_MANY_SORT_FIELDS": "Too many sort fields (Max = 2)",
    "INVALID_SORT_FIELD": "Sort field must be a key or a val",
    "INVALID_STR_OPERAND": "String type can not be an operand in expression",
    "EXPECT_NUMBER": "Expecting numeric literal",
    "UNARY_MINUS_SUBEXPR": "Unary minus not supported in sub-expressions",
    "DIVISION_BY_ZERO": "Division by zero",
    "NEED_NOHC_VAL": "Non-hitcount value is required for 'nohitcount'",
    "SYNTH_EVENT_NOT_FOUND": "Couldn't find synthetic event",
    "SYNTH_COUNT_MISMATCH": "Param count doesn't match synthetic event field count",
    "SYNTH_TYPE_MISMATCH": "Param type doesn't match synthetic event field type",
    "FIELD_VAR_CREATE_FAIL": "Couldn't create field variable",
    "ONX_NOT_VAR": "For onmax(x) or onchange(x), x must be a variable",
    "ONX_VAR_NOT_FOUND": "Couldn't find onmax or onchange variable",
    "PARAM_NOT_FOUND": "Couldn't find param",
    "ACTION_NOT_FOUND": "No action found",
    "NO_SAVE_PARAMS": "No params found for save()",
    "ACTION_MISMATCH": "Handler doesn't support action",
    "NO_CLOSING_PAREN": "No closing paren found",
    "SUBSYS_NOT_FOUND": "Missing subsystem",
    "INVALID_SUBSYS_EVENT": "Invalid subsystem or event name",
}


@dataclass
class Action:
    """``struct action_data``: HANDLER(...).ACTION(params)."""

    handler: str                        # onmatch / onmax / onchange
    action: str = ""                    # trace / save / snapshot
    name: str = ""                      # action name as written (synth event or keyword)
    synth_name: str = ""
    use_trace_keyword: bool = False
    params: list[str] = field(default_factory=list)
    match_system: str = ""
    match_event: str = ""
    var_str: str = ""                   # onmax($var) / onchange($var)
    synth: Any = None
    getters: list[Callable[..., Any]] = field(default_factory=list)
    track_ref: Any = None               # the var ref tracked by onmax/onchange

    def spec(self) -> str:
        """print_actions_spec() of one action."""
        if self.handler == "onmatch":
            s = f"onmatch({self.match_system}.{self.match_event})."
        else:
            s = f"{self.handler}({self.var_str})."
        if self.action == "snapshot":
            return s + "snapshot()"
        if self.action == "save":
            return s + "save(" + ",".join(self.params) + ")"
        if self.use_trace_keyword:
            return s + f"trace({self.synth_name}" + "".join("," + p for p in self.params) + ")"
        return s + f"{self.synth_name}(" + ",".join(self.params) + ")"

_INT_READ = {(1, False): struct.Struct("<B"), (1, True): struct.Struct("<b"),
             (2, False): struct.Struct("<H"), (2, True): struct.Struct("<h"),
             (4, False): struct.Struct("<I"), (4, True): struct.Struct("<i"),
             (8, False): struct.Struct("<Q"), (8, True): struct.Struct("<q")}


class HistError(Exception):
    """A parse failure: ``errno`` (negative return), the error already logged."""

    def __init__(self, err: int) -> None:
        super().__init__(err)
        self.errno = err


# ----------------------------------------------------------------------------- fields
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


def _create_hist_field(hist: HistData, fld: Field | None, flags: int,
                       var_name: str | None = None) -> HistField:
    """create_hist_field(): type, size and the value function of a field."""
    hf = HistField(hist, fld, flags, var_name)
    if flags & (FL_EXPR | FL_ALIAS | FL_VAR_REF):
        return hf
    if flags & FL_HITCOUNT:
        hf.size, hf.type = 8, "u64"
    elif flags & FL_CONST:
        hf.size, hf.type = 8, "u64"
    elif flags & FL_STACKTRACE:
        hf.size, hf.type = HIST_STACKTRACE_SIZE, "unsigned long[]"
    elif flags & (FL_LOG2 | FL_BUCKET):
        inner = _create_hist_field(hist, fld, flags & ~(FL_LOG2 | FL_BUCKET))
        hf.operands = [inner]
        hf.size, hf.type, hf.is_signed = inner.size, inner.type, inner.is_signed
        hf.field = fld
        return hf
    elif flags & FL_TIMESTAMP:
        hf.size, hf.type = 8, "u64"
    elif flags & FL_CPU:
        hf.size, hf.type = 4, "unsigned int"
    elif fld is not None:
        if _is_string_field(fld) and fld.filter_type != FILTER_PTR_STRING:
            hf.flags |= FL_STRING
            hf.type = fld.type
            hf.size = fld.size if fld.filter_type == FILTER_STATIC_STRING else MAX_FILTER_STR_VAL
        elif fld.filter_type == FILTER_STACKTRACE:
            hf.flags |= FL_STACKTRACE
            hf.size, hf.type = MAX_FILTER_STR_VAL, fld.type
        else:
            hf.size, hf.is_signed, hf.type = fld.size, fld.is_signed, fld.type
    return hf


def _is_string_field(fld: Field) -> bool:
    return fld.filter_type in (FILTER_STATIC_STRING, FILTER_DYN_STRING, FILTER_RDYN_STRING,
                               FILTER_PTR_STRING)


def field_flags_str(hf: HistField) -> str | None:
    """get_hist_field_flags()."""
    f = hf.flags
    for bit, text in ((FL_HEX, "hex"), (FL_SYM, "sym"), (FL_SYM_OFFSET, "sym-offset"),
                      (FL_EXECNAME, "execname"), (FL_SYSCALL, "syscall"), (FL_LOG2, "log2"),
                      (FL_BUCKET, "buckets"), (FL_TIMESTAMP_USECS, "usecs"),
                      (FL_PERCENT, "percent"), (FL_GRAPH, "graph"),
                      (FL_STACKTRACE, "stacktrace")):
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


def _kstrtoull(s: str) -> int | None:
    """kstrtoull(s, 0): 0x / 0 prefixes, one optional trailing newline."""
    if s.endswith("\n"):
        s = s[:-1]
    if not s or s[0] in "+-":
        return None if not s or s[0] == "-" else _kstrtoull(s[1:])
    try:
        if s[:2].lower() == "0x":
            v = int(s[2:], 16) if s[2:] and all(c in "0123456789abcdefABCDEF" for c in s[2:]) else None
        elif s[0] == "0" and len(s) > 1:
            v = int(s[1:], 8) if all(c in "01234567" for c in s[1:]) else None
        else:
            v = int(s, 10) if s.isdigit() else None
    except ValueError:
        return None
    if v is None or v > M64:
        return None
    return v


def _order_base_2(v: int) -> int:
    return 0 if v <= 1 else (v - 1).bit_length()


# ----------------------------------------------------------------------------- the map
class Elt:
    """``struct tracing_map_elt`` + hist_elt_data."""

    __slots__ = ("key", "sums", "vars", "var_set", "comm", "saved")

    def __init__(self, key: tuple, n_sums: int, n_vars: int, comm: str) -> None:
        self.key = key
        self.sums = [0] * n_sums
        self.vars = [0] * n_vars
        self.var_set = [False] * n_vars
        self.comm = comm
        self.saved: dict[int, list[Any]] = {}      # action index -> save() values


class TracingMap:
    """``struct tracing_map``: at most 2**bits elements; ``hits`` and ``drops``."""

    def __init__(self, bits: int, n_sums: int, n_vars: int) -> None:
        self.bits = bits
        self.max_elts = 1 << bits
        self.n_sums = n_sums
        self.n_vars = n_vars
        self.elts: dict[tuple, Elt] = {}
        self.hits = 0
        self.drops = 0

    def insert(self, key: tuple, comm: Callable[[], str]) -> Elt | None:
        elt = self.elts.get(key)
        if elt is None:
            if len(self.elts) >= self.max_elts:
                self.drops += 1
                return None
            elt = Elt(key, self.n_sums, self.n_vars, comm())
            self.elts[key] = elt
        self.hits += 1
        return elt

    def lookup(self, key: tuple) -> Elt | None:
        return self.elts.get(key)

    def clear(self) -> None:
        self.elts.clear()
        self.hits = 0
        self.drops = 0


# ----------------------------------------------------------------------------- hist data
@dataclass
class Attrs:
    """``struct hist_trigger_attrs``."""

    keys_str: str | None = None
    vals_str: str | None = None
    sort_key_str: str | None = None
    name: str | None = None
    clock: str = "global"
    map_bits: int = 0
    pause: bool = False
    cont: bool = False
    clear: bool = False
    ts_in_usecs: bool = False
    no_hitcount: bool = False
    assignments: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)


class HistData:
    """``struct hist_trigger_data`` of one hist trigger."""

    def __init__(self, hists: Hists, attrs: Attrs, file: EventFile, remove: bool) -> None:
        self.hists = hists
        self.attrs = attrs
        self.file = file
        self.remove = remove
        self.fields: list[HistField] = []
        self.n_vals = 0
        self.n_keys = 0
        self.n_vars = 0
        self.key_size = 0
        self.sort_keys: list[tuple[int, bool]] = []   # (map field index, descending)
        self.enable_timestamps = False
        self.var_refs: list[HistField] = []
        self.map: TracingMap | None = None
        self.key_idx: list[int] = []          # map field indices that are keys
        self.sum_of: list[int] = []           # fields index -> sum slot (-1: none)
        self.actions: list[str] = list(attrs.actions)
        self.action_data: list[Action] = []
        self.field_var_hists: list[tuple[Any, str]] = []    # (file, hist command)
        self.track_slots: dict[int, int] = {}   # onmax/onchange action -> element var slot
        self.snapshot: tuple[int, tuple, str] | None = None   # (value, key, comm) taken
        self.var_defs: list[tuple[str, str]] = []

    # ------------------------------------------------------------------ errors
    @property
    def tr(self) -> Any:
        return self.file.tr

    def err(self, kind: str, text: str | None) -> None:
        self.hists.hist_err(self.tr, kind, text)

    def keys(self) -> list[HistField]:
        return self.fields[self.n_vals:]

    def vals(self) -> list[HistField]:
        return self.fields[:self.n_vals]


class Hists:
    """The hist command of one kernel: parsing, registration, firing and the hist file."""

    def __init__(self, kernel: Kernel, events: Any, triggers: Any) -> None:
        self.kernel = kernel
        self.events = events
        self.triggers = triggers
        self.named: list[Any] = []          # named_triggers (TriggerData owning a name)
        self.last_cmd = ""
        self.last_cmd_loc = ""
        self._syscall_names: dict[int, str] | None = None
        from .waitqueue import WaitQueue

        self.poll_wq = WaitQueue()          # hist_poll_wq: woken by every histogram hit

    def hit_count(self, file: EventFile) -> int:
        """get_hist_hit_count(): the hits of every histogram on the event."""
        return sum(t.extra["hist"].map.hits for t in file.triggers if t.cmd == "hist")

    # ------------------------------------------------------------------ error_log
    def hist_err(self, tr: Any, kind: str, text: str | None) -> None:
        """hist_err(tr, HIST_ERR_<kind>, errpos(text))."""
        if not self.last_cmd:
            return
        pos = 0
        if text:
            i = self.last_cmd.find(text)
            pos = i if i >= 0 else 0
        tr.log_err(self.last_cmd_loc, self.last_cmd, ERR[kind], pos)

    def _last_cmd_set(self, file: EventFile, param: str) -> None:
        self.last_cmd = "hist:" + param
        call = file.call
        self.last_cmd_loc = f"hist:{call.system}:{call.name}"

    # ------------------------------------------------------------------ parse
    def parse(self, file: EventFile, glob: str, cmd: str, param_and_filter: str | None) -> int:
        """event_hist_trigger_parse(): 0 or -errno."""
        from .trace_events_trigger import TriggerData

        if param_and_filter is not None:
            self._last_cmd_set(file, param_and_filter)
        remove = glob.startswith("!")
        if param_and_filter is None or not param_and_filter.strip():
            return -errno.EINVAL
        param, flt = self._separate(param_and_filter)
        if param is None:
            return -errno.EINVAL
        param = param.replace(".sym-offset", ".symXoffset")
        try:
            attrs = self._parse_attrs(file.tr, param)
            hist = self._create_hist_data(attrs, file, remove)
        except HistError as e:
            return e.errno
        data = TriggerData("hist")
        data.extra["hist"] = hist
        data.extra["param"] = param
        if flt is not None:
            ret = self.triggers._set_filter(file, data, "if " + flt)
            if ret < 0:
                return ret
        if remove:
            named = self._find_named(attrs.name)
            for t in list(file.triggers):
                if t.cmd == "hist" and self.match(data, t, named, False):
                    self._unregister(file, t)
                    self._drop_field_var_hists(t.extra["hist"])
                    break
            return 0
        if self._update_only(data, file):
            return 0
        try:
            self._create_actions(hist)
        except HistError as e:
            self._drop_field_var_hists(hist)
            return e.errno
        ret = self._register(file, data)
        if ret:
            self._drop_field_var_hists(hist)
        if ret == 0:
            self.last_cmd = ""
            self.last_cmd_loc = ""
        return ret

    @staticmethod
    def _separate(text: str) -> tuple[str | None, str | None]:
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

    def _parse_attrs(self, tr: Any, param: str) -> Attrs:
        """parse_hist_trigger_attrs()."""
        attrs = Attrs()
        for s in param.split(":"):
            eq = s.find("=")
            if eq >= 0:
                if not s[eq + 1:]:
                    self.hist_err(tr, "EMPTY_ASSIGNMENT", s)
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

    def _parse_assignment(self, tr: Any, s: str, attrs: Attrs) -> None:
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
            size = _kstrtoull(s[5:])
            if size is None:
                raise HistError(-errno.EINVAL)
            bits = max(0, (size - 1).bit_length()) if size else 0
            if not TRACING_MAP_BITS_MIN <= bits <= TRACING_MAP_BITS_MAX:
                raise HistError(-errno.EINVAL)
            attrs.map_bits = bits
        else:
            if len(attrs.assignments) == TRACING_MAP_VARS_MAX:
                self.hist_err(tr, "TOO_MANY_VARS", s)
                raise HistError(-errno.EINVAL)
            attrs.assignments.append(s)

    # ------------------------------------------------------------------ hist data
    def _create_hist_data(self, attrs: Attrs, file: EventFile, remove: bool) -> HistData:
        """create_hist_data(): fields (vals, vars, keys), sort keys, the map."""
        hist = HistData(self, attrs, file, remove)
        for text in attrs.actions:
            hist.action_data.append(self._parse_action(hist, text))
        self._parse_var_defs(hist)
        self._create_val_fields(hist)
        for name, expr in hist.var_defs:
            self._create_var_field(hist, name, expr)
        self._create_key_fields(hist)
        self._create_sort_keys(hist)
        # create_tracing_map_fields(): keys and sums get map field indices in order
        n_sums = 0
        n_vars = 0
        hist.sum_of = []
        for hf in hist.fields:
            if hf.flags & FL_VAR:
                hf.var_idx = n_vars
                n_vars += 1
                hist.sum_of.append(-1)
            elif hf.flags & FL_KEY:
                hist.sum_of.append(-1)
            else:
                hist.sum_of.append(n_sums)
                n_sums += 1
        hist.map = TracingMap(attrs.map_bits or TRACING_MAP_BITS_DEFAULT, n_sums, n_vars)
        return hist

    def _parse_var_defs(self, hist: HistData) -> None:
        for s in hist.attrs.assignments:
            for part in s.split(","):
                name, eq, expr = part.partition("=")
                if not eq:
                    hist.err("MALFORMED_ASSIGNMENT", name)
                    raise HistError(-errno.EINVAL)
                if len(hist.var_defs) == TRACING_MAP_VARS_MAX:
                    hist.err("TOO_MANY_VARS", name)
                    raise HistError(-errno.EINVAL)
                hist.var_defs.append((name, expr))

    def _create_val_fields(self, hist: HistData) -> None:
        hist.fields.append(_create_hist_field(hist, None, FL_HITCOUNT))
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
            self.hist_err(hist.tr, "NEED_NOHC_VAL", None)
            raise HistError(-errno.ENOENT)

    def _create_val_field(self, hist: HistData, s: str, var_name: str | None, flags: int) -> None:
        """__create_val_field()."""
        hf = self._parse_expr(hist, s, flags, var_name, [0])
        if hf.flags & FL_VAR:
            bad = hf.flags & (FL_GRAPH | FL_PERCENT | FL_BUCKET | FL_LOG2)
        else:
            bad = hf.flags & (FL_BUCKET | FL_LOG2 | FL_SYM | FL_SYM_OFFSET | FL_SYSCALL
                              | FL_STACKTRACE)
        if bad:
            hist.err("BAD_FIELD_MODIFIER", s)
            raise HistError(-errno.EINVAL)
        hist.fields.append(hf)
        hist.n_vals += 1

    def _create_var_field(self, hist: HistData, name: str, expr: str) -> None:
        if self.find_var_field(hist, name) is not None and not hist.remove:
            hist.err("DUPLICATE_VAR", name)
            raise HistError(-errno.EINVAL)
        if not hist.remove and self._find_var_in_tr(hist, name) is not None:
            hist.err("DUPLICATE_VAR", name)
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
                hf = _create_hist_field(hist, None, FL_KEY | FL_STACKTRACE)
                size = HIST_STACKTRACE_SIZE
            else:
                hf = self._parse_expr(hist, s, FL_KEY, None, [0])
                if _has_var_refs(hf):
                    hist.err("INVALID_REF_KEY", s)
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
        tr = hist.tr
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
                hist.err("EMPTY_SORT_FIELD", "sort=")
                raise HistError(-errno.EINVAL)
            if i == TRACING_MAP_SORT_KEYS_MAX - 1 and i + 1 < len(parts):
                hist.err("TOO_MANY_SORT_FIELDS", "sort=")
                raise HistError(-errno.EINVAL)
            name, dot, mod = fs.partition(".")
            modifier = mod if dot else None
            if not name:
                hist.err("EMPTY_SORT_FIELD", "sort=")
                raise HistError(-errno.EINVAL)
            if name == "hitcount":
                keys.append((0, self._is_descending(tr, modifier)))
                continue
            k = 1
            for hf in hist.fields[1:]:
                if hf.flags & FL_VAR:
                    continue
                idx = k
                k += 1
                if name == field_name(hf):
                    keys.append((idx, self._is_descending(tr, modifier)))
                    break
            else:
                hist.err("INVALID_SORT_FIELD", name)
                raise HistError(-errno.EINVAL)
        hist.sort_keys = keys

    def _is_descending(self, tr: Any, mod: str | None) -> bool:
        if mod is None or mod == "ascending":
            return False
        if mod == "descending":
            return True
        self.hist_err(tr, "INVALID_SORT_MODIFIER", mod)
        raise HistError(-errno.EINVAL)

    # ------------------------------------------------------------------ expressions
    def _parse_expr(self, hist: HistData, s: str, flags: int, var_name: str | None,
                    n_sub: list[int]) -> HistField:
        """parse_expr(): ``n_sub`` counts sub-expressions (3 at most)."""
        if n_sub[0] > 3:
            hist.err("TOO_MANY_SUBEXPR", s)
            raise HistError(-errno.EINVAL)
        op, sep = contains_operator(s)
        if op == OP_NONE:
            return self._parse_atom(hist, s, flags, var_name)
        if op == OP_UNARY_MINUS:
            return self._parse_unary(hist, s, flags, var_name, n_sub)
        n_sub[0] += 1
        left, right = s[:sep], s[sep + 1:]
        if not left or not right:
            raise HistError(-errno.EINVAL)
        op1 = self._parse_expr(hist, left, 0, None, n_sub)
        if op1.flags & FL_STRING:
            hist.err("INVALID_STR_OPERAND", left)
            raise HistError(-errno.EINVAL)
        op2 = self._parse_expr(hist, right, 0, None, n_sub)
        if op2.flags & FL_STRING:
            hist.err("INVALID_STR_OPERAND", right)
            raise HistError(-errno.EINVAL)
        var1 = op1.ref_var if op1.flags & (FL_VAR_REF | FL_ALIAS) else None
        var2 = op2.ref_var if op2.flags & (FL_VAR_REF | FL_ALIAS) else None
        f1 = var1.flags if var1 is not None else op1.flags
        f2 = var2.flags if var2 is not None else op2.flags
        if (f1 & FL_TIMESTAMP_USECS) != (f2 & FL_TIMESTAMP_USECS):
            self.hist_err(hist.tr, "TIMESTAMP_MISMATCH", None)
            raise HistError(-errno.EINVAL)
        combine = bool(f1 & f2 & FL_CONST)
        flags |= FL_CONST if combine else FL_EXPR
        flags |= op1.flags & (FL_TIMESTAMP | FL_TIMESTAMP_USECS)
        expr = _create_hist_field(hist, None, flags, var_name)
        op1.read_once = op2.read_once = True
        expr.operands = [op1, op2]
        expr.operator = op
        if op == OP_DIV and f2 & FL_CONST:
            divisor = var2.constant if var2 is not None else op2.constant
            if not divisor:
                hist.err("DIVISION_BY_ZERO", right)
                raise HistError(-errno.EDOM)
            op2.constant = divisor
            if not divisor & (divisor - 1):
                expr.div_fn = "power2"
            elif divisor > (1 << HIST_DIV_SHIFT):
                expr.div_fn = "not_power2"
            else:
                expr.div_fn = "mult_shift"
                op2.div_mult = (1 << HIST_DIV_SHIFT) // divisor
        if combine:
            if var1 is not None:
                expr.operands[0] = var1
            if var2 is not None:
                expr.operands[1] = var2
            expr.constant = self._eval(expr, None, None, None)
            expr.operands = []
            expr.operator = OP_NONE
            expr.name = expr_str(expr)
            expr.size, expr.type = 8, "u64"
        else:
            expr.size, expr.is_signed, expr.type = op1.size, op1.is_signed, op1.type
            expr.name = expr_str(expr)
        return expr

    def _parse_unary(self, hist: HistData, s: str, flags: int, var_name: str | None,
                     n_sub: list[int]) -> HistField:
        n_sub[0] += 1
        if n_sub[0] > 3:
            hist.err("TOO_MANY_SUBEXPR", s)
            raise HistError(-errno.EINVAL)
        s = s[1:]
        if "(" not in s:
            raise HistError(-errno.EINVAL)
        s = s[1:]
        close = s.rfind(")")
        if close < 0:
            raise HistError(-errno.EINVAL)
        if close + 1 != len(s):
            hist.err("UNARY_MINUS_SUBEXPR", s)
            raise HistError(-errno.EINVAL)
        inner_s = s[:close]
        expr = _create_hist_field(hist, None, flags | FL_EXPR, var_name)
        op1 = self._parse_expr(hist, inner_s, 0, None, n_sub)
        if op1.flags & FL_STRING:
            hist.err("INVALID_STR_OPERAND", inner_s)
            raise HistError(-errno.EINVAL)
        expr.flags |= op1.flags & (FL_TIMESTAMP | FL_TIMESTAMP_USECS)
        expr.operands = [op1]
        expr.operator = OP_UNARY_MINUS
        expr.size, expr.is_signed, expr.type = op1.size, op1.is_signed, op1.type
        expr.name = expr_str(expr)
        return expr

    def _parse_atom(self, hist: HistData, s: str, flags: int, var_name: str | None) -> HistField:
        if s[:1].isdigit():
            v = _kstrtoull(s)
            if v is None:
                hist.err("EXPECT_NUMBER", s)
                raise HistError(-errno.EINVAL)
            hf = _create_hist_field(hist, None, flags | FL_CONST, var_name)
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
            ref = self._parse_var_ref(hist, ref_system, ref_event, ref_var)
            if ref is not None:
                if var_name:
                    alias = _create_hist_field(hist, None, FL_ALIAS | FL_VAR, var_name)
                    alias.operands = [ref]
                    alias.ref_var = ref.ref_var
                    alias.system, alias.event_name = ref.system, ref.event_name
                    alias.var_ref_idx = ref.var_ref_idx
                    alias.type, alias.size = ref.type, ref.size
                    return alias
                return ref
        else:
            s = local
        fflags = [flags]
        buckets = [0]
        fld = self._parse_field(hist, s, fflags, buckets)
        hf = _create_hist_field(hist, fld, fflags[0], var_name)
        hf.buckets = buckets[0]
        return hf

    def _local_field_var_ref(self, hist: HistData, system: str | None, event: str | None,
                             var: str) -> str | None:
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

    def _parse_var_ref(self, hist: HistData, system: str | None, event: str | None,
                       var: str) -> HistField | None:
        if len(var) < 2 or var[0] != "$":
            return None
        name = var[1:]
        target = self.find_event_var(hist, system, event, name)
        if target is None:
            hist.err("VAR_NOT_FOUND", name)
            raise HistError(-errno.EINVAL)
        ref = _create_hist_field(hist, None, FL_VAR_REF)
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

    def _parse_field(self, hist: HistData, s: str, flags: list[int], buckets: list[int]) -> Field | None:
        """parse_field(): NAME[.MODIFIER]."""
        name, dot, modifier = s.partition(".")
        stack_modifier = False
        if dot:
            f = flags[0]
            if modifier == "hex":
                f |= FL_HEX
            elif modifier == "sym":
                f |= FL_SYM
            elif modifier == "symXoffset":
                f |= FL_SYM_OFFSET
            elif modifier == "execname" and name == "common_pid":
                f |= FL_EXECNAME
            elif modifier == "syscall":
                f |= FL_SYSCALL
            elif modifier == "stacktrace":
                f |= FL_STACKTRACE
                stack_modifier = True
            elif modifier == "log2":
                f |= FL_LOG2
            elif modifier == "usecs":
                f |= FL_TIMESTAMP_USECS
            elif modifier.startswith("bucket"):
                m = modifier[6:]
                if m.startswith("s"):
                    m = m[1:]
                n = _kstrtoull(m[1:]) if m.startswith("=") else None
                if not n:
                    hist.err("BAD_FIELD_MODIFIER", modifier)
                    raise HistError(-errno.EINVAL)
                buckets[0] = n
                f |= FL_BUCKET
            elif modifier.startswith(("percent", "graph")) and not f & (FL_VAR | FL_KEY):
                f |= FL_PERCENT if modifier.startswith("percent") else FL_GRAPH
            else:
                hist.err("BAD_FIELD_MODIFIER", modifier)
                raise HistError(-errno.EINVAL)
            flags[0] = f
        fld: Field | None = None
        if name == "common_timestamp":
            flags[0] |= FL_TIMESTAMP
            hist.enable_timestamps = True
            if flags[0] & FL_TIMESTAMP_USECS:
                hist.attrs.ts_in_usecs = True
        elif name == "common_stacktrace":
            flags[0] |= FL_STACKTRACE
        elif name == "common_cpu":
            flags[0] |= FL_CPU
        elif name == "hitcount":
            flags[0] |= FL_HITCOUNT
        else:
            fld = hist.file.call.find_field(name)
            if fld is None or not fld.size:
                if fld is not None and fld.filter_type == FILTER_CPU:
                    flags[0] |= FL_CPU
                elif fld is not None and fld.filter_type == FILTER_STACKTRACE:
                    flags[0] |= FL_STACKTRACE
                    fld = None
                else:
                    hist.err("FIELD_NOT_FOUND", name)
                    raise HistError(-errno.EINVAL)
        if stack_modifier and (fld is None or fld.filter_type != FILTER_STACKTRACE):
            hist.err("BAD_FIELD_MODIFIER", s)
            raise HistError(-errno.EINVAL)
        if fld is not None and fld.filter_type == FILTER_CPU:
            flags[0] |= FL_CPU
            fld = None
        return fld

    # ------------------------------------------------------------------ variables
    @staticmethod
    def find_var_field(hist: HistData, name: str) -> HistField | None:
        for hf in hist.fields[:hist.n_vals]:
            if hf.flags & FL_VAR and hf.var_name == name:
                return hf
        return None

    def _hist_datas(self, tr: Any) -> list[HistData]:
        out = []
        for file in list(self.events.inst(tr).files.values()):
            for t in file.triggers:
                h = t.extra.get("hist") if t.cmd == "hist" else None
                if h is not None:
                    out.append(h)
        return out

    def _find_var_in_tr(self, hist: HistData, name: str) -> HistField | None:
        """find_var(): a variable of this name in another hist on the same event."""
        for t in hist.file.triggers:
            h = t.extra.get("hist") if t.cmd == "hist" else None
            if h is not None and h is not hist:
                hf = self.find_var_field(h, name)
                if hf is not None:
                    return hf
        return None

    def find_event_var(self, hist: HistData, system: str | None, event: str | None,
                       name: str) -> HistField | None:
        """find_event_var(): own hist, then any hist of the trace array (unique), or the
        named SYS.EVENT's."""
        if not system or not event:
            own = self.find_var_field(hist, name)
            if own is not None:
                return own
            found = [hf for h in self._hist_datas(hist.tr) if h is not hist
                     for hf in [self.find_var_field(h, name)] if hf is not None]
            if len(found) > 1:
                hist.err("VAR_NOT_UNIQUE", name)
                return None
            if found:
                return found[0]
            return None
        for h in self._hist_datas(hist.tr):
            call = h.file.call
            if call.system == system and call.name == event:
                hf = self.find_var_field(h, name)
                if hf is not None:
                    return hf
        return None

    # ------------------------------------------------------------------ matching
    @staticmethod
    def _fields_match(a: HistField, b: HistField) -> bool:
        if a.flags != b.flags or a.offset != b.offset or a.size != b.size:
            return False
        if a.is_signed != b.is_signed or a.var_name != b.var_name:
            return False
        fa, fb = a.field, b.field
        if fa is not fb:
            if fa is None or fb is None:
                return False
            if (fa.name, fa.type, fa.size, fa.is_signed) != (fb.name, fb.type, fb.size, fb.is_signed):
                return False
        return True

    def match(self, data: Any, test: Any, named: Any, ignore_filter: bool) -> bool:
        """hist_trigger_match()."""
        if named is not None and named is not test and named is not test.extra.get("named_data"):
            return False
        if named is None and self._is_named(test):
            return False
        h, ht = data.extra["hist"], test.extra["hist"]
        if (h.n_vals != ht.n_vals or len(h.fields) != len(ht.fields)
                or len(h.sort_keys) != len(ht.sort_keys)):
            return False
        if not ignore_filter and bool(data.filter_str) != bool(test.filter_str):
            return False
        if not all(self._fields_match(a, b) for a, b in zip(h.fields, ht.fields, strict=True)):
            return False
        if h.sort_keys != ht.sort_keys:
            return False
        if not ignore_filter and data.filter_str and data.filter_str != test.filter_str:
            return False
        return [a.spec() for a in h.action_data] == [a.spec() for a in ht.action_data]

    def _find_named(self, name: str | None) -> Any:
        if not name:
            return None
        for d in self.named:
            if d.extra.get("named_data") is None and d.extra.get("name") == name:
                return d
        return None

    def _is_named(self, t: Any) -> bool:
        return any(d is t for d in self.named)

    # ------------------------------------------------------------------ registry
    def _update_only(self, data: Any, file: EventFile) -> bool:
        """existing_hist_update_only(): :pause / :cont / :clear on an existing trigger."""
        hist: HistData = data.extra["hist"]
        a = hist.attrs
        if not (a.pause or a.cont or a.clear):
            return False
        named = self._find_named(a.name)
        if named is not None and not self.match(data, named, named, True):
            return False
        if a.name and named is None:
            return False
        for t in file.triggers:
            if t.cmd != "hist" or not self.match(data, t, named, False):
                continue
            if a.pause:
                t.extra["paused"] = True
            elif a.cont:
                t.extra["paused"] = False
            else:
                t.extra["hist"].map.clear()
            return True
        return False

    def _register(self, file: EventFile, data: Any) -> int:
        """hist_register_trigger() + hist_trigger_enable()."""
        hist: HistData = data.extra["hist"]
        a = hist.attrs
        named = self._find_named(a.name)
        if named is not None and not self.match(data, named, named, True):
            hist.err("NAMED_MISMATCH", a.name)
            return -errno.EINVAL
        if not (a.name and named is None):
            for t in file.triggers:
                if t.cmd == "hist" and self.match(data, t, named, False):
                    hist.err("TRIGGER_EEXIST", None)
                    return -errno.EEXIST
        if a.cont or a.clear:
            hist.err("TRIGGER_ENOENT_CLEAR", None)
            return -errno.ENOENT
        if a.pause:
            data.extra["paused"] = True
        if hist.enable_timestamps:
            try:
                self.kernel.trace.set_clock(file.tr, a.clock)
            except KernelError:
                hist.err("SET_CLOCK_FAIL", a.clock)
                return -errno.EINVAL
        if named is not None:
            data.extra["hist"] = named.extra["hist"]
            data.extra["named_data"] = named
            data.extra["name"] = named.extra["name"]
            self.named.insert(0, data)
        elif a.name:
            data.extra["name"] = a.name
            self.named.insert(0, data)
        file.triggers.append(data)
        self.triggers._update_cond(file)
        self.triggers._trigger_mode(file, True)
        return 0

    def _unregister(self, file: EventFile, t: Any) -> None:
        file.triggers.remove(t)
        self.triggers._trigger_mode(file, False)
        self.triggers._update_cond(file)
        self.named = [d for d in self.named if d is not t]

    def unreg_all(self, file: EventFile) -> None:
        """hist_unreg_all()."""
        for t in list(file.triggers):
            if t.cmd == "hist":
                self._unregister(file, t)

    # ------------------------------------------------------------------ firing
    def fire(self, data: Any, file: EventFile, rec: bytes | bytearray) -> None:
        """event_hist_trigger(): one record into the histogram."""
        if data.extra.get("paused"):
            return
        hist: HistData = data.extra["hist"]
        ctx = self._ctx(file)
        key = tuple(self._key_value(hf, rec, ctx) for hf in hist.keys())
        ref_vals: list[int] = [0] * len(hist.var_refs)
        if hist.var_refs and not self._resolve_refs(hist, key, ref_vals, False):
            return
        assert hist.map is not None
        elt = hist.map.insert(key, lambda: self.kernel.sched.current.comm)
        if elt is None:
            return
        for i, hf in enumerate(hist.fields[:hist.n_vals]):
            v = self._eval(hf, rec, ctx, ref_vals)
            if hf.flags & FL_VAR:
                elt.vars[hf.var_idx] = v
                elt.var_set[hf.var_idx] = True
                continue
            slot = hist.sum_of[i]
            elt.sums[slot] = (elt.sums[slot] + (v if isinstance(v, int) else 0)) & M64
        if self._resolve_refs(hist, key, ref_vals, True):
            self.run_actions(hist, elt, rec, key, ref_vals)
        if self.poll_wq:
            self.poll_wq.wake_up()          # hist_poll_wakeup()

    def run_actions(self, hist: HistData, elt: Elt, rec: bytes | bytearray, key: tuple,
                    ref_vals: list[int]) -> None:
        """hist_trigger_actions(): onmatch traces its synthetic event; onmax/onchange
        keep the tracked value per element and save fields or take a snapshot."""
        from .trace_events_synth import trace_synth

        ctx = self._ctx(hist.file)
        for i, act in enumerate(hist.action_data):
            if act.handler != "onmatch":
                ref = act.track_ref
                val = ref_vals[ref.var_ref_idx] if ref is not None else 0
                slot = hist.track_slots[i]
                cur = elt.vars[slot]
                better = (val > cur) if act.handler == "onmax" else (val != cur)
                if not better:
                    continue
                elt.vars[slot] = val
                elt.var_set[slot] = True
                if act.action == "save":
                    elt.saved[i] = [g(rec, ctx, ref_vals) for g in act.getters]
                    continue
                if act.action == "snapshot":
                    tr = hist.file.tr
                    self.kernel.trace.take_snapshot(tr)
                    hist.snapshot = (val, elt.key, elt.comm)
                    continue
            if act.synth is None:
                continue
            values = [g(rec, ctx, ref_vals) for g in act.getters]
            trace_synth(self.kernel, act.synth, values)

    # ------------------------------------------------------------------ actions
    def _parse_action(self, hist: HistData, text: str) -> Action:
        """parse_actions() of one ``onmatch(..)`` / ``onmax(..)`` / ``onchange(..)``."""
        tr = hist.tr
        handler, _, rest = text.partition("(")
        act = Action(handler)
        head, close, rest = rest.partition(")")
        if handler == "onmatch":
            if not close:
                self.hist_err(tr, "NO_CLOSING_PAREN", head)
                raise HistError(-errno.EINVAL)
            system, dot, event = head.partition(".")
            if not dot:
                self.hist_err(tr, "SUBSYS_NOT_FOUND", system)
                raise HistError(-errno.EINVAL)
            call = self.events.find_event(system, event)
            if call is None or self.events.file(tr, call) is None:
                self.hist_err(tr, "INVALID_SUBSYS_EVENT", event)
                raise HistError(-errno.EINVAL)
            act.match_system, act.match_event = system, event
        else:
            if not close:
                raise HistError(-errno.EINVAL)
            act.var_str = head
        _, dot, rest = rest.partition(".")
        name, paren, rest = rest.partition("(")
        if not dot or not paren:
            self.hist_err(tr, "ACTION_NOT_FOUND", None)
            raise HistError(-errno.EINVAL)
        params, close, _ = rest.partition(")")
        act.name = name
        if name.startswith("save"):
            if not close:
                self.hist_err(tr, "NO_SAVE_PARAMS", None)
                raise HistError(-errno.EINVAL)
            act.action = "save"
        elif name.startswith("snapshot"):
            if not close:
                self.hist_err(tr, "NO_CLOSING_PAREN", params)
                raise HistError(-errno.EINVAL)
            act.action = "snapshot"
        else:
            act.action = "trace"
            act.use_trace_keyword = name.startswith("trace")
        if act.action in ("save", "snapshot") and handler == "onmatch":
            self.hist_err(tr, "ACTION_MISMATCH", name)
            raise HistError(-errno.EINVAL)
        plist = [p.strip() for p in params.split(",")] if params else []
        if act.action == "trace":
            if act.use_trace_keyword:
                if not plist:
                    raise HistError(-errno.EINVAL)
                act.synth_name = plist.pop(0)
            else:
                act.synth_name = name
        if act.action != "snapshot":
            act.params = plist
        return act

    def _create_actions(self, hist: HistData) -> None:
        """create_actions(): synthetic event, parameters, tracked variables."""
        hist.track_slots = {}
        assert hist.map is not None
        for i, act in enumerate(hist.action_data):
            if act.handler != "onmatch":
                if not act.var_str.startswith("$"):
                    hist.err("ONX_NOT_VAR", act.var_str)
                    raise HistError(-errno.EINVAL)
                try:
                    ref = self._parse_var_ref(hist, None, None, act.var_str)
                except HistError:
                    hist.err("ONX_VAR_NOT_FOUND", act.var_str[1:])
                    raise
                act.track_ref = ref
                hist.track_slots[i] = hist.map.n_vars
                hist.map.n_vars += 1
            if act.action == "trace":
                synth = getattr(self.kernel, "synth_events", None)
                se = synth.find(act.synth_name) if synth is not None else None
                if se is None:
                    hist.err("SYNTH_EVENT_NOT_FOUND", act.synth_name)
                    raise HistError(-errno.EINVAL)
                if len(act.params) != len(se.fields):
                    hist.err("SYNTH_COUNT_MISMATCH", act.synth_name)
                    raise HistError(-errno.EINVAL)
                act.synth = se
            act.getters = []
            for pos, p in enumerate(act.params):
                getter, ptype, psize, psigned = self._param_getter(hist, act, p)
                if act.synth is not None and not _synth_field_ok(act.synth.fields[pos], ptype,
                                                                  psize, psigned):
                    hist.err("SYNTH_TYPE_MISMATCH", p)
                    raise HistError(-errno.EINVAL)
                act.getters.append(getter)

    def _param_getter(self, hist: HistData, act: Action, param: str
                      ) -> tuple[Callable[..., Any], str, int, bool]:
        """A parameter's value at action time: a variable reference, a field of this
        event, or ``SYS.EVENT.FIELD`` through a field variable on that event."""
        if param.startswith("$"):
            ref = self._parse_var_ref(hist, None, None, param)
            assert ref is not None
            return _ref_getter(ref.var_ref_idx), ref.type, ref.size, ref.is_signed
        parts = param.split(".")
        if len(parts) == 3 and parts[2].startswith("$"):     # SYS.EVENT.$var
            ref = self._parse_var_ref(hist, parts[0], parts[1], parts[2])
            assert ref is not None
            return _ref_getter(ref.var_ref_idx), ref.type, ref.size, ref.is_signed
        if len(parts) == 3:
            return self._remote_field_var(hist, parts[0], parts[1], parts[2], param)
        fld = hist.file.call.find_field(param)
        if fld is None and param not in ("common_timestamp", "common_cpu"):
            hist.err("PARAM_NOT_FOUND", param)
            raise HistError(-errno.EINVAL)
        hf = self._parse_atom(hist, param, 0, None)
        return ((lambda rec, ctx, vals: self._eval(hf, rec, ctx, vals)), hf.type, hf.size,
                hf.is_signed)

    def _remote_field_var(self, hist: HistData, system: str, event: str, fname: str,
                          param: str) -> tuple[Callable[..., Any], str, int, bool]:
        """create_field_var_hist(): ``synthetic_FIELD=FIELD`` on a histogram of the other
        event with that histogram's keys, read back by reference."""
        call = self.events.find_event(system, event)
        file = self.events.file(hist.tr, call) if call is not None else None
        target = None
        if file is not None:
            target = next((t.extra["hist"] for t in file.triggers if t.cmd == "hist"), None)
        if file is None or target is None or call.find_field(fname) is None:
            hist.err("FIELD_VAR_CREATE_FAIL", param)
            raise HistError(-errno.EINVAL)
        keys = ",".join(field_print(k) for k in target.keys())
        cmd = f"keys={keys}:synthetic_{fname}={fname}"
        saved = (self.last_cmd, self.last_cmd_loc)
        ret = self.triggers._parse_hist(file, "hist", cmd)
        self.last_cmd, self.last_cmd_loc = saved
        if ret:
            hist.err("FIELD_VAR_CREATE_FAIL", param)
            raise HistError(-errno.EINVAL)
        hist.field_var_hists.append((file, cmd))
        ref = self._parse_var_ref(hist, system, event, f"$synthetic_{fname}")
        assert ref is not None
        return _ref_getter(ref.var_ref_idx), ref.type, ref.size, ref.is_signed

    def _drop_field_var_hists(self, hist: HistData) -> None:
        """unregister_field_var_hists()."""
        for file, cmd in hist.field_var_hists:
            saved = (self.last_cmd, self.last_cmd_loc)
            self.triggers._parse_hist(file, "!hist", cmd)
            self.last_cmd, self.last_cmd_loc = saved
        hist.field_var_hists.clear()

    def _resolve_refs(self, hist: HistData, key: tuple, vals: list[int], self_: bool) -> bool:
        for i, ref in enumerate(hist.var_refs):
            var = ref.ref_var
            if var is None:
                return False
            vh = var.hist
            if (self_ and vh is not hist) or (not self_ and vh is hist):
                continue
            assert vh.map is not None
            # tracing_map_lookup() compares the defining hist's key_size bytes of this
            # hist's key: its leading key fields
            elt = vh.map.lookup(key[:vh.n_keys] if len(key) > vh.n_keys else key)
            if elt is None or not elt.var_set[var.var_idx]:
                return False
            vals[i] = elt.vars[var.var_idx]
            if not self_ and ref.read_once:
                elt.var_set[var.var_idx] = False
        return True

    def _ctx(self, file: EventFile) -> tuple[int, int, bool]:
        tr = file.tr
        return tr.clock.now(), self.kernel.sched.cpu, bool(getattr(tr.clock, "in_ns", True))

    def _key_value(self, hf: HistField, rec: bytes | bytearray, ctx: tuple) -> Any:
        if hf.flags & FL_STACKTRACE:
            return tuple(self._stack(hf.hist.file))
        v = self._eval(hf, rec, ctx, [])
        if hf.flags & FL_STRING:
            return v[:hf.size - 1] if isinstance(v, bytes) else b""
        return v

    def _stack(self, file: EventFile) -> list[int]:
        ks = self.kernel.kallsyms
        name = file.call.name
        out = []
        for pat in ("trace_event_raw_event_{}", "__traceiter_{}"):
            a = ks.addr_of(pat.format(name))
            if a:
                out.append(a + 0x4B)
        return out[:HIST_STACKTRACE_DEPTH]

    def _eval(self, hf: HistField, rec: bytes | bytearray | None, ctx: tuple | None,
              ref_vals: list[int] | None = None) -> Any:
        """hist_fn_call(): the u64 (or string bytes) of a field for one record."""
        f = hf.flags
        if f & FL_CONST and not hf.operands:
            return hf.constant
        if f & FL_HITCOUNT:
            return 1
        if f & FL_VAR_REF:
            return ref_vals[hf.var_ref_idx] if ref_vals and hf.var_ref_idx < len(ref_vals) else 0
        if f & FL_ALIAS:
            return self._eval(hf.operands[0], rec, ctx, ref_vals)
        if hf.operands and f & (FL_LOG2 | FL_BUCKET) and not f & (FL_EXPR | FL_CONST):
            v = self._eval(hf.operands[0], rec, ctx, ref_vals)
            if f & FL_LOG2:
                return _order_base_2(v)
            return (v // hf.buckets) * hf.buckets
        if hf.operands:
            a = self._eval(hf.operands[0], rec, ctx, ref_vals)
            if hf.operator == OP_UNARY_MINUS:
                return (-a) & M64
            b = self._eval(hf.operands[1], rec, ctx, ref_vals)
            op = hf.operator
            if op == OP_PLUS:
                return (a + b) & M64
            if op == OP_MINUS:
                return (a - b) & M64
            if op == OP_MULT:
                return (a * b) & M64
            return self._div(hf, a, b)
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
            return _read_string(fld, rec)
        rd = _INT_READ.get((fld.size, fld.is_signed))
        if rd is None:
            return 0
        return rd.unpack_from(rec, fld.offset)[0] & M64

    @staticmethod
    def _div(hf: HistField, a: int, b: int) -> int:
        """div_by_power_of_two / div_by_mult_and_shift / div_by_not_power_of_two."""
        op2 = hf.operands[1]
        if hf.div_fn == "power2":
            return a >> (op2.constant.bit_length() - 1)
        if hf.div_fn == "mult_shift":
            if a < (1 << HIST_DIV_SHIFT):
                return ((a * op2.div_mult) + ((1 << HIST_DIV_SHIFT) - 1) >> HIST_DIV_SHIFT) & M64
            return a // op2.constant
        if hf.div_fn == "not_power2":
            return a // op2.constant
        return a // b if b else M64

    # ------------------------------------------------------------------ text
    def trigger_text(self, data: Any) -> str:
        """event_hist_trigger_print()."""
        hist: HistData = data.extra["hist"]
        s = "hist:"
        name = data.extra.get("name")
        if name:
            s += f"{name}:"
        keys = []
        for hf in hist.keys():
            if hf.flags & FL_STACKTRACE:
                keys.append(f"{hf.field.name}.stacktrace" if hf.field else "common_stacktrace")
            else:
                keys.append(field_print(hf))
        s += "keys=" + ",".join(keys) + ":vals="
        vals = []
        have_var = False
        for i, hf in enumerate(hist.vals()):
            if hf.flags & FL_VAR:
                have_var = True
                continue
            if i == 0:
                if hist.attrs.no_hitcount:
                    continue
                vals.append("hitcount")
            else:
                vals.append(field_print(hf))
        s += ",".join(vals)
        if have_var:
            s += ":" + ",".join(field_print(hf) for hf in hist.vals() if hf.flags & FL_VAR)
        s += ":sort="
        sorts = []
        non_var = [hf for hf in hist.fields if not hf.flags & FL_VAR]
        for idx, desc in hist.sort_keys:
            t = "hitcount" if idx == 0 else field_print(non_var[idx])
            sorts.append(t + (".descending" if desc else ""))
        s += ",".join(sorts)
        assert hist.map is not None
        s += f":size={1 << hist.map.bits}"
        if hist.enable_timestamps:
            s += f":clock={hist.attrs.clock}"
        if hist.attrs.no_hitcount:
            s += ":nohitcount"
        for act in hist.action_data:
            s += ":" + act.spec()
        if data.filter_str:
            s += f" if {data.filter_str}"
        s += " [paused]" if data.extra.get("paused") else " [active]"
        return s + "\n"

    def hist_text(self, file: EventFile) -> str:
        """hist_show(): every hist trigger of the event."""
        out: list[str] = []
        n = 0
        for t in file.triggers:
            if t.cmd != "hist":
                continue
            if n:
                out.append("\n\n")
            n += 1
            out.append("# event histogram\n#\n# trigger info: ")
            out.append(self.trigger_text(t))
            out.append("#\n\n")
            hist: HistData = t.extra["hist"]
            entries = self._sorted_entries(hist)
            self._print_entries(out, hist, entries)
            snap = next((a for a in hist.action_data if a.action == "snapshot"), None)
            if snap is not None and hist.snapshot is not None:
                val, key, comm = hist.snapshot
                out.append("\nSnapshot taken (see tracing/snapshot).  Details:\n")
                out.append(f"\ttriggering value {{ {snap.handler}({snap.var_str}) }}: {val:10d}")
                fake = Elt(key, 0, 0, comm)
                out.append("\ttriggered by event with key: " + self._key_text(hist, fake) + "\n")
            assert hist.map is not None
            out.append(f"\nTotals:\n    Hits: {hist.map.hits}\n    Entries: {len(entries)}\n"
                       f"    Dropped: {hist.map.drops}\n")
        return "".join(out)

    def _sorted_entries(self, hist: HistData) -> list[Elt]:
        """tracing_map_sort_entries(): primary key, then the secondary within ties."""
        assert hist.map is not None
        entries = list(hist.map.elts.values())
        if len(entries) < 2:
            return entries
        non_var = [(i, hf) for i, hf in enumerate(hist.fields) if not hf.flags & FL_VAR]
        key_pos = {id(hf): n for n, hf in enumerate(hist.keys())}

        def sort_value(idx: int) -> Callable[[Elt], Any]:
            fi, hf = non_var[idx]
            if hf.flags & FL_KEY:
                pos = key_pos[id(hf)]
                if hf.flags & FL_STRING:
                    return lambda e: e.key[pos]
                if hf.flags & FL_STACKTRACE:
                    return lambda e: 0
                size = hf.field.size if hf.field is not None and not hf.flags & FL_CPU else hf.size
                signed = hf.field.is_signed if hf.field is not None else hf.is_signed
                return lambda e: _as_typed(e.key[pos], size, signed)
            slot = hist.sum_of[fi]
            return lambda e: e.sums[slot]

        idx0, desc0 = hist.sort_keys[0]
        entries.sort(key=sort_value(idx0), reverse=desc0)
        if len(hist.sort_keys) > 1:
            idx1, desc1 = hist.sort_keys[1]
            primary, secondary = sort_value(idx0), sort_value(idx1)
            out: list[Elt] = []
            i = 0
            while i < len(entries):
                j = i + 1
                while j < len(entries) and primary(entries[j]) == primary(entries[i]):
                    j += 1
                group = entries[i:j]
                if len(group) > 1:
                    group.sort(key=secondary, reverse=desc1)
                out.extend(group)
                i = j
            entries = out
        return entries

    def _print_entries(self, out: list[str], hist: HistData, entries: list[Elt]) -> None:
        vals = hist.vals()
        stats: dict[int, tuple[int, int]] = {}
        for i, hf in enumerate(vals):
            if hf.flags & (FL_PERCENT | FL_GRAPH):
                slot = hist.sum_of[i]
                col = [e.sums[slot] for e in entries]
                stats[i] = (max(col, default=0), sum(col))
        for e in entries:
            out.append(self._key_text(hist, e))
            if not hist.attrs.no_hitcount:
                out.append(self._val_text(hist, 0, "hitcount", 0, stats, e))
            for i in range(1, hist.n_vals):
                hf = vals[i]
                if hf.flags & (FL_VAR | FL_EXPR):
                    continue
                out.append(" " + self._val_text(hist, i, field_name(hf), hf.flags, stats, e))
            out.append(self._track_text(hist, e))
            out.append("\n")

    @staticmethod
    def _track_text(hist: HistData, e: Elt) -> str:
        """print_actions() / track_data_print(): the tracked value and saved fields."""
        out = []
        for i, act in enumerate(hist.action_data):
            if act.handler == "onmatch" or act.action == "snapshot":
                continue
            label = "max" if act.handler == "onmax" else "changed"
            out.append(f"\n\t{label}: {e.vars[hist.track_slots[i]]:10d}")
            if act.action != "save":
                continue
            for name, v in zip(act.params, e.saved.get(i, [0] * len(act.params)), strict=False):
                if isinstance(v, bytes):
                    out.append(f"  {name}: {v.decode('latin-1'):<32}")
                else:
                    out.append(f"  {name}: {v:10d}")
        return "".join(out)

    @staticmethod
    def _val_text(hist: HistData, i: int, name: str, flags: int,
                  stats: dict[int, tuple[int, int]], e: Elt) -> str:
        """hist_trigger_print_val()."""
        v = e.sums[hist.sum_of[i]]
        if flags & FL_PERCENT:
            pc = _percentage(v, stats[i][1])
            if pc is None:
                return f" {name} (%):[ERROR]"
            return f" {name} (%): {pc // 100:3d}.{pc % 100:02d}"
        if flags & FL_GRAPH:
            return f" {name}: {_bar(v, stats[i][0]):>20}"
        if flags & FL_HEX:
            return f" {name}: {v:10x}"
        return f" {name}: {v:10d}"

    def _key_text(self, hist: HistData, e: Elt) -> str:
        """hist_trigger_print_key()."""
        ks = self.kernel.kallsyms
        parts = []
        multiline = False
        for pos, hf in enumerate(hist.keys()):
            name = field_name(hf)
            v = e.key[pos]
            f = hf.flags
            if f & FL_HEX:
                t = f"{name}: {v:x}"
            elif f & FL_SYM:
                t = f"{name}: [{v:x}] {ks.format_ps(v):<45}"
            elif f & FL_SYM_OFFSET:
                t = f"{name}: [{v:x}] {ks.format_pS(v):<55}"
            elif f & FL_EXECNAME:
                t = f"{name}: {e.comm:<16}[{v:10d}]"
            elif f & FL_SYSCALL:
                sc = self.syscall_name(v) or "unknown_syscall"
                t = f"{name}: {sc:<30}[{v:3d}]"
            elif f & FL_STACKTRACE:
                t = (f"{hf.field.name}.stacktrace" if hf.field else "common_stacktrace:\n")
                t += "".join(f"{' ' * 9}{ks.format_pS(a)}\n" for a in v if a)
                multiline = True
            elif f & FL_LOG2:
                t = f"{name}: ~ 2^{v:<2d}"
            elif f & FL_BUCKET:
                t = f"{name}: ~ {v}-{v + hf.buckets - 1}"
            elif f & FL_STRING:
                t = f"{name}: {v.decode('latin-1'):<50}"
            else:
                t = f"{name}: {v:10d}"
            parts.append(t)
        return "{ " + ", ".join(parts) + ("" if multiline else " ") + "}"

    def syscall_name(self, nr: int) -> str | None:
        """get_syscall_name(): the syscall's metadata name (``sys_read``)."""
        if self._syscall_names is None:
            from .workload import SYSCALL_NR

            self._syscall_names = {n: f"sys_{name}" for name, n in SYSCALL_NR.items()}
        return self._syscall_names.get(nr)


def _ref_getter(idx: int) -> Callable[..., Any]:
    return lambda rec, ctx, vals: vals[idx] if idx < len(vals) else 0


def _synth_field_ok(f: Any, ptype: str, psize: int, psigned: bool) -> bool:
    """check_synth_field(): a parameter's type against the synthetic field's."""
    if "char[" in ptype and f.is_string and f.is_dynamic:
        return True
    if "long[" in ptype and f.is_stack:
        return True
    ftype = f.type.removeprefix("__data_loc ")
    if ftype != ptype and (f.size != psize or (not f.is_string and f.is_signed != psigned)):
        return False
    return True


def _has_var_refs(hf: HistField, level: int = 0) -> bool:
    if level > 3:
        return False
    if hf.flags & FL_VAR_REF:
        return True
    return any(_has_var_refs(o, level + 1) for o in hf.operands)


def _as_typed(v: int, size: int, signed: bool) -> int:
    """tracing_map_cmp_num(): the key compared as its field's C type."""
    bits = size * 8
    v &= (1 << bits) - 1
    if signed and v >> (bits - 1):
        v -= 1 << bits
    return v


def _read_string(fld: Field, rec: bytes | bytearray) -> bytes:
    if fld.filter_type in (FILTER_DYN_STRING, FILTER_RDYN_STRING):
        (loc,) = struct.unpack_from("<I", rec, fld.offset)
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


def _percentage(v: int, total: int) -> int | None:
    """__get_percentage(): 100 times the percentage, None for the kernel's UINT_MAX."""
    if not total:
        return None if v else 0
    if v < M64 // 10000:
        return v * 10000 // total
    total //= 10000
    if not total:
        return None if v else 0
    return v // total


def _bar(v: int, mx: int) -> str:
    pc = _percentage(v, mx)
    if pc is None:
        return "[ERROR]"
    n = pc * 20 // 10000
    return ("#" * min(n, 20)).ljust(20)
