"""Generic dynamic events (kernel/trace/trace_dynevent.c/.h).

A registry of dynamic-event kinds (``DynEventOps``: create/show/is_busy/free/match) and
the list of live dynamic events.  The ``dynamic_events`` file is just:

* open with O_TRUNC for write → ``release_all()`` (EBUSY if any event is enabled);
* read → ``show()`` (each event's ``ops.show``, in creation order);
* write → ``write(data)`` = ``trace_parse_run_command`` with ``create_dyn_event``:
  lines split on '\\n', '#' starts a comment, every line (even an empty one) is offered
  to the kinds in registration order until one does not answer -ECANCELED ("not my
  syntax"); a line starting with '-' or '!' releases events instead.  The first failing
  line stops the write and its errno is returned to the writer.

The kinds return ``0`` or ``-errno`` like the kernel; only ``write``/``open_trunc``
raise ``KernelError``.  The probe log (``ProbeLog``, trace_probe.c's
``trace_probe_log``) lives here: one per kernel, used by every kind while it parses a
command, which the kernel serializes with ``dyn_event_ops_mutex``.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from .errors import KernelError
from .lib import argv_split

if TYPE_CHECKING:
    from .core import Kernel
    from .trace_probe import ProbeErr

WRITE_BUFSIZE = 4096


LogErrFn = Callable[[str, str, str, int], None]


class ProbeLog:
    """``struct trace_probe_log`` + its helpers; one per Kernel (the kernel's static,
    serialized by dyn_event_ops_mutex).

    ``sink(loc, cmd, err_text, pos)`` is ``tracing_log_err`` on the global trace array
    (``tr.log_err``); ``loc`` gets the ``": error: "`` suffix there.
    """

    __slots__ = ("sink", "subsystem", "argv", "index")

    def __init__(self, sink: LogErrFn | None = None) -> None:
        self.sink = sink
        self.subsystem = ""
        self.argv: list[str] | None = None
        self.index = 0

    def init(self, subsystem: str, argv: list[str]) -> None:
        self.subsystem = subsystem
        self.argv = argv
        self.index = 0

    def clear(self) -> None:
        self.subsystem = ""
        self.argv = None
        self.index = 0

    def set_index(self, index: int) -> None:
        self.index = index

    def command_and_pos(self, offset: int) -> tuple[str, int]:
        """The command text and caret position exactly as ``__trace_probe_log_err``."""
        argv = self.argv or []
        length = pos = 0
        for i, a in enumerate(argv):
            if i == self.index:
                pos = length
            length += len(a.encode("latin-1", "replace")) + 1
        if self.index >= len(argv):
            # Next to the last arg + space (len includes the NUL).
            pos = length
            offset = 0
        return " ".join(argv), (pos + offset) & 0xFFFF

    def err(self, offset: int, err: ProbeErr) -> None:
        """trace_probe_log_err(): ``err``'s text with the caret ``offset`` bytes into the
        current argument."""
        if not self.argv:
            return
        cmd, pos = self.command_and_pos(offset)
        if self.sink is not None:
            self.sink(self.subsystem, cmd, err.value, pos)


class DynEvent:
    """``struct dyn_event``: the list head every dynamic event embeds."""

    ops: DynEventOps

    def __init__(self, ops: DynEventOps) -> None:
        self.ops = ops


class DynEventOps(Protocol):
    """``struct dyn_event_operations``."""

    def create(self, raw_command: str) -> int:
        """Parse and create; -ECANCELED when the command is not this kind's syntax."""
        ...

    def show(self, ev: DynEvent) -> str:
        """The definition line (with its trailing newline) for ``dynamic_events``."""
        ...

    def is_busy(self, ev: DynEvent) -> bool: ...

    def free(self, ev: DynEvent) -> int:
        """Delete the event: 0 or -errno (EBUSY when enabled or in use)."""
        ...

    def match(self, system: str | None, event: str, argv: list[str], ev: DynEvent) -> bool:
        """``-:[SYSTEM/]EVENT [ARGS]`` matching; ``event`` may be '' (any event)."""
        ...


class DynEvents:
    """The dyn_event_ops_list + dyn_event_list of one kernel."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.ops_list: list[DynEventOps] = []
        self.events: list[DynEvent] = []
        self.probe_log = ProbeLog(kernel.trace.global_trace.log_err)
        # Called after a release: tracing_reset_all_online_cpus().
        self.on_release: list[Callable[[], None]] = []

    # ------------------------------------------------------------------ registry
    def register(self, ops: DynEventOps) -> int:
        """``dyn_event_register``."""
        self.ops_list.append(ops)
        return 0

    def add(self, ev: DynEvent) -> None:
        """``dyn_event_add``: append to the list (creation order is the show order)."""
        self.events.append(ev)

    def remove(self, ev: DynEvent) -> None:
        """``dyn_event_remove``."""
        try:
            self.events.remove(ev)
        except ValueError:
            pass

    def of_kind(self, ops: DynEventOps | None) -> list[DynEvent]:
        """The events of one kind (a copy: the caller may free them), or all of them."""
        return [ev for ev in self.events if ops is None or ev.ops is ops]

    # ------------------------------------------------------------------ commands
    def create(self, raw_command: str) -> int:
        """``create_dyn_event``: 0 or -errno."""
        if raw_command[:1] in ("-", "!"):
            return self.release(raw_command, None)
        ret = -errno.ENODEV
        for ops in self.ops_list:
            ret = ops.create(raw_command)
            if not ret or ret != -errno.ECANCELED:
                break
        if ret == -errno.ECANCELED:
            ret = -errno.EINVAL
        return ret

    def create_of(self, raw_command: str, ops: DynEventOps) -> int:
        """``dyn_event_create``: offer the command to one kind only (kprobe_events…)."""
        return ops.create(raw_command)

    def release(self, raw_command: str, type_: DynEventOps | None) -> int:
        """``dyn_event_release``: ``-:[GRP/]EVENT [args]`` or ``!<definition>``."""
        argv = argv_split(raw_command)
        if not argv:
            return -errno.EINVAL
        a0 = argv[0]
        if a0[0] == "-":
            if a0[1:2] != ":":
                return -errno.EINVAL
            event = a0[2:]
        else:
            colon = a0.find(":")
            if colon < 0:
                return -errno.EINVAL
            event = a0[colon + 1:]
        system: str | None = None
        slash = event.find("/")
        if slash >= 0:
            system, event = event[:slash], event[slash + 1:]
        if system is None and event == "":
            return -errno.EINVAL
        ret = -errno.ENOENT
        for ev in self.of_kind(type_):
            if ev.ops.match(system, event, argv[1:], ev):
                ret = ev.ops.free(ev)
                if ret:
                    break
        self._reset_buffers()
        return ret

    def release_all(self, type_: DynEventOps | None = None) -> int:
        """``dyn_events_release_all``: EBUSY (nothing freed) if any matching one is busy."""
        ret = 0
        events = self.of_kind(type_)
        if any(ev.ops.is_busy(ev) for ev in events):
            ret = -errno.EBUSY
        else:
            for ev in events:
                ret = ev.ops.free(ev)
                if ret:
                    break
        self._reset_buffers()
        return ret

    def _reset_buffers(self) -> None:
        for cb in self.on_release:
            cb()

    # ------------------------------------------------------------------ the file
    def show(self, type_: DynEventOps | None = None) -> str:
        """The ``dynamic_events`` text (or one kind's file with ``type_``)."""
        return "".join(ev.ops.show(ev) for ev in self.events
                       if type_ is None or ev.ops is type_)

    def open_trunc(self, type_: DynEventOps | None = None) -> None:
        """O_TRUNC open for write: release everything or fail the open."""
        ret = self.release_all(type_)
        if ret < 0:
            raise KernelError(-ret)

    def write(self, data: bytes, createfn: Callable[[str], int] | None = None) -> int:
        """``trace_parse_run_command``: returns the bytes consumed, raises on error."""
        ret = parse_run_command(data, createfn or self.create)
        if ret < 0:
            raise KernelError(-ret)
        return ret


def parse_run_command(data: bytes, createfn: Callable[[str], int]) -> int:
    """``trace_parse_run_command``: bytes consumed or -errno (the first failing line's)."""
    count = len(data)
    done = 0
    while done < count:
        size = count - done
        if size >= WRITE_BUFSIZE:
            size = WRITE_BUFSIZE - 1
        kbuf = data[done:done + size]
        nul = kbuf.find(b"\0")
        if nul >= 0:
            kbuf = kbuf[:nul]
        pos = 0
        while True:
            nl = kbuf.find(b"\n", pos)
            if nl >= 0:
                line = kbuf[pos:nl]
                size = nl - pos + 1
            else:
                line = kbuf[pos:]
                size = len(line)
                if done + size < count:
                    if pos != 0:
                        break
                    return -errno.EINVAL   # "Line length is too long"
            done += size
            hash_ = line.find(b"#")
            if hash_ >= 0:
                line = line[:hash_]
            ret = createfn(line.decode("latin-1"))
            if ret:
                return ret
            pos += size
            if done >= count:
                break
    return done


def boot(kernel: Kernel) -> DynEvents:
    """The dynamic-event core; kinds register themselves with ``register``."""
    dyn = DynEvents(kernel)
    tracing = kernel.trace

    def reset_all() -> None:
        # tracing_reset_all_online_cpus(): only arrays where a removed event had been
        # enabled (trace_events' remove path sets tr.clear_trace).
        for tr in tracing.all_arrays():
            if tr.clear_trace:
                tr.clear_trace = False
                tracing.reset_buffer(tr)
                if tr.max_buffer is not None:
                    tr.max_buffer.reset(None)

    dyn.on_release.append(reset_all)
    return dyn
