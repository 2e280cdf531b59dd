"""trace.h constants: the trace_iterator flag bits, the core entry types and the layout
of ``struct trace_entry``, the header every record starts with."""

import struct

# struct trace_entry: unsigned short type, unsigned char flags, preempt_count, int pid
TRACE_ENTRY = struct.Struct("<HBBi")

# ---------------------------------------------------------------------------- trace flags
# trace.h TRACE_FLAGS, in bit order (this is also the order trace_options prints).
TRACE_FLAG_NAMES: tuple[str, ...] = (
    "print-parent", "sym-offset", "sym-addr", "verbose", "raw", "hex", "bin", "block",
    "fields", "trace_printk", "annotate", "userstacktrace", "sym-userobj", "printk-msg-only",
    "context-info", "latency-format", "record-cmd", "record-tgid", "overwrite",
    "disable_on_free", "irq-info", "markers", "event-fork", "trace_printk_dest",
    "pause-on-trace", "hash-ptr", "function-trace", "function-fork", "display-graph",
    "stacktrace",
)
_B = {name: 1 << i for i, name in enumerate(TRACE_FLAG_NAMES)}
ITER_PRINT_PARENT = _B["print-parent"]
ITER_SYM_OFFSET = _B["sym-offset"]
ITER_SYM_ADDR = _B["sym-addr"]
ITER_VERBOSE = _B["verbose"]
ITER_RAW = _B["raw"]
ITER_HEX = _B["hex"]
ITER_BIN = _B["bin"]
ITER_BLOCK = _B["block"]
ITER_FIELDS = _B["fields"]
ITER_PRINTK = _B["trace_printk"]
ITER_ANNOTATE = _B["annotate"]
ITER_PRINTK_MSGONLY = _B["printk-msg-only"]
ITER_CONTEXT_INFO = _B["context-info"]
ITER_LATENCY_FMT = _B["latency-format"]
ITER_RECORD_CMD = _B["record-cmd"]
ITER_RECORD_TGID = _B["record-tgid"]
ITER_OVERWRITE = _B["overwrite"]
ITER_STOP_ON_FREE = _B["disable_on_free"]
ITER_IRQ_INFO = _B["irq-info"]
ITER_MARKERS = _B["markers"]
ITER_EVENT_FORK = _B["event-fork"]
ITER_TRACE_PRINTK = _B["trace_printk_dest"]
ITER_PAUSE_ON_TRACE = _B["pause-on-trace"]
ITER_HASH_PTR = _B["hash-ptr"]
ITER_FUNCTION = _B["function-trace"]
ITER_FUNC_FORK = _B["function-fork"]
ITER_DISPLAY_GRAPH = _B["display-graph"]
ITER_STACKTRACE = _B["stacktrace"]

# trace.c TRACE_DEFAULT_FLAGS (+ FUNCTION_DEFAULT_FLAGS) and the trace_printk_dest of global_trace
DEFAULT_FLAGS = (ITER_PRINT_PARENT | ITER_PRINTK | ITER_ANNOTATE | ITER_CONTEXT_INFO
                 | ITER_RECORD_CMD | ITER_OVERWRITE | ITER_IRQ_INFO | ITER_MARKERS
                 | ITER_HASH_PTR | ITER_FUNCTION | ITER_TRACE_PRINTK)
TOP_LEVEL_TRACE_FLAGS = ITER_PRINTK | ITER_PRINTK_MSGONLY | ITER_RECORD_CMD
ZEROED_TRACE_FLAGS = ITER_EVENT_FORK | ITER_FUNC_FORK | ITER_TRACE_PRINTK

# ------------------------------------------------------------------------- entry types
# trace.h enum trace_type
TRACE_FN = 1
TRACE_CTX = 2
TRACE_WAKE = 3
TRACE_STACK = 4
TRACE_PRINT = 5
TRACE_BPRINT = 6
TRACE_MMIO_RW = 7
TRACE_MMIO_MAP = 8
TRACE_BRANCH = 9
TRACE_GRAPH_RET = 10
TRACE_GRAPH_ENT = 11
TRACE_USER_STACK = 12
TRACE_BLK = 13
TRACE_BPUTS = 14
TRACE_HWLAT = 15
TRACE_OSNOISE = 16
TRACE_TIMERLAT = 17
TRACE_RAW_DATA = 18
TRACE_FUNC_REPEATS = 19

