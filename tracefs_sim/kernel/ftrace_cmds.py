"""The set_ftrace_filter function commands (function probes).

``traceon``/``traceoff``/``stacktrace``/``dump``/``cpudump`` (trace_functions.c),
``snapshot`` (trace.c) and ``enable_event``/``disable_event`` (trace_events.c), with the
kernel's probe_ops split: a command given a parameter (``:N``, even ``:``) registers the
*count* probe_ops, without one the plain one — so ``!vfs_write:traceon`` does not remove
``vfs_write:traceon:5`` (ENODEV), exactly as on the real kernel.

Their effects are the tracing core's (``kernel.trace``: tracer_tracing_on/off,
ftrace_dump, the snapshot arm/disarm/take), the function tracer's ``__trace_stack``
and the event subsystem's (``kernel.events``: soft enable/disable).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from .errors import KernelError
from .ftrace import FtraceHash, FuncProbe, FuncProbeOps
from .ftrace_probe import ProbeData, ProbePrint
from .lib import MASK64, kstrtoul
from .trace import DUMP_ALL, DUMP_ORIG
from .trace_events import EVENT_FILE_FL_SOFT_DISABLED, EventFile

if TYPE_CHECKING:
    from .core import Kernel
    from .trace import TraceArray
    from .trace_functions import FunctionTracer

ENABLE_EVENT_STR = "enable_event"
DISABLE_EVENT_STR = "disable_event"
UNLIMITED = MASK64  # (void *)-1 / (unsigned long)-1 as the count
# CONFIG_UNWINDER_ORC: function_trace_probe_call, ftrace_ops_assist_func, ftrace_call
FTRACE_STACK_SKIP = 3


# ------------------------------------------------------------------------- the mapper
def _mapper(probe: FuncProbe) -> ProbeData:
    """ftrace_func_mapper: ip → per-function data, in probe.data."""
    if probe.data is None:
        probe.data = {}
    return probe.data


def _count_init(ops: FuncProbeOps, tr: TraceArray, ip: int, init_data: object,
                probe: FuncProbe) -> None:
    """ftrace_count_init() / ftrace_snapshot_init(): the count of one function."""
    m = _mapper(probe)
    if ip in m:
        raise KernelError(errno.EBUSY)
    m[ip] = init_data


def _count_free(ops: FuncProbeOps, tr: TraceArray, ip: int, probe: FuncProbe) -> None:
    if not ip:
        probe.data = None
        return
    if probe.data is not None:
        probe.data.pop(ip, None)


def _signed(v: int) -> int:
    """``%ld`` of the unsigned long counter."""
    v &= MASK64
    return v - (1 << 64) if v >> 63 else v


def _probe_count(param: str | None) -> int:
    """The count of ``FUNC:CMD:COUNT`` (kstrtoul base 0); unlimited without a number."""
    number = param.split(":", 1)[0] if param is not None else ""
    if not number:
        return UNLIMITED
    err, count = kstrtoul(number)
    if err:
        raise KernelError(-err)
    return count


def _update_count(ip: int, data: ProbeData | None) -> bool:
    """update_count(): False once the function's count ran out (decremented else)."""
    if data is not None and ip in data:
        if _signed(data[ip]) <= 0:
            return False
        data[ip] -= 1
    return True


class EventProbeData:
    """``struct event_probe_data``."""

    __slots__ = ("file", "count", "ref", "enable")

    def __init__(self, file: EventFile, count: int, ref: int, enable: bool) -> None:
        self.file = file
        self.count = count
        self.ref = ref
        self.enable = enable


class FuncCommands:
    """The probe_ops and command callbacks of one kernel."""

    def __init__(self, kernel: Kernel, function_tracer: FunctionTracer) -> None:
        self.ft = kernel.ftrace
        self.tracing = kernel.trace
        self.events = kernel.events
        self.ftr = function_tracer
        po = FuncProbeOps
        self.traceon_count = po("traceon", self._traceon_count, self._print("traceon"),
                                _count_init, _count_free)
        self.traceoff_count = po("traceoff", self._traceoff_count, self._print("traceoff"),
                                 _count_init, _count_free)
        self.stacktrace_count = po("stacktrace", self._stacktrace_count, self._print("stacktrace"),
                                   _count_init, _count_free)
        self.dump = po("dump", self._dump_probe, self._print("dump"), _count_init, _count_free)
        self.cpudump = po("cpudump", self._cpudump_probe, self._print("cpudump"))
        self.traceon = po("traceon", self._traceon, self._print("traceon"))
        self.traceoff = po("traceoff", self._traceoff, self._print("traceoff"))
        self.stacktrace = po("stacktrace", self._stacktrace, self._print("stacktrace"))
        self.snapshot = po("snapshot", self._snapshot, self._print("snapshot"))
        self.snapshot_count = po("snapshot", self._snapshot_count, self._print("snapshot"),
                                 _count_init, _count_free)
        self.event_enable = po(ENABLE_EVENT_STR, self._event_probe, self._event_print,
                               self._event_init, self._event_free)
        self.event_enable_count = po(ENABLE_EVENT_STR, self._event_count_probe, self._event_print,
                                     self._event_init, self._event_free)
        self.event_disable = po(DISABLE_EVENT_STR, self._event_probe, self._event_print,
                                self._event_init, self._event_free)
        self.event_disable_count = po(DISABLE_EVENT_STR, self._event_count_probe, self._event_print,
                                      self._event_init, self._event_free)

    def register(self) -> None:
        """init_func_cmd_traceon() + register_snapshot_cmd() + register_event_cmds()."""
        ft = self.ft
        for name in ("traceoff", "traceon"):
            ft.register_ftrace_command(name, self._onoff_callback)
        ft.register_ftrace_command("stacktrace", self._stacktrace_callback)
        ft.register_ftrace_command("dump", self._dump_callback)
        ft.register_ftrace_command("cpudump", self._cpudump_callback)
        ft.register_ftrace_command("snapshot", self._snapshot_callback)
        ft.register_ftrace_command(ENABLE_EVENT_STR, self._event_enable_func)
        ft.register_ftrace_command(DISABLE_EVENT_STR, self._event_enable_func)

    def _func_name(self, ip: int) -> str:
        """``%ps`` of a probed function."""
        i = self.ft.ip_to_index(ip)
        return self.ft.rec_name(i) if i is not None else hex(ip)

    # ------------------------------------------------------------ trace_functions.c
    def _print(self, name: str) -> ProbePrint:
        """ftrace_probe_print() / ftrace_snapshot_print(): ``func:name:count=N`` or
        ``func:name:unlimited``."""

        def ftrace_probe_print(ip: int, ops: FuncProbeOps, data: ProbeData | None) -> str:
            head = f"{self._func_name(ip)}:{name}"
            if data is not None and ip in data:
                return f"{head}:count={_signed(data[ip])}\n"
            return f"{head}:unlimited\n"

        return ftrace_probe_print

    def _update_traceon_count(self, ip: int, tr: TraceArray, on: bool, data: ProbeData | None) -> None:
        """update_traceon_count(): the count goes down only when the state changes."""
        if data is None or ip not in data:
            return
        old = _signed(data[ip])
        if old <= 0:
            return
        if on == tr.is_on():
            return
        if on:
            self.tracing.tracer_tracing_on(tr)
        else:
            self.tracing.tracer_tracing_off(tr)
        data[ip] = old - 1

    def _traceon_count(self, ip: int, pip: int, tr: TraceArray, ops: FuncProbeOps,
                       data: ProbeData | None) -> None:
        self._update_traceon_count(ip, tr, True, data)

    def _traceoff_count(self, ip: int, pip: int, tr: TraceArray, ops: FuncProbeOps,
                        data: ProbeData | None) -> None:
        self._update_traceon_count(ip, tr, False, data)

    def _traceon(self, ip: int, pip: int, tr: TraceArray, ops: FuncProbeOps,
                 data: ProbeData | None) -> None:
        if not tr.is_on():
            self.tracing.tracer_tracing_on(tr)

    def _traceoff(self, ip: int, pip: int, tr: TraceArray, ops: FuncProbeOps,
                  data: ProbeData | None) -> None:
        if tr.is_on():
            self.tracing.tracer_tracing_off(tr)

    def _stacktrace(self, ip: int, pip: int, tr: TraceArray, ops: FuncProbeOps,
                    data: ProbeData | None) -> None:
        """ftrace_stacktrace(): __trace_stack(tr, FTRACE_STACK_SKIP)."""
        self.ftr.trace_stack(tr)

    def _stacktrace_count(self, ip: int, pip: int, tr: TraceArray, ops: FuncProbeOps,
                          data: ProbeData | None) -> None:
        """ftrace_stacktrace_count(): while tracing is on, as many stacks as the count."""
        if not self.tracing.global_trace.is_on():
            return
        if data is not None:
            count = data.get(ip, 0)
            if not count:
                return
            data[ip] = (count - 1) & MASK64
        self.ftr.trace_stack(tr)

    def _dump_probe(self, ip: int, pip: int, tr: TraceArray, ops: FuncProbeOps,
                    data: ProbeData | None) -> None:
        """ftrace_dump_probe(): the whole global buffer to the kernel log."""
        if _update_count(ip, data):
            self.tracing.ftrace_dump(DUMP_ALL)

    def _cpudump_probe(self, ip: int, pip: int, tr: TraceArray, ops: FuncProbeOps,
                       data: ProbeData | None) -> None:
        """ftrace_cpudump_probe(): the current CPU's part only (no count: every hit)."""
        if _update_count(ip, data):
            self.tracing.ftrace_dump(DUMP_ORIG)

    def _probe_callback(self, tr: TraceArray | None, ops: FuncProbeOps, glob: str,
                        param: str | None, enable: bool) -> None:
        """ftrace_trace_probe_callback()."""
        if tr is None:
            raise KernelError(errno.ENODEV)
        if not enable:
            raise KernelError(errno.EINVAL)
        if glob.startswith("!"):
            self.ft.unregister_ftrace_function_probe_func(glob[1:], tr, ops)
            return
        self.ft.register_ftrace_function_probe(glob, tr, ops, _probe_count(param))

    def _onoff_callback(self, tr: TraceArray | None, hash_: FtraceHash, glob: str, cmd: str,
                        param: str | None, enable: bool) -> None:
        if cmd == "traceon":
            ops = self.traceon_count if param is not None else self.traceon
        else:
            ops = self.traceoff_count if param is not None else self.traceoff
        self._probe_callback(tr, ops, glob, param, enable)

    def _stacktrace_callback(self, tr: TraceArray | None, hash_: FtraceHash, glob: str, cmd: str,
                             param: str | None, enable: bool) -> None:
        ops = self.stacktrace_count if param is not None else self.stacktrace
        self._probe_callback(tr, ops, glob, param, enable)

    def _dump_callback(self, tr: TraceArray | None, hash_: FtraceHash, glob: str, cmd: str,
                       param: str | None, enable: bool) -> None:
        self._probe_callback(tr, self.dump, glob, "1", enable)  # only dump once

    def _cpudump_callback(self, tr: TraceArray | None, hash_: FtraceHash, glob: str, cmd: str,
                          param: str | None, enable: bool) -> None:
        self._probe_callback(tr, self.cpudump, glob, "1", enable)

    # ------------------------------------------------------------------ snapshot (trace.c)
    def _snapshot(self, ip: int, pip: int, tr: TraceArray, ops: FuncProbeOps,
                  data: ProbeData | None) -> None:
        """ftrace_snapshot()."""
        self.tracing.snapshot_instance(tr)

    def _snapshot_count(self, ip: int, pip: int, tr: TraceArray, ops: FuncProbeOps,
                        data: ProbeData | None) -> None:
        """ftrace_count_snapshot()."""
        if _update_count(ip, data):
            self.tracing.snapshot_instance(tr)

    def _snapshot_callback(self, tr: TraceArray | None, hash_: FtraceHash, glob: str, cmd: str,
                           param: str | None, enable: bool) -> None:
        """ftrace_trace_snapshot_callback(): the probe holds the snapshot armed."""
        if tr is None:
            raise KernelError(errno.ENODEV)
        if not enable:
            raise KernelError(errno.EINVAL)
        ops = self.snapshot_count if param is not None else self.snapshot
        if glob.startswith("!"):
            self.ft.unregister_ftrace_function_probe_func(glob[1:], tr, ops)
            self.tracing.disarm_snapshot(tr)
            return
        count = _probe_count(param)
        self.tracing.arm_snapshot(tr)
        try:
            self.ft.register_ftrace_function_probe(glob, tr, ops, count)
        except KernelError:
            self.tracing.disarm_snapshot(tr)
            raise

    # ------------------------------------------------------------- trace_events.c
    @staticmethod
    def _set_soft_disabled(file: EventFile, disabled: bool) -> None:
        if disabled:
            file.flags |= EVENT_FILE_FL_SOFT_DISABLED
        else:
            file.flags &= ~EVENT_FILE_FL_SOFT_DISABLED

    def _event_probe(self, ip: int, pip: int, tr: TraceArray, ops: FuncProbeOps,
                     data: ProbeData | None) -> None:
        """event_enable_probe()."""
        edata = data.get(ip) if data is not None else None
        if edata is None:
            return
        self._set_soft_disabled(edata.file, not edata.enable)

    def _event_count_probe(self, ip: int, pip: int, tr: TraceArray, ops: FuncProbeOps,
                           data: ProbeData | None) -> None:
        """event_enable_count_probe()."""
        edata = data.get(ip) if data is not None else None
        if edata is None or not edata.count:
            return
        if edata.enable == (not edata.file.soft_disabled):
            return
        if edata.count != UNLIMITED:
            edata.count -= 1
        self._set_soft_disabled(edata.file, not edata.enable)

    def _event_print(self, ip: int, ops: FuncProbeOps, data: ProbeData | None) -> str:
        """event_enable_print()."""
        edata = data.get(ip) if data is not None else None
        if edata is None:
            return ""
        call = edata.file.call
        head = (f"{self._func_name(ip)}:"
                f"{ENABLE_EVENT_STR if edata.enable else DISABLE_EVENT_STR}:{call.system}:{call.name}")
        if edata.count == UNLIMITED:
            return head + ":unlimited\n"
        return f"{head}:count={_signed(edata.count)}\n"

    @staticmethod
    def _event_init(ops: FuncProbeOps, tr: TraceArray, ip: int, init_data: object,
                    probe: FuncProbe) -> None:
        """event_enable_init(): the functions of one command share its data."""
        assert isinstance(init_data, EventProbeData)
        m = _mapper(probe)
        if ip in m:
            raise KernelError(errno.EBUSY)
        m[ip] = init_data
        init_data.ref += 1

    def _disable_event(self, file: EventFile) -> None:
        """__ftrace_event_enable_disable(file, 0, 1) + trace_event_put_ref()."""
        self.events.event_enable_disable(file, False, True)
        file.call.refcnt -= 1

    def _free_probe_data(self, edata: EventProbeData) -> None:
        edata.ref -= 1
        if not edata.ref:
            self._disable_event(edata.file)

    def _event_free(self, ops: FuncProbeOps, tr: TraceArray, ip: int, probe: FuncProbe) -> None:
        """event_enable_free()."""
        m = probe.data
        if not ip:
            if m is not None:
                for edata in list(m.values()):
                    self._free_probe_data(edata)
            probe.data = None
            return
        if m is None:
            return
        edata = m.pop(ip, None)
        if edata is None or edata.ref <= 0:
            return
        self._free_probe_data(edata)

    def _event_enable_func(self, tr: TraceArray | None, hash_: FtraceHash, glob: str, cmd: str,
                           param: str | None, enabled: bool) -> None:
        """event_enable_func(): ``FUNC:enable_event:SYSTEM:EVENT[:COUNT]``."""
        if tr is None:
            raise KernelError(errno.ENODEV)
        if not enabled or param is None:
            raise KernelError(errno.EINVAL)
        system, sep, rest = param.partition(":")
        if not sep:
            raise KernelError(errno.EINVAL)
        event, sep2, rest2 = rest.partition(":")
        count_param = rest2 if sep2 else None
        call = self.events.find_event(system, event)
        file = self.events.file(tr, call) if call is not None else None  # find_event_file()
        if file is None:
            raise KernelError(errno.EINVAL)
        enable = cmd == ENABLE_EVENT_STR
        if enable:
            ops = self.event_enable_count if count_param is not None else self.event_enable
        else:
            ops = self.event_disable_count if count_param is not None else self.event_disable
        if glob.startswith("!"):
            self.ft.unregister_ftrace_function_probe_func(glob[1:], tr, ops)
            return
        data = EventProbeData(file, UNLIMITED, 0, enable)
        if count_param is not None:
            number = count_param.split(":", 1)[0]
            if not number:
                raise KernelError(errno.EINVAL)
            data.count = _probe_count(number)
        file.call.refcnt += 1  # trace_event_try_get_ref()
        ret = self.events.event_enable_disable(file, True, True)
        if ret:
            file.call.refcnt -= 1
            raise KernelError(-ret)
        try:
            n = self.ft.register_ftrace_function_probe(glob, tr, ops, data)
        except KernelError:
            self._disable_event(file)
            raise
        if not n:
            self._disable_event(file)
            raise KernelError(errno.ENOENT)
