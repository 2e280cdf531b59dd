"""What every event writer and reader shares (include/linux/trace_events.h, plus the
``struct ftrace_event_field`` of kernel/trace/trace.h).

The kernel keeps these flags, enums and the field descriptor in a header that the
event core, the filter and trigger code and every probe kind include; this module is
that header.  It imports nothing of the event core, so trace_events.py, its print-fmt
compiler, the filter, the triggers and the probe kinds can all depend on it without a
cycle, and each constant has exactly one definition.
"""

from __future__ import annotations

# The kernel declares each flag set as an enum of bit numbers and the masks from it;
# here the names are unpacked from the bits in that enum order.

# trace_event_call.flags (TRACE_EVENT_FL_*_BIT)
(TRACE_EVENT_FL_CAP_ANY, TRACE_EVENT_FL_NO_SET_FILTER, TRACE_EVENT_FL_IGNORE_ENABLE,
 TRACE_EVENT_FL_TRACEPOINT, TRACE_EVENT_FL_DYNAMIC, TRACE_EVENT_FL_KPROBE, TRACE_EVENT_FL_UPROBE,
 TRACE_EVENT_FL_EPROBE, TRACE_EVENT_FL_FPROBE, TRACE_EVENT_FL_CUSTOM,
 TRACE_EVENT_FL_TEST_STR) = (1 << bit for bit in range(11))

# trace_event_file.flags (EVENT_FILE_FL_*_BIT)
(EVENT_FILE_FL_ENABLED, EVENT_FILE_FL_RECORDED_CMD, EVENT_FILE_FL_RECORDED_TGID,
 EVENT_FILE_FL_FILTERED, EVENT_FILE_FL_NO_SET_FILTER, EVENT_FILE_FL_SOFT_MODE,
 EVENT_FILE_FL_SOFT_DISABLED, EVENT_FILE_FL_TRIGGER_MODE, EVENT_FILE_FL_TRIGGER_COND,
 EVENT_FILE_FL_PID_FILTER, EVENT_FILE_FL_WAS_ENABLED,
 EVENT_FILE_FL_FREED) = (1 << bit for bit in range(12))

# enum trace_reg: what trace_event_class.reg() is asked to do
TRACE_REG_REGISTER, TRACE_REG_UNREGISTER, TRACE_REG_PERF_REGISTER, TRACE_REG_PERF_UNREGISTER = range(4)

# enum event_trigger_type
ETT_NONE = 0
(ETT_TRACE_ONOFF, ETT_SNAPSHOT, ETT_STACKTRACE, ETT_EVENT_ENABLE, ETT_EVENT_HIST, ETT_HIST_ENABLE,
 ETT_EVENT_EPROBE) = (1 << bit for bit in range(7))

# enum filter_type: how the filter compares a field
(FILTER_OTHER, FILTER_STATIC_STRING, FILTER_DYN_STRING, FILTER_RDYN_STRING, FILTER_PTR_STRING,
 FILTER_TRACE_FN, FILTER_CPUMASK, FILTER_COMM, FILTER_CPU, FILTER_STACKTRACE) = range(10)

# What a tracepoint passes for one field (TP_fast_assign's source): an integer, a C
# string, raw bytes, an array of integers, or nothing (zero / empty).
FieldValue = int | str | bytes | bytearray | list[int] | tuple[int, ...] | None


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


TYPE_SIZES = {
    "char": 1, "unsigned char": 1, "signed char": 1, "u8": 1, "s8": 1, "__u8": 1, "__s8": 1,
    "bool": 1, "_Bool": 1, "short": 2, "unsigned short": 2, "u16": 2, "s16": 2, "__u16": 2,
    "__s16": 2, "__le16": 2, "__be16": 2, "int": 4, "unsigned int": 4, "unsigned": 4, "u32": 4,
    "s32": 4, "__u32": 4, "__s32": 4, "__le32": 4, "__be32": 4, "pid_t": 4, "long": 8,
    "unsigned long": 8, "long long": 8, "unsigned long long": 8, "u64": 8, "s64": 8, "__u64": 8,
    "__s64": 8, "size_t": 8, "ssize_t": 8, "dma_addr_t": 8, "gfp_t": 4, "umode_t": 2,
}


def type_size(base: str) -> int:
    """sizeof() of a C scalar type name of the formats (1 when unknown)."""
    base = base.replace("const ", "").replace("volatile ", "").strip()
    if base.endswith("*"):
        return 8
    return TYPE_SIZES.get(base, 1)


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
            self.elem_size = type_size(base) if (self.is_dynamic or self.is_rel) else size

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
