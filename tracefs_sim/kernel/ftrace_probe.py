"""Function probes and the ``FUNC:CMD[:PARAM]`` commands of set_ftrace_filter
(kernel/trace/ftrace.c: ftrace_func_probe, register_ftrace_function_probe,
register_ftrace_command, ftrace_process_regex, and the ``mod`` command).

A command (``traceon``, ``snapshot``, ``mod``…) is a callback registered by name; the
probe commands register a ``FuncProbeOps`` on the matching functions.  Each probe_ops
of a trace array is one ``FuncProbe`` with its own ftrace_ops (callback
``function_trace_probe_call``) whose filter hash holds the probed functions, so probes
show in ``enabled_functions`` on their own.  ``FUNC:mod:MODULE`` for a module that is
not loaded is remembered in the array's ``mod_trace``/``mod_notrace`` list
(``ftrace_mod_load``) and listed by the filter files.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import KernelError
from .ftrace_ops import OPS_FL_ENABLED, OPS_FL_INITIALIZED, FtraceHash, FtraceOps
from .ftrace_records import Glob, filter_parse_regex, match_str

if TYPE_CHECKING:
    from .ftrace import Ftrace
    from .mm import Regs
    from .trace import TraceArray

# ftrace_func_mapper: ip -> the probe_ops' void * of that function (a count, an
# event_probe_data…), kept in FuncProbe.data
ProbeData = dict[int, Any]
ProbeFunc = Callable[[int, int, "TraceArray", "FuncProbeOps", "ProbeData | None"], None]
ProbePrint = Callable[[int, "FuncProbeOps", "ProbeData | None"], str]
ProbeInit = Callable[["FuncProbeOps", "TraceArray", int, object, "FuncProbe"], None]
ProbeFree = Callable[["FuncProbeOps", "TraceArray", int, "FuncProbe"], None]
# ftrace_func_command.func(tr, hash, func, cmd, param, enable); tr is None for the
# filter files of an ops without a trace array (stack_trace_filter)
CommandFunc = Callable[["TraceArray | None", FtraceHash, str, str, "str | None", bool], None]


@dataclass(eq=False)
class FuncProbeOps:
    """``struct ftrace_probe_ops``: one kind of function probe (traceoff, snapshot…).

    ``func(ip, parent_ip, tr, probe_ops, data)``; ``print(ip, probe_ops, data) -> str``
    (one line with its newline); ``init(probe_ops, tr, ip, init_data, probe)`` stores
    per-ip data in ``probe.data`` (raise KernelError to fail); ``free(probe_ops, tr, ip,
    probe)`` with ``ip == 0`` frees everything.
    """

    name: str
    func: ProbeFunc
    print: ProbePrint | None = None
    init: ProbeInit | None = None
    free: ProbeFree | None = None


@dataclass(eq=False)
class FuncProbe:
    """``struct ftrace_func_probe``: a probe_ops instance of one trace array."""

    probe_ops: FuncProbeOps
    tr: TraceArray
    data: ProbeData | None = None
    ref: int = 0
    ops: FtraceOps = field(init=False)

    def __post_init__(self) -> None:
        self.ops = FtraceOps(self.function_trace_probe_call, OPS_FL_INITIALIZED, name="probe")

    def function_trace_probe_call(self, ip: int, pip: int, op: FtraceOps, fregs: Regs | None) -> None:
        """The ftrace_ops callback of the probe: the probe_ops' function."""
        po = self.probe_ops
        po.func(ip, pip, self.tr, po, self.data)


@dataclass(slots=True)
class ModLoad:
    """``struct ftrace_mod_load``: a ``FUNC:mod:MODULE`` cached for a module not loaded."""

    func: str
    module: str
    enable: bool


class FtraceProbes:
    """The command registry and the function probes of one kernel's ftrace."""

    def __init__(self, ft: Ftrace) -> None:
        self.ft = ft
        self.commands: dict[str, CommandFunc] = {}
        self.register_ftrace_command("mod", self.ftrace_mod_callback)

    # ------------------------------------------------------------------ commands
    def register_ftrace_command(self, name: str, func: CommandFunc) -> None:
        if name in self.commands:
            raise KernelError(errno.EBUSY)
        self.commands[name] = func

    def unregister_ftrace_command(self, name: str) -> None:
        if self.commands.pop(name, None) is None:
            raise KernelError(errno.ENODEV)

    def process_regex(self, tr: TraceArray | None, hash_: FtraceHash, buff: str, enable: bool) -> None:
        """ftrace_process_regex(): one word of a filter file."""
        func, sep, rest = buff.partition(":")
        if not sep:
            if not self.ft.records.ftrace_match_records(hash_, func):
                raise KernelError(errno.EINVAL)
            return
        command, sep2, nxt = rest.partition(":")
        param = nxt if sep2 else None
        cmd = self.commands.get(command)
        if cmd is None:
            raise KernelError(errno.EINVAL)
        cmd(tr, hash_, func, command, param, enable)

    # ------------------------------------------------------------------ :mod:
    def _cache_mod(self, tr: TraceArray, func: str, module: str, enable: bool) -> None:
        """cache_mod(): remember (or with '!' forget) a filter on a module not loaded."""
        st = tr.ftrace_state
        head = st.mod_trace if enable else st.mod_notrace
        if func.startswith("!"):
            f = func[1:]
            found = False
            for m in list(head):
                if m.module != module:
                    continue
                if f == "*" or m.func == f:
                    head.remove(m)
                    found = True
            if not found:
                raise KernelError(errno.EINVAL)
            return
        if self.ft.records.module_exists(module):
            raise KernelError(errno.EINVAL)
        head.insert(0, ModLoad(func, module, enable))

    def ftrace_mod_callback(self, tr: TraceArray | None, hash_: FtraceHash, func: str, cmd: str,
                            module: str | None, enable: bool) -> None:
        """ftrace_mod_callback(): ``FUNC:mod:MODULE``."""
        if tr is None:
            raise KernelError(errno.ENODEV)
        if not self.ft.records.match_records(hash_, func, module):
            self._cache_mod(tr, func, module if module is not None else "", enable)

    # ------------------------------------------------------------------ function probes
    def register_ftrace_function_probe(self, glob: str, tr: TraceArray, probe_ops: FuncProbeOps,
                                       data: object) -> int:
        """register_ftrace_function_probe(): returns the number of new functions."""
        if glob.startswith("!"):
            raise KernelError(errno.EINVAL)
        ft = self.ft
        st = tr.ftrace_state
        probe = next((p for p in st.func_probes if p.probe_ops is probe_ops), None)
        if probe is None:
            probe = FuncProbe(probe_ops, tr)
            st.func_probes.insert(0, probe)
        probe.ref += 1
        try:
            old = probe.ops.func_hash.filter_hash
            hash_ = old.copy()
            if not ft.records.ftrace_match_records(hash_, glob):
                raise KernelError(errno.EINVAL)
            added: list[int] = []
            for i in hash_.ents:
                if i in old.ents:
                    continue
                if probe_ops.init is not None:
                    try:
                        probe_ops.init(probe_ops, tr, ft.ips[i], data, probe)
                    except KernelError:
                        if probe_ops.free is not None and added:
                            probe_ops.free(probe_ops, tr, 0, probe)
                        probe.data = None
                        raise
                added.append(i)
            if not added:
                raise KernelError(errno.EINVAL)
            try:
                ft.update.hash_move_and_update_ops(probe.ops, hash_, True)
            except KernelError:
                if probe_ops.free is not None:
                    for i in added:
                        probe_ops.free(probe_ops, tr, ft.ips[i], probe)
                raise
            probe.ref += len(added)
            if not probe.ops.flags & OPS_FL_ENABLED:
                ft.update.ftrace_startup(probe.ops)
            return len(added)
        finally:
            self._release_probe(probe)

    def _release_probe(self, probe: FuncProbe) -> None:
        """release_probe(): the last reference frees the probe's data and the probe."""
        probe.ref -= 1
        if not probe.ref:
            if probe.probe_ops.free is not None:
                probe.probe_ops.free(probe.probe_ops, probe.tr, 0, probe)
            func_probes = probe.tr.ftrace_state.func_probes
            if probe in func_probes:
                func_probes.remove(probe)

    def unregister_ftrace_function_probe_func(self, glob: str | None, tr: TraceArray,
                                              probe_ops: FuncProbeOps) -> None:
        """unregister_ftrace_function_probe_func(): ENODEV if that probe_ops has none."""
        func_g: Glob | None = None
        if glob and glob != "*":
            func_g = filter_parse_regex(glob)
            if func_g.negate:
                raise KernelError(errno.EINVAL)
        ft = self.ft
        probe = next((p for p in tr.ftrace_state.func_probes if p.probe_ops is probe_ops), None)
        if probe is None:
            raise KernelError(errno.ENODEV)
        probe.ref += 1
        try:
            old = probe.ops.func_hash.filter_hash
            if old.empty():
                raise KernelError(errno.EINVAL)
            hash_ = old.copy()
            removed = []
            names = ft.names
            for i in list(hash_.ents):
                if func_g is not None and not match_str(names[i], func_g):
                    continue
                removed.append(i)
                del hash_.ents[i]
            if not removed:
                raise KernelError(errno.EINVAL)
            probe.ref -= len(removed)
            if hash_.empty() and probe.ops.flags & OPS_FL_ENABLED:
                ft.update.ftrace_shutdown(probe.ops)
            ft.update.hash_move_and_update_ops(probe.ops, hash_, True)
            if probe_ops.free is not None:
                for i in removed:
                    probe_ops.free(probe_ops, tr, ft.ips[i], probe)
        finally:
            self._release_probe(probe)

    def clear_ftrace_function_probes(self, tr: TraceArray) -> None:
        for probe in list(tr.ftrace_state.func_probes):
            try:
                self.unregister_ftrace_function_probe_func(None, tr, probe.probe_ops)
            except KernelError:
                pass
