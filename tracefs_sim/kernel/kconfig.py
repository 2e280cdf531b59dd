"""The reference kernel's configuration, as far as the simulator depends on it.

``data/kconfig.txt`` (scripts/gen_data.py, from the reference kernel's .config) carries
the few symbols whose ``#ifdef`` in kernel/trace changes a file, a text or an errno the
simulator reproduces.  Two kinds of use:

* ``IS_ENABLED(sym)``: code that models both sides of an ``#ifdef`` asks (the per-CPU
  snapshot file under CONFIG_RING_BUFFER_ALLOW_SWAP).
* ``BUILT_FOR``: the side the simulator implements where it models only one (a file that
  exists or not, an option, a record layout).  Checked when this module is imported, so
  data generated from a config the simulator was not built for fails at boot instead of
  giving a kernel that matches neither config.

A symbol the data does not carry is an error (KeyError): add it to KCONFIG_SYMBOLS in
scripts/gen_data.py.  docs/notes.md lists what each one decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from .refdata import data_bytes


def _parse(text: str) -> dict[str, bool]:
    values: dict[str, bool] = {}
    for line in text.splitlines():
        if line.startswith("# CONFIG_") and line.endswith(" is not set"):
            values[line[2:-len(" is not set")]] = False
        elif line.startswith("CONFIG_"):
            name, _, value = line.partition("=")
            values[name] = value in ("y", "m")
    return values


KCONFIG: Mapping[str, bool] = MappingProxyType(_parse(data_bytes("kconfig.txt").decode()))


def IS_ENABLED(sym: str) -> bool:  # noqa: N802 - the kernel's name
    """``IS_ENABLED(CONFIG_X)`` of the reference kernel (KeyError: not carried)."""
    return KCONFIG[sym]


# What the simulator is built for where it models one side of an #ifdef only, and what
# that side decides (kernel/trace file of the #ifdef).
BUILT_FOR: Mapping[str, tuple[bool, str]] = MappingProxyType({
    "CONFIG_TRACER_SNAPSHOT": (True, "snapshot, per_cpu/cpuN/snapshot(_raw), the snapshot "
                               "trigger and function command (trace.c, trace_events_trigger.c)"),
    "CONFIG_TRACER_SNAPSHOT_PER_CPU_SWAP": (False, "it selects RING_BUFFER_ALLOW_SWAP"),
    "CONFIG_TRACER_MAX_TRACE": (True, "tracing_max_latency, the max buffer (trace.c)"),
    "CONFIG_STACK_TRACER": (True, "stack_max_size, stack_trace, stack_trace_filter (trace_stack.c)"),
    "CONFIG_STACKTRACE": (True, "options/stacktrace, func_stack_trace, the stacktrace trigger"),
    "CONFIG_UNWINDER_ORC": (True, "the stacktrace trigger skips 2 frames (STACK_SKIP)"),
    "CONFIG_FUNCTION_TRACER": (True, "the function tracer, function-trace/function-fork"),
    "CONFIG_FUNCTION_GRAPH_TRACER": (True, "function_graph, set_graph_*, max_graph_depth"),
    "CONFIG_FUNCTION_GRAPH_RETVAL": (False, "no funcgraph-retval(-hex) options; the packed "
                                     "ftrace_graph_ret record without retval"),
    "CONFIG_FUNCTION_PROFILER": (False, "no function_profile_enabled, no trace_stat/, no "
                                 "graph-time option (ftrace.c, trace_functions_graph.c)"),
    "CONFIG_DYNAMIC_FTRACE": (True, "the filter files, enabled_functions, dyn_ftrace_total_info"),
    "CONFIG_DYNAMIC_FTRACE_WITH_REGS": (True, "SAVE_REGS ops, enabled_functions' R column"),
    "CONFIG_DYNAMIC_FTRACE_WITH_ARGS": (True, "fprobe/function arguments from ftrace_regs"),
    "CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS": (True, "enabled_functions' D column (no "
                                                "direct caller is modelled)"),
    "CONFIG_DYNAMIC_FTRACE_WITH_CALL_OPS": (False, "no call-ops: the O column is blank"),
    "CONFIG_HIST_TRIGGERS": (True, "events/*/*/hist, the hist commands"),
    "CONFIG_SYNTH_EVENTS": (True, "synthetic_events"),
    "CONFIG_FTRACE_SYSCALLS": (True, "the syscalls event system"),
    "CONFIG_FTRACE_RECORD_RECURSION": (False, "no recursed_functions"),
    "CONFIG_TRACE_EVAL_MAP_FILE": (False, "no eval_map"),
    "CONFIG_TRACE_EVENT_INJECT": (False, "no events/*/*/inject"),
    "CONFIG_USER_EVENTS": (False, "no user_events_data, user_events_status"),
    "CONFIG_BOOTTIME_TRACING": (False, "no boot-time instances or events"),
    "CONFIG_DYNAMIC_EVENTS": (True, "dynamic_events"),
    "CONFIG_PROBE_EVENTS_BTF_ARGS": (True, "BTF argument names and types in probe events"),
    "CONFIG_KPROBE_EVENTS": (True, "kprobe_events, kprobe_profile"),
    "CONFIG_UPROBE_EVENTS": (True, "uprobe_events, uprobe_profile"),
    "CONFIG_FPROBE_EVENTS": (True, "f:/t: dynamic events"),
    "CONFIG_KPROBE_EVENTS_ON_NOTRACE": (False, "kprobes refused on notrace functions"),
    "CONFIG_MODULES": (True, ":mod: filters, module symbols"),
    "CONFIG_IRQSOFF_TRACER": (False, "no irqsoff tracer"),
    "CONFIG_PREEMPT_TRACER": (False, "no preemptoff tracers"),
    "CONFIG_SCHED_TRACER": (False, "no wakeup tracers"),
    "CONFIG_HWLAT_TRACER": (False, "no hwlat tracer, no hwlat_detector/"),
    "CONFIG_OSNOISE_TRACER": (False, "no osnoise tracer, no osnoise/"),
    "CONFIG_TIMERLAT_TRACER": (False, "no timerlat tracer"),
    "CONFIG_MMIOTRACE": (True, "the mmiotrace tracer"),
    "CONFIG_BLK_DEV_IO_TRACE": (True, "the blk tracer and its options"),
    "CONFIG_BRANCH_TRACER": (False, "no branch tracer, no options/branch"),
})


class ConfigMismatch(RuntimeError):
    """data/kconfig.txt says otherwise than the simulator was built for."""


def _check() -> None:
    wrong = [f"{sym}: the data says {'y' if KCONFIG[sym] else 'n'}, the simulator is built "
             f"for {'y' if want else 'n'} ({what})"
             for sym, (want, what) in BUILT_FOR.items() if KCONFIG[sym] != want]
    if wrong:
        raise ConfigMismatch("; ".join(wrong))


_check()

__all__ = ["BUILT_FOR", "IS_ENABLED", "KCONFIG", "ConfigMismatch"]
