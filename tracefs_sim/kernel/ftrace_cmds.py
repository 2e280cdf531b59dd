"""The set_ftrace_filter function commands (function probes).

``traceon``/``traceoff``/``stacktrace``/``dump``/``cpudump`` (trace_functions.c),
``snapshot`` (trace.c) and ``enable_event``/``disable_event`` (trace_events.c), with the
kernel's probe_ops split: a command given a parameter (``:N``, even ``:``) registers the
*count* probe_ops, without one the plain one — so ``!vfs_write:traceon`` does not remove
``vfs_write:traceon:5`` (ENODEV), exactly as on the real kernel.

Effects go through a ``FuncCmdHooks`` object that the tracing core provides, so ftrace
stays below trace.c: ``TracingHooks(kernel)`` adapts ``kernel.trace``/``kernel.events``
and degrades gracefully when a piece is missing.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any, Protocol

from .errors import KernelError
from .ftrace import Ftrace, FtraceHash, FuncProbe, FuncProbeOps
from .lib import kstrtoul

if TYPE_CHECKING:
    from .core import Kernel

ENABLE_EVENT_STR = "enable_event"
DISABLE_EVENT_STR = "disable_event"
UNLIMITED = (1 << 64) - 1  # (void *)-1 / (unsigned long)-1 as the count


class FuncCmdHooks(Protocol):
    """What the commands need from the tracing core and the event subsystem."""

    def tracer_tracing_is_on(self, tr: Any) -> bool: ...

    def tracer_tracing_on(self, tr: Any) -> None: ...

    def tracer_tracing_off(self, tr: Any) -> None: ...

    def tracing_is_on(self) -> bool: ...

    def trace_stack(self, tr: Any, skip: int) -> None: ...

    def trace_dump_stack(self, skip: int) -> None: ...

    def ftrace_dump(self, all_cpus: bool) -> None: ...

    def tracing_snapshot_instance(self, tr: Any) -> None: ...

    def tracing_arm_snapshot(self, tr: Any) -> None: ...

    def tracing_disarm_snapshot(self, tr: Any) -> None: ...

    def find_event_file(self, tr: Any, system: str, event: str) -> Any: ...

    def event_name(self, file: Any) -> tuple[str, str]: ...

    def event_try_get_ref(self, file: Any) -> bool: ...

    def event_put_ref(self, file: Any) -> None: ...

    def event_enable_disable(self, file: Any, enable: bool, soft: bool) -> None: ...

    def event_soft_disabled(self, file: Any) -> bool: ...

    def set_event_soft_disabled(self, file: Any, disabled: bool) -> None: ...


class TracingHooks:
    """FuncCmdHooks over ``kernel.trace`` (trace.py) and ``kernel.events``."""

    def __init__(self, kernel: Kernel) -> None:
        self.k = kernel

    @property
    def _tracing(self) -> Any:
        return self.k.trace

    def tracer_tracing_is_on(self, tr: Any) -> bool:
        return bool(tr.is_on())

    def tracer_tracing_on(self, tr: Any) -> None:
        self._tracing.tracer_tracing_on(tr)

    def tracer_tracing_off(self, tr: Any) -> None:
        self._tracing.tracer_tracing_off(tr)

    def tracing_is_on(self) -> bool:
        return bool(self._tracing.global_trace.is_on())

    def trace_stack(self, tr: Any, skip: int) -> None:
        """__trace_stack() from a probe callback: a TRACE_STACK entry in ``tr``.  With
        the ORC unwinder the skipped frames are the probe's own; the unwind starts in
        the trampoline (``[FTRACE TRAMPOLINE]``), then the traced function."""
        fn = getattr(self._tracing, "trace_stack", None)
        if fn is not None:
            fn(tr, skip)
            return
        ftr = getattr(self.k, "function_tracers", None)
        if ftr is not None:
            ftr.trace_stack(tr, 0, 0)

    def trace_dump_stack(self, skip: int) -> None:
        """trace_dump_stack(): the stack into the trace_printk destination array."""
        tracing = self._tracing
        self.trace_stack(getattr(tracing, "printk_trace", None) or tracing.global_trace, skip)

    def ftrace_dump(self, all_cpus: bool) -> None:
        fn = getattr(self._tracing, "ftrace_dump", None)
        if fn is not None:
            fn(all_cpus)
            return
        gt = self._tracing.global_trace
        self._tracing.tracer_tracing_off(gt)
        printk = getattr(self.k, "printk", None)
        if printk is not None:
            printk("Dumping ftrace buffer:")
            printk("---------------------------------")
            printk("---------------------------------")

    def tracing_snapshot_instance(self, tr: Any) -> None:
        fn = getattr(self._tracing, "take_snapshot", None)
        if fn is not None:
            fn(tr)

    def tracing_arm_snapshot(self, tr: Any) -> None:
        fn = getattr(self._tracing, "arm_snapshot", None) or getattr(self._tracing, "alloc_snapshot", None)
        if fn is not None:
            fn(tr)

    def tracing_disarm_snapshot(self, tr: Any) -> None:
        fn = getattr(self._tracing, "disarm_snapshot", None)
        if fn is not None:
            fn(tr)

    def _events(self) -> Any:
        return getattr(self.k, "events", None)

    def find_event_file(self, tr: Any, system: str, event: str) -> Any:
        """find_event_file(): trace_events.TraceEvents.find_event() + file()."""
        ev = self._events()
        if ev is None:
            return None
        call = ev.find_event(system, event)
        if call is None:
            return None
        return ev.file(tr, call)

    def event_name(self, file: Any) -> tuple[str, str]:
        return file.call.system, file.call.name

    def event_try_get_ref(self, file: Any) -> bool:
        file.call.refcnt += 1
        return True

    def event_put_ref(self, file: Any) -> None:
        file.call.refcnt -= 1

    def event_enable_disable(self, file: Any, enable: bool, soft: bool) -> None:
        ev = self._events()
        if ev is None:
            return
        ret = ev.event_enable_disable(file, enable, soft)
        if ret:
            raise KernelError(-ret)

    def event_soft_disabled(self, file: Any) -> bool:
        return bool(file.soft_disabled)

    def set_event_soft_disabled(self, file: Any, disabled: bool) -> None:
        from .trace_events import EVENT_FILE_FL_SOFT_DISABLED

        if disabled:
            file.flags |= EVENT_FILE_FL_SOFT_DISABLED
        else:
            file.flags &= ~EVENT_FILE_FL_SOFT_DISABLED


# ------------------------------------------------------------------------- the mapper
def _mapper(probe: FuncProbe) -> dict[int, Any]:
    """ftrace_func_mapper: ip → per-function data, in probe.data."""
    if probe.data is None:
        probe.data = {}
    return probe.data


def _count_init(ops: FuncProbeOps, tr: Any, ip: int, init_data: Any, probe: FuncProbe) -> None:
    m = _mapper(probe)
    if ip in m:
        raise KernelError(errno.EBUSY)
    m[ip] = init_data


def _count_free(ops: FuncProbeOps, tr: Any, ip: int, probe: FuncProbe) -> None:
    if not ip:
        probe.data = None
        return
    if probe.data is not None:
        probe.data.pop(ip, None)


def _signed(v: int) -> int:
    """``%ld`` of the unsigned long counter."""
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >> 63 else v


class FuncCommands:
    """The probe_ops and command callbacks, bound to one kernel's ftrace and hooks."""

    def __init__(self, ftrace: Ftrace, hooks: FuncCmdHooks) -> None:
        self.ft = ftrace
        self.h = hooks
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
        self.snapshot = po("snapshot", self._snapshot, self._snapshot_print)
        self.snapshot_count = po("snapshot", self._snapshot_count, self._snapshot_print,
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

    # ------------------------------------------------------------ trace_functions.c
    def _print(self, name: str) -> Any:
        """ftrace_probe_print(): ``func:name:count=N`` or ``func:name:unlimited``."""

        def ftrace_probe_print(ip: int, ops: FuncProbeOps, data: Any) -> str:
            return self._probe_print(name, ip, data)

        return ftrace_probe_print

    def _probe_print(self, name: str, ip: int, data: Any) -> str:
        i = self.ft.ip_to_index(ip)
        head = f"{self.ft.rec_name(i) if i is not None else hex(ip)}:{name}"
        if data is not None and ip in data:
            return f"{head}:count={_signed(data[ip])}\n"
        return f"{head}:unlimited\n"

    def _update_traceon_count(self, ip: int, tr: Any, on: bool, data: Any) -> None:
        if data is None or ip not in data:
            return
        old = _signed(data[ip])
        if old <= 0:
            return
        if on == self.h.tracer_tracing_is_on(tr):
            return
        if on:
            self.h.tracer_tracing_on(tr)
        else:
            self.h.tracer_tracing_off(tr)
        data[ip] = old - 1

    def _traceon_count(self, ip: int, pip: int, tr: Any, ops: FuncProbeOps, data: Any) -> None:
        self._update_traceon_count(ip, tr, True, data)

    def _traceoff_count(self, ip: int, pip: int, tr: Any, ops: FuncProbeOps, data: Any) -> None:
        self._update_traceon_count(ip, tr, False, data)

    def _traceon(self, ip: int, pip: int, tr: Any, ops: FuncProbeOps, data: Any) -> None:
        if not self.h.tracer_tracing_is_on(tr):
            self.h.tracer_tracing_on(tr)

    def _traceoff(self, ip: int, pip: int, tr: Any, ops: FuncProbeOps, data: Any) -> None:
        if self.h.tracer_tracing_is_on(tr):
            self.h.tracer_tracing_off(tr)

    FTRACE_STACK_SKIP = 3  # CONFIG_UNWINDER_ORC

    def _stacktrace(self, ip: int, pip: int, tr: Any, ops: FuncProbeOps, data: Any) -> None:
        self.h.trace_stack(tr, self.FTRACE_STACK_SKIP)

    def _stacktrace_count(self, ip: int, pip: int, tr: Any, ops: FuncProbeOps, data: Any) -> None:
        if not self.h.tracing_is_on():
            return
        if data is None:
            self.h.trace_dump_stack(self.FTRACE_STACK_SKIP)
            return
        if ip not in data or not data[ip]:
            return
        data[ip] = (data[ip] - 1) & UNLIMITED
        self.h.trace_dump_stack(self.FTRACE_STACK_SKIP)

    @staticmethod
    def _update_count(ip: int, data: Any) -> bool:
        if data is not None and ip in data:
            if _signed(data[ip]) <= 0:
                return False
            data[ip] -= 1
        return True

    def _dump_probe(self, ip: int, pip: int, tr: Any, ops: FuncProbeOps, data: Any) -> None:
        if self._update_count(ip, data):
            self.h.ftrace_dump(True)

    def _cpudump_probe(self, ip: int, pip: int, tr: Any, ops: FuncProbeOps, data: Any) -> None:
        if self._update_count(ip, data):
            self.h.ftrace_dump(False)

    def _probe_callback(self, tr: Any, ops: FuncProbeOps, glob: str, param: str | None,
                        enable: bool) -> None:
        """ftrace_trace_probe_callback()."""
        if not enable:
            raise KernelError(errno.EINVAL)
        if glob.startswith("!"):
            self.ft.unregister_ftrace_function_probe_func(glob[1:], tr, ops)
            return
        count: int = UNLIMITED
        if param is not None:
            number = param.split(":", 1)[0]
            if number:
                err, v = kstrtoul(number)
                if err:
                    raise KernelError(errno.EINVAL)
                count = v
        self.ft.register_ftrace_function_probe(glob, tr, ops, count)

    def _onoff_callback(self, tr: Any, hash_: FtraceHash, glob: str, cmd: str, param: str | None,
                        enable: bool) -> None:
        if tr is None:
            raise KernelError(errno.ENODEV)
        if cmd == "traceon":
            ops = self.traceon_count if param is not None else self.traceon
        else:
            ops = self.traceoff_count if param is not None else self.traceoff
        self._probe_callback(tr, ops, glob, param, enable)

    def _stacktrace_callback(self, tr: Any, hash_: FtraceHash, glob: str, cmd: str,
                             param: str | None, enable: bool) -> None:
        if tr is None:
            raise KernelError(errno.ENODEV)
        ops = self.stacktrace_count if param is not None else self.stacktrace
        self._probe_callback(tr, ops, glob, param, enable)

    def _dump_callback(self, tr: Any, hash_: FtraceHash, glob: str, cmd: str,
                       param: str | None, enable: bool) -> None:
        if tr is None:
            raise KernelError(errno.ENODEV)
        self._probe_callback(tr, self.dump, glob, "1", enable)  # only dump once

    def _cpudump_callback(self, tr: Any, hash_: FtraceHash, glob: str, cmd: str,
                          param: str | None, enable: bool) -> None:
        if tr is None:
            raise KernelError(errno.ENODEV)
        self._probe_callback(tr, self.cpudump, glob, "1", enable)

    # ------------------------------------------------------------------ snapshot (trace.c)
    def _snapshot(self, ip: int, pip: int, tr: Any, ops: FuncProbeOps, data: Any) -> None:
        self.h.tracing_snapshot_instance(tr)

    def _snapshot_count(self, ip: int, pip: int, tr: Any, ops: FuncProbeOps, data: Any) -> None:
        if data is not None and ip in data:
            if _signed(data[ip]) <= 0:
                return
            data[ip] -= 1
        self.h.tracing_snapshot_instance(tr)

    def _snapshot_print(self, ip: int, ops: FuncProbeOps, data: Any) -> str:
        return self._probe_print("snapshot", ip, data)

    def _snapshot_callback(self, tr: Any, hash_: FtraceHash, glob: str, cmd: str,
                           param: str | None, enable: bool) -> None:
        if tr is None:
            raise KernelError(errno.ENODEV)
        if not enable:
            raise KernelError(errno.EINVAL)
        ops = self.snapshot_count if param is not None else self.snapshot
        if glob.startswith("!"):
            self.ft.unregister_ftrace_function_probe_func(glob[1:], tr, ops)
            self.h.tracing_disarm_snapshot(tr)
            return
        count = UNLIMITED
        if param is not None:
            number = param.split(":", 1)[0]
            if number:
                err, v = kstrtoul(number)
                if err:
                    raise KernelError(errno.EINVAL)
                count = v
        self.h.tracing_arm_snapshot(tr)
        try:
            self.ft.register_ftrace_function_probe(glob, tr, ops, count)
        except KernelError:
            self.h.tracing_disarm_snapshot(tr)
            raise

    # ------------------------------------------------------------- trace_events.c
    def _event_probe(self, ip: int, pip: int, tr: Any, ops: FuncProbeOps, data: Any) -> None:
        edata = data.get(ip) if data is not None else None
        if edata is None:
            return
        self.h.set_event_soft_disabled(edata.file, not edata.enable)

    def _event_count_probe(self, ip: int, pip: int, tr: Any, ops: FuncProbeOps, data: Any) -> None:
        edata = data.get(ip) if data is not None else None
        if edata is None or not edata.count:
            return
        if edata.enable == (not self.h.event_soft_disabled(edata.file)):
            return
        if edata.count != UNLIMITED:
            edata.count -= 1
        self.h.set_event_soft_disabled(edata.file, not edata.enable)

    def _event_print(self, ip: int, ops: FuncProbeOps, data: Any) -> str:
        edata = data.get(ip) if data is not None else None
        if edata is None:
            return ""
        i = self.ft.ip_to_index(ip)
        system, name = self.h.event_name(edata.file)
        head = (f"{self.ft.rec_name(i) if i is not None else hex(ip)}:"
                f"{ENABLE_EVENT_STR if edata.enable else DISABLE_EVENT_STR}:{system}:{name}")
        if edata.count == UNLIMITED:
            return head + ":unlimited\n"
        return f"{head}:count={_signed(edata.count)}\n"

    @staticmethod
    def _event_init(ops: FuncProbeOps, tr: Any, ip: int, init_data: Any, probe: FuncProbe) -> None:
        m = _mapper(probe)
        if ip in m:
            raise KernelError(errno.EBUSY)
        m[ip] = init_data
        init_data.ref += 1

    def _free_probe_data(self, edata: _EventProbeData) -> None:
        edata.ref -= 1
        if not edata.ref:
            self.h.event_enable_disable(edata.file, False, True)
            self.h.event_put_ref(edata.file)

    def _event_free(self, ops: FuncProbeOps, tr: Any, ip: int, probe: FuncProbe) -> None:
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

    def _event_enable_func(self, tr: Any, hash_: FtraceHash, glob: str, cmd: str,
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
        file = self.h.find_event_file(tr, system, event)
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
        data = _EventProbeData(file, UNLIMITED, 0, enable)
        if count_param is not None:
            number = count_param.split(":", 1)[0]
            if not number:
                raise KernelError(errno.EINVAL)
            err, v = kstrtoul(number)
            if err:
                raise KernelError(errno.EINVAL)
            data.count = v
        if not self.h.event_try_get_ref(file):
            raise KernelError(errno.EBUSY)
        try:
            self.h.event_enable_disable(file, True, True)
        except KernelError:
            self.h.event_put_ref(file)
            raise
        try:
            n = self.ft.register_ftrace_function_probe(glob, tr, ops, data)
        except KernelError:
            self.h.event_enable_disable(file, False, True)
            self.h.event_put_ref(file)
            raise
        if not n:
            self.h.event_enable_disable(file, False, True)
            self.h.event_put_ref(file)
            raise KernelError(errno.ENOENT)


class _EventProbeData:
    """``struct event_probe_data``."""

    __slots__ = ("file", "count", "ref", "enable")

    def __init__(self, file: Any, count: int, ref: int, enable: bool) -> None:
        self.file = file
        self.count = count
        self.ref = ref
        self.enable = enable


def register_func_commands(ftrace: Ftrace, hooks: FuncCmdHooks) -> FuncCommands:
    """Register every function command with ``ftrace``; returns the bound set."""
    cmds = FuncCommands(ftrace, hooks)
    cmds.register()
    return cmds
