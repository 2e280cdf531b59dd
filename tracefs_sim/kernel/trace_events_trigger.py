"""Event triggers (kernel/trace/trace_events_trigger.c).

The ``event_command`` registry (register_event_command()): this module registers
``traceon``, ``traceoff``, ``snapshot``, ``stacktrace``, ``enable_event`` and
``disable_event`` when the kernel builds ``TriggerCommands``; trace_events_hist.py
registers ``enable_hist``, ``disable_hist`` and ``hist`` right after, as
register_trigger_cmds() does.  The ``trigger`` file text and parsing (``CMD[:COUNT]
[if FILTER]``, ``!CMD`` removal by trigger type, an O_TRUNC open removing only the hist
triggers) look commands up by name, and the calls made when the event fires go through
each trigger's command.  Registering a
trigger soft-enables its event (TRIGGER_MODE) so the tracepoint runs even while the
event is not enabled for recording; ``enable_event`` soft-enables its target and flips
its SOFT_DISABLED bit when it fires.

Errors: every command's parse and register return 0 or -errno as in the kernel; only
the file-facing ``write()`` raises ``KernelError`` for the adapter.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import KernelError
from .lib import PAGE_SIZE, isdigit, kstrtoul
from .trace_events_filter import Pred, create_filter
from .trace_events_h import (
    ETT_EVENT_ENABLE,
    ETT_EVENT_EPROBE,
    ETT_NONE,
    ETT_SNAPSHOT,
    ETT_STACKTRACE,
    ETT_TRACE_ONOFF,
    EVENT_FILE_FL_SOFT_DISABLED,
    EVENT_FILE_FL_TRIGGER_COND,
    EVENT_FILE_FL_TRIGGER_MODE,
)
from .trace_flags import TRACE_STACK

if TYPE_CHECKING:
    from .core import Kernel
    from .kallsyms import Kallsyms
    from .trace_events import EventFile, TraceEvents
    from .trace_events_hist_data import HistData

_SPACE = " \t\n\v\f\r"
POST_TRIGGER_COMMANDS = ("traceoff", "stacktrace")   # their event_command .flags
STACK_SKIP_NAMES = ("trace_event_buffer_commit", "trace_event_raw_event_{}", "__traceiter_{}")

Record = bytes | bytearray


def tracepoint_callers(ks: Kallsyms, event: str, names: tuple[str, ...]) -> list[int]:
    """The simulated return addresses above an event's tracepoint, innermost first:
    the functions of ``names`` (``{}`` is the event's name) that exist, each at +0x4b,
    or at its last byte when it is smaller (a return address stays in its function)."""
    out = []
    for pat in names:
        a = ks.addr_of(pat.format(event))
        if a:
            r = ks.lookup_addr(a)
            size = r[2] if r is not None else 0x4C
            out.append(a + min(0x4B, size - 1))
    return out


@dataclass(eq=False)
class TriggerData:
    """``struct event_trigger_data``: one trigger on one event file.

    ``ops`` is the command (None for an eprobe's trigger, which carries its ``probe``
    function instead: enable_eprobe() attaches it without a registered command).
    ``hist`` is a hist trigger's private data; ``name``/``named_data`` its sharing.
    """

    cmd: str
    ops: EventCommand | None = None
    count: int = -1
    filter_str: str | None = None
    pred: Pred | None = None
    target: EventFile | None = None       # enable_event / disable_event / *_hist
    system: str = ""
    event: str = ""
    paused: bool = False
    name: str | None = None
    named_data: TriggerData | None = None
    hist: HistData | None = None
    probe: Callable[[Record], None] | None = None

    @property
    def trigger_type(self) -> int:
        return self.ops.trigger_type if self.ops is not None else (
            ETT_EVENT_EPROBE if self.probe is not None else ETT_NONE)

    def show(self) -> str:
        assert self.ops is not None
        return self.ops.print(self)


class EventCommand:
    """``struct event_command`` and its ``event_trigger_ops``: one trigger command.

    The default parse is event_trigger_parse() (``CMD[:COUNT] [if FILTER]``), the
    default registration register_trigger() (one trigger per type on a file).
    """

    needs_rec = False           # EVENT_CMD_FL_NEEDS_REC: the trigger reads the record

    def __init__(self, triggers: TriggerCommands, name: str, trigger_type: int) -> None:
        self.triggers = triggers
        self.kernel = triggers.kernel
        self.name = name
        self.trigger_type = trigger_type
        # EVENT_CMD_FL_POST_TRIGGER: runs once the record that fired it is written
        self.post_trigger = name in POST_TRIGGER_COMMANDS

    # ------------------------------------------------------------------ parsing
    def parse(self, file: EventFile, glob: str, cmd: str, param_and_filter: str | None) -> int:
        """event_trigger_parse()."""
        remove = glob.startswith("!")
        ret, param, flt = event_trigger_separate_filter(param_and_filter, False)
        if ret:
            return ret
        data = TriggerData(cmd, self)
        if remove:
            self.unreg(file, data)
            return 0
        ret = event_trigger_parse_num(param, data)
        if ret:
            return ret
        ret = self.triggers.set_trigger_filter(file, data, flt)
        if ret < 0:
            return ret
        return self.reg(file, data)

    def same(self, a: TriggerData, b: TriggerData) -> bool:
        """Whether ``a`` is the trigger ``b`` removes (try_unregister_trigger(): the
        first of the same type, so ``!traceon`` removes a ``traceoff``)."""
        return a.trigger_type == b.trigger_type

    def conflicts(self, t: TriggerData, data: TriggerData) -> bool:
        """Whether ``t`` on the file keeps ``data`` from registering: one trigger per
        type (register_trigger())."""
        return t.trigger_type == data.trigger_type

    def reg(self, file: EventFile, data: TriggerData) -> int:
        """register_trigger(): -EEXIST on a conflicting trigger."""
        if any(self.conflicts(t, data) for t in file.triggers):
            return -errno.EEXIST
        return self.triggers.add_trigger(file, data)

    def unreg(self, file: EventFile, data: TriggerData) -> TriggerData | None:
        """unregister_trigger(): the first trigger ``same()`` as ``data``, removed."""
        for t in list(file.triggers):
            if self.same(t, data):
                self.triggers.remove_trigger(file, t)
                return t
        return None

    def unreg_all(self, file: EventFile) -> None:
        """``unreg_all`` of an O_TRUNC open of the trigger file: NULL for the commands
        of this file (their triggers stay); only the hist commands have one
        (trace_events_hist.py)."""

    # ------------------------------------------------------------------ firing, text
    def trigger(self, data: TriggerData, file: EventFile, rec: Record) -> None:
        raise NotImplementedError

    @staticmethod
    def count_down(data: TriggerData) -> bool:
        """The count_func of the counted trigger ops: False once the count is used up."""
        if not data.count:
            return False
        if data.count != -1:
            data.count -= 1
        return True

    def print(self, data: TriggerData) -> str:
        """event_trigger_print()."""
        s = data.cmd + (":unlimited" if data.count == -1 else f":count={data.count}")
        return s + (f" if {data.filter_str}\n" if data.filter_str else "\n")


class TraceOnOffCommand(EventCommand):
    """``traceon`` / ``traceoff``: the instance's ring buffer on or off."""

    def trigger(self, data: TriggerData, file: EventFile, rec: Record) -> None:
        """traceon_count_trigger() / traceoff_count_trigger()."""
        tr = file.tr
        on = data.cmd == "traceon"
        if tr.buffer.record_is_set_on() == on or not self.count_down(data):
            return
        if on:
            self.kernel.trace.tracer_tracing_on(tr)
        else:
            self.kernel.trace.tracer_tracing_off(tr)


class SnapshotCommand(EventCommand):
    """``snapshot``: swap the instance's buffer with its snapshot buffer."""

    def reg(self, file: EventFile, data: TriggerData) -> int:
        """register_snapshot_trigger(): the snapshot buffer is allocated first."""
        self.kernel.trace.alloc_snapshot(file.tr)
        return super().reg(file, data)

    def trigger(self, data: TriggerData, file: EventFile, rec: Record) -> None:
        if self.count_down(data):
            self.kernel.trace.take_snapshot(file.tr)


class StacktraceCommand(EventCommand):
    """``stacktrace``: a TRACE_STACK entry of the tracepoint's callers."""

    def trigger(self, data: TriggerData, file: EventFile, rec: Record) -> None:
        if not self.count_down(data):
            return
        k = self.kernel
        addrs = tracepoint_callers(k.kallsyms, file.call.name, STACK_SKIP_NAMES)
        size = 16 + 8 * (len(addrs) + 1)
        cpu = k.sched.cpu
        tr = file.tr
        off = tr.event_reserve(cpu, TRACE_STACK, size)
        if off < 0:
            return
        buf = tr.event_buf(cpu)
        struct.pack_into("<i", buf, off + 8, len(addrs))
        for i, a in enumerate(addrs + [0]):
            struct.pack_into("<Q", buf, off + 16 + 8 * i, a)
        tr.event_commit(cpu)


class EventEnableCommand(EventCommand):
    """``enable_event`` / ``disable_event:SYS:EVENT[:COUNT] [if FILTER]``: the target
    event is soft-enabled while the trigger lives; firing flips its SOFT_DISABLED bit."""

    def parse(self, file: EventFile, glob: str, cmd: str, param_and_filter: str | None) -> int:
        """event_enable_trigger_parse()."""
        remove = glob.startswith("!")
        if param_and_filter is None or not param_and_filter.strip():
            return -errno.EINVAL
        ret, param, flt = event_trigger_separate_filter(param_and_filter, True)
        if ret:
            return ret
        assert param is not None
        system, sep, param2 = param.partition(":")
        if not sep:
            return -errno.EINVAL
        event, _, rest = param2.partition(":")
        events = self.triggers.events
        call = events.find_event(system, event)
        target = events.file(file.tr, call) if call is not None else None
        if target is None or call is None or call.ignore_enable:
            return -errno.EINVAL
        data = TriggerData(cmd, self, target=target, system=system, event=event)
        if remove:
            self.unreg(file, data)
            return 0
        ret = event_trigger_parse_num(rest if rest else None, data)
        if ret:
            return ret
        ret = self.triggers.set_trigger_filter(file, data, flt)
        if ret < 0:
            return ret
        # the target event is enabled in soft mode for as long as the trigger lives
        events.event_enable_disable(target, True, soft=True)
        ret = self.reg(file, data)
        if ret:
            events.event_enable_disable(target, False, soft=True)
        return ret

    def same(self, a: TriggerData, b: TriggerData) -> bool:
        """event_enable_unregister_trigger(): the same type and target, so
        ``!disable_event:S:E`` removes an ``enable_event:S:E``."""
        return a.trigger_type == b.trigger_type and a.target is b.target

    def conflicts(self, t: TriggerData, data: TriggerData) -> bool:
        """event_enable_register_trigger(): one per command and target."""
        return self.same(t, data)

    def unreg(self, file: EventFile, data: TriggerData) -> TriggerData | None:
        """event_enable_unregister_trigger(): the target leaves soft mode."""
        t = super().unreg(file, data)
        if t is not None:
            assert t.target is not None
            self.triggers.events.event_enable_disable(t.target, False, soft=True)
        return t

    def trigger(self, data: TriggerData, file: EventFile, rec: Record) -> None:
        """event_enable_count_trigger()."""
        target = data.target
        assert target is not None
        if not data.count:
            return
        enable = data.cmd == "enable_event"
        if enable == (not target.flags & EVENT_FILE_FL_SOFT_DISABLED):
            return
        if data.count != -1:
            data.count -= 1
        if enable:
            target.flags &= ~EVENT_FILE_FL_SOFT_DISABLED
        else:
            target.flags |= EVENT_FILE_FL_SOFT_DISABLED

    def print(self, data: TriggerData) -> str:
        """event_enable_trigger_print()."""
        s = f"{data.cmd}:{data.system}:{data.event}"
        s += ":unlimited" if data.count == -1 else f":count={data.count}"
        return s + (f" if {data.filter_str}\n" if data.filter_str else "\n")


def event_trigger_separate_filter(param_and_filter: str | None, required: bool
                                  ) -> tuple[int, str | None, str | None]:
    """event_trigger_separate_filter(): ``PARAM [FILTER]`` as (ret, param, filter)."""
    if param_and_filter is None:
        return (-errno.EINVAL if required else 0), None, None
    if not required and not isdigit(param_and_filter[:1]):
        return 0, None, param_and_filter
    sep = min((i for i, c in enumerate(param_and_filter) if c in " \t"), default=-1)
    if sep < 0:
        return 0, param_and_filter, None
    flt = param_and_filter[sep + 1:].lstrip(_SPACE) or None
    return 0, param_and_filter[:sep], flt


def event_trigger_parse_num(param: str | None, data: TriggerData) -> int:
    """event_trigger_parse_num(): ``COUNT[:...]`` with kstrtoul(number, 0)."""
    if param is None:
        return 0
    number = param.split(":", 1)[0]
    if not number:
        return -errno.EINVAL
    err, count = kstrtoul(number, 0)
    if err:
        return err
    data.count = count
    return 0


class TriggerCommands:
    """The per-kernel ``trigger_commands`` list and the trigger file's operations."""

    def __init__(self, kernel: Kernel, events: TraceEvents) -> None:
        self.kernel = kernel
        self.events = events
        self.commands: dict[str, EventCommand] = {}     # in registration order
        # register_trigger_cmds(), the part of this file
        for cmd in (TraceOnOffCommand(self, "traceon", ETT_TRACE_ONOFF),
                    TraceOnOffCommand(self, "traceoff", ETT_TRACE_ONOFF),
                    SnapshotCommand(self, "snapshot", ETT_SNAPSHOT),
                    StacktraceCommand(self, "stacktrace", ETT_STACKTRACE),
                    EventEnableCommand(self, "enable_event", ETT_EVENT_ENABLE),
                    EventEnableCommand(self, "disable_event", ETT_EVENT_ENABLE)):
            self.register_event_command(cmd)

    def register_event_command(self, cmd: EventCommand) -> None:
        """register_event_command(): a second command of the same name is a bug."""
        if cmd.name in self.commands:
            raise ValueError(f"trigger command {cmd.name} registered twice")
        self.commands[cmd.name] = cmd

    # --------------------------------------------------------------- file text
    def available_text(self) -> str:
        return "# Available triggers:\n#" + "".join(" " + c for c in self.commands) + "\n"

    def show(self, file: EventFile) -> str:
        """trigger_show(); eprobes' triggers print nothing."""
        shown = [t for t in file.triggers if t.probe is None]
        if not shown:
            return self.available_text()
        return "".join(t.show() for t in shown)

    # --------------------------------------------------------------- parsing
    def write(self, file: EventFile, data: bytes) -> int:
        """event_trigger_regex_write(): raises KernelError for the adapter."""
        if not data:
            return 0
        if len(data) >= PAGE_SIZE:
            raise KernelError(errno.EINVAL)
        text = data.decode("latin-1")
        nul = text.find("\0")
        if nul >= 0:
            text = text[:nul]
        ret = self.process(file, text.strip(_SPACE))
        if ret < 0:
            raise KernelError(-ret)
        return len(data)

    def process(self, file: EventFile, buff: str) -> int:
        """trigger_process_regex(): 0 or -errno."""
        buff = buff.lstrip(_SPACE)
        cut = min((i for i, c in enumerate(buff) if c in ": \t"), default=-1)
        if cut >= 0:
            command, nxt = buff[:cut], buff[cut + 1:].lstrip(_SPACE) or None
        else:
            command, nxt = buff, None
        p = self.commands.get(command.removeprefix("!"))
        if p is None:
            return -errno.EINVAL
        return p.parse(file, buff, p.name, nxt)

    def set_trigger_filter(self, file: EventFile, data: TriggerData, flt: str | None) -> int:
        """set_trigger_filter(): ``if FILTER``."""
        if flt is None:
            return 0
        word, _, rest = flt.partition(" ")
        if "\t" in word:
            word, _, more = word.partition("\t")
            rest = more + " " + rest
        if word != "if" or not rest:
            return -errno.EINVAL
        f, err = create_filter(file.tr, file.call, rest, self.kernel)
        if err:
            return err
        data.filter_str = rest
        data.pred = f.pred
        return 0

    # --------------------------------------------------------------- registry
    def add_trigger(self, file: EventFile, data: TriggerData) -> int:
        """The list_add_rcu() + trigger mode part of register_trigger()."""
        file.triggers.insert(0, data)
        self.update_cond_flag(file)
        self.trigger_enable_disable(file, True)
        return 0

    def remove_trigger(self, file: EventFile, data: TriggerData) -> None:
        """The list_del_rcu() + trigger mode part of unregister_trigger()."""
        file.triggers.remove(data)
        self.update_cond_flag(file)
        self.trigger_enable_disable(file, False)

    def open_trunc(self, file: EventFile) -> None:
        """event_trigger_regex_open() with O_TRUNC: each command's unreg_all, newest
        command first (the trigger_commands list order): only the hist triggers go."""
        for cmd in reversed(self.commands.values()):
            cmd.unreg_all(file)

    def clear_event_triggers(self, file: EventFile) -> None:
        """clear_event_triggers() for one file (instance removal): every command's
        trigger; eprobes' triggers are not commands and stay."""
        for t in list(file.triggers):
            if t.ops is not None:
                t.ops.unreg(file, t)

    def attach_probe(self, file: EventFile, data: TriggerData) -> None:
        """enable_eprobe(): an eprobe's trigger (``data.probe`` is called with each
        record of ``file``'s event) goes at the tail of the list."""
        file.triggers.append(data)
        self.trigger_enable_disable(file, True)
        self.update_cond_flag(file)

    def detach_probe(self, file: EventFile, data: TriggerData) -> bool:
        """disable_eprobe(): False when the trigger is not on ``file``."""
        if not any(t is data for t in file.triggers):
            return False
        file.triggers = [t for t in file.triggers if t is not data]
        self.trigger_enable_disable(file, False)
        self.update_cond_flag(file)
        return True

    def update_cond_flag(self, file: EventFile) -> None:
        """update_cond_flag(): a filter, a post trigger, or a command that needs the
        record (hist, an eprobe)."""
        if any(t.pred is not None or t.probe is not None
               or (t.ops is not None and (t.ops.needs_rec or t.ops.post_trigger))
               for t in file.triggers):
            file.flags |= EVENT_FILE_FL_TRIGGER_COND
        else:
            file.flags &= ~EVENT_FILE_FL_TRIGGER_COND

    def trigger_enable_disable(self, file: EventFile, on: bool) -> None:
        """trace_event_trigger_enable_disable()."""
        self.events.attach_gen += 1     # the file's triggers changed (Tracepoint.silent)
        if on:
            file.tm_ref += 1
            if file.tm_ref != 1:
                return
            file.flags |= EVENT_FILE_FL_TRIGGER_MODE
            self.events.event_enable_disable(file, True, soft=True)
        else:
            file.tm_ref -= 1
            if file.tm_ref != 0:
                return
            file.flags &= ~EVENT_FILE_FL_TRIGGER_MODE
            self.events.event_enable_disable(file, False, soft=True)

    # --------------------------------------------------------------- firing
    def event_triggers_call(self, file: EventFile, rec: Record | None) -> int:
        """event_triggers_call(): without a record (``rec`` None, a file whose triggers
        need none) every trigger runs; with one, each trigger whose filter matches it,
        except those that must run once it is written, whose event_trigger_type bits are
        returned for event_triggers_post_call(): the post triggers (traceoff,
        stacktrace: EVENT_CMD_FL_POST_TRIGGER) and the eprobes (their record is nested
        in this one: the kernel writes it while this one is reserved, after it in the
        buffer; here it is written after this one is committed)."""
        tt = 0
        for t in list(file.triggers):
            if t.paused:
                continue
            if rec is None:
                self._fire(file, t, None)
                continue
            if t.pred is not None and not t.pred(rec, 0):
                continue
            if t.probe is not None or (t.ops is not None and t.ops.post_trigger):
                tt |= t.trigger_type
                continue
            self._fire(file, t, rec)
        return tt

    def event_triggers_post_call(self, file: EventFile, tt: int, rec: Record) -> None:
        """event_triggers_post_call(): the triggers event_triggers_call() deferred."""
        for t in list(file.triggers):
            if t.paused or not t.trigger_type & tt:
                continue
            if t.probe is not None:
                if t.pred is None or t.pred(rec, 0):
                    self._fire(file, t, rec)
            else:
                self._fire(file, t, None)

    def _fire(self, file: EventFile, t: TriggerData, rec: Record | None) -> None:
        if t.probe is not None:       # eprobe_trigger_func(): needs the record
            if rec:
                t.probe(rec)
            return
        assert t.ops is not None
        t.ops.trigger(t, file, rec or b"")

