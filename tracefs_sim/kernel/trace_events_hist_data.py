"""What every part of the hist code shares (the types of trace_events_hist.c): the
``ERRORS`` table and its error_log path, the trigger's attributes, ``struct
hist_trigger_data`` and the private data of a map element.

Errors follow the kernel's two steps: ``HistLog.err()`` (hist_err() with errpos())
writes the error_log entry, then the failing function returns -errno.  Inside the
parser a failure unwinds with ``HistError(-errno)`` (the kernel's ``goto out`` chains);
the command's parse entry point catches it and returns the -errno, and only the
trigger file's write turns a -errno into ``KernelError`` for the adapter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from .tracing_map import TRACING_MAP_BITS_DEFAULT, KeyValue, TracingMap

if TYPE_CHECKING:
    from .trace import TraceArray
    from .trace_events import EventFile
    from .trace_events_hist_actions import Action
    from .trace_events_hist_field import HistField

HIST_PREFIX = "hist:"
HIST_ACTIONS_MAX = 8


class HistErr(Enum):
    """The ``ERRORS`` X-macro of trace_events_hist.c (HIST_ERR_*), in the same order,
    same texts."""

    NONE = "No error"
    DUPLICATE_VAR = "Variable already defined"
    VAR_NOT_UNIQUE = ("Variable name not unique, need to use fully qualified name "
                      "(subsys.event.var) for variable")
    TOO_MANY_VARS = "Too many variables defined"
    MALFORMED_ASSIGNMENT = "Malformed assignment"
    NAMED_MISMATCH = ("Named hist trigger doesn't match existing named trigger "
                      "(includes variables)")
    TRIGGER_EEXIST = "Hist trigger already exists"
    TRIGGER_ENOENT_CLEAR = "Can't clear or continue a nonexistent hist trigger"
    SET_CLOCK_FAIL = "Couldn't set trace_clock"
    BAD_FIELD_MODIFIER = "Invalid field modifier"
    TOO_MANY_SUBEXPR = "Too many subexpressions (3 max)"
    TIMESTAMP_MISMATCH = "Timestamp units in expression don't match"
    TOO_MANY_FIELD_VARS = "Too many field variables defined"
    EVENT_FILE_NOT_FOUND = "Event file not found"
    HIST_NOT_FOUND = "Matching event histogram not found"
    HIST_CREATE_FAIL = "Couldn't create histogram for field"
    SYNTH_VAR_NOT_FOUND = "Couldn't find synthetic variable"
    SYNTH_EVENT_NOT_FOUND = "Couldn't find synthetic event"
    SYNTH_TYPE_MISMATCH = "Param type doesn't match synthetic event field type"
    SYNTH_COUNT_MISMATCH = "Param count doesn't match synthetic event field count"
    FIELD_VAR_PARSE_FAIL = "Couldn't parse field variable"
    VAR_CREATE_FIND_FAIL = "Couldn't create or find variable"
    ONX_NOT_VAR = "For onmax(x) or onchange(x), x must be a variable"
    ONX_VAR_NOT_FOUND = "Couldn't find onmax or onchange variable"
    ONX_VAR_CREATE_FAIL = "Couldn't create onmax or onchange variable"
    FIELD_VAR_CREATE_FAIL = "Couldn't create field variable"
    TOO_MANY_PARAMS = "Too many action params"
    PARAM_NOT_FOUND = "Couldn't find param"
    INVALID_PARAM = "Invalid action param"
    ACTION_NOT_FOUND = "No action found"
    NO_SAVE_PARAMS = "No params found for save()"
    TOO_MANY_SAVE_ACTIONS = "Can't have more than one save() action per hist"
    ACTION_MISMATCH = "Handler doesn't support action"
    NO_CLOSING_PAREN = "No closing paren found"
    SUBSYS_NOT_FOUND = "Missing subsystem"
    INVALID_SUBSYS_EVENT = "Invalid subsystem or event name"
    INVALID_REF_KEY = "Using variable references in keys not supported"
    VAR_NOT_FOUND = "Couldn't find variable"
    FIELD_NOT_FOUND = "Couldn't find field"
    EMPTY_ASSIGNMENT = "Empty assignment"
    INVALID_SORT_MODIFIER = "Invalid sort modifier"
    EMPTY_SORT_FIELD = "Empty sort field"
    TOO_MANY_SORT_FIELDS = "Too many sort fields (Max = 2)"
    INVALID_SORT_FIELD = "Sort field must be a key or a val"
    INVALID_STR_OPERAND = "String type can not be an operand in expression"
    EXPECT_NUMBER = "Expecting numeric literal"
    UNARY_MINUS_SUBEXPR = "Unary minus not supported in sub-expressions"
    DIVISION_BY_ZERO = "Division by zero"
    NEED_NOHC_VAL = "Non-hitcount value is required for 'nohitcount'"


class HistLog:
    """The hist code's ``last_cmd``/``last_cmd_loc`` and hist_err(): one per Kernel
    (the kernel's statics, serialized by event_mutex).

    The caret is errpos(): the first occurrence of the offending text in the command
    ``hist:PARAM`` (a strstr), 0 without a text.
    """

    __slots__ = ("cmd", "loc")

    def __init__(self) -> None:
        self.cmd = ""
        self.loc = ""

    def set(self, file: EventFile, param: str) -> None:
        """last_cmd_set()."""
        self.cmd = HIST_PREFIX + param
        call = file.call
        self.loc = f"{HIST_PREFIX}{call.system}:{call.name}"

    def clear(self) -> None:
        """hist_err_clear()."""
        self.cmd = ""
        self.loc = ""

    def save(self) -> tuple[str, str]:
        return self.cmd, self.loc

    def restore(self, saved: tuple[str, str]) -> None:
        self.cmd, self.loc = saved

    def errpos(self, text: str | None) -> int:
        if not text:
            return 0
        i = self.cmd.find(text)
        return i if i >= 0 else 0

    def err(self, tr: TraceArray, err: HistErr, text: str | None = None) -> None:
        """hist_err(tr, HIST_ERR_*, errpos(text))."""
        if not self.cmd:
            return
        tr.log_err(self.loc, self.cmd, err.value, self.errpos(text))


class HistError(Exception):
    """A hist parse failure unwinding to the command's entry point: ``errno`` is the
    negative return value; the error_log entry, if any, is already written."""

    def __init__(self, err: int) -> None:
        super().__init__(err)
        self.errno = err


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


class HistEltData:
    """``struct hist_elt_data``: the comm of the task that created the element and,
    per onmax/onchange save() action, the values saved with the tracked maximum."""

    __slots__ = ("comm", "saved")

    def __init__(self, comm: str) -> None:
        self.comm = comm
        self.saved: dict[int, list[int | bytes]] = {}


# A histogram's map: its elements carry a HistEltData.
HistMap = TracingMap[HistEltData]


class HistData:
    """``struct hist_trigger_data`` of one hist trigger.

    ``fields`` holds hitcount, the values and the variables first (``n_vals``), then
    the keys, as the kernel orders them: sort keys, ``vals=`` printing and named
    trigger matching all index that array.  ``sum_of`` maps a field to its sum slot in
    the map's elements (-1 for keys and variables).
    """

    def __init__(self, attrs: Attrs, file: EventFile, remove: bool,
                 elt_alloc: Callable[[], HistEltData]) -> None:
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
        self.map: HistMap = TracingMap(attrs.map_bits or TRACING_MAP_BITS_DEFAULT, elt_alloc)
        self.sum_of: list[int] = []
        self.action_data: list[Action] = []
        self.field_var_hists: list[tuple[EventFile, str]] = []   # (file, hist command)
        self.track_slots: dict[int, int] = {}   # onmax/onchange action -> element var slot
        # the snapshot() action's trigger: (tracked value, key, comm)
        self.snapshot: tuple[int, tuple[KeyValue, ...], str] | None = None
        self.var_defs: list[tuple[str, str]] = []

    @property
    def tr(self) -> TraceArray:
        return self.file.tr

    def keys(self) -> list[HistField]:
        return self.fields[self.n_vals:]

    def vals(self) -> list[HistField]:
        return self.fields[:self.n_vals]
