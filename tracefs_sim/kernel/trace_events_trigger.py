"""Event triggers (kernel/trace/trace_events_trigger.c).

The command registry (``traceon``, ``traceoff``, ``snapshot``, ``stacktrace``,
``enable_event``, ``disable_event``, ``enable_hist``, ``disable_hist``; ``hist`` itself
is trace_events_hist.py),
the ``trigger`` file text and parsing (``CMD[:COUNT] [if FILTER]``, ``!CMD`` removal,
O_TRUNC removes all), and the calls made when the event fires.  Registering a trigger
soft-enables its event (TRIGGER_MODE) so the tracepoint runs even while the event is
not enabled for recording; ``enable_event`` soft-enables its target and flips its
SOFT_DISABLED bit when it fires.
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import KernelError
from .trace_events_h import (
    ETT_EVENT_ENABLE,
    ETT_EVENT_EPROBE,
    ETT_EVENT_HIST,
    ETT_HIST_ENABLE,
    ETT_SNAPSHOT,
    ETT_STACKTRACE,
    ETT_TRACE_ONOFF,
    EVENT_FILE_FL_SOFT_DISABLED,
    EVENT_FILE_FL_TRIGGER_COND,
    EVENT_FILE_FL_TRIGGER_MODE,
)

if TYPE_CHECKING:
    from .core import Kernel
    from .trace_events import EventFile, TraceEvents

# registration order (trigger_show walks the list in reverse of list_add)
COMMANDS = ("traceon", "traceoff", "snapshot", "stacktrace", "enable_event", "disable_event",
            "enable_hist", "disable_hist", "hist")
TRIGGER_TYPE = {"traceon": ETT_TRACE_ONOFF, "traceoff": ETT_TRACE_ONOFF, "snapshot": ETT_SNAPSHOT,
                "stacktrace": ETT_STACKTRACE, "enable_event": ETT_EVENT_ENABLE,
                "disable_event": ETT_EVENT_ENABLE, "hist": ETT_EVENT_HIST,
                "enable_hist": ETT_HIST_ENABLE, "disable_hist": ETT_HIST_ENABLE,
                "eprobe": ETT_EVENT_EPROBE}
# EVENT_CMD_FL_POST_TRIGGER: run once the record that fired them is written
POST_TRIGGER_COMMANDS = ("traceoff", "stacktrace")
TARGET_COMMANDS = ("enable_event", "disable_event", "enable_hist", "disable_hist")
PAGE_SIZE = 4096
STACK_SKIP_NAMES = ("trace_event_buffer_commit", "trace_event_raw_event_{}", "__traceiter_{}")


@dataclass
class TriggerData:
    """``struct event_trigger_data``."""

    cmd: str
    count: int = -1
    filter_str: str | None = None
    pred: Any = None
    target: EventFile | None = None       # enable_event / disable_event
    system: str = ""
    event: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def trigger_type(self) -> int:
        return TRIGGER_TYPE.get(self.cmd, 0)

    def show(self) -> str:
        hist = self.extra.get("hist_text")
        if hist is not None:
            return hist(self)
        if self.cmd in TARGET_COMMANDS:
            s = f"{self.cmd}:{self.system}:{self.event}"
        else:
            s = self.cmd
        s += ":unlimited" if self.count == -1 else f":count={self.count}"
        return s + (f" if {self.filter_str}\n" if self.filter_str else "\n")


class TriggerCommands:
    """The per-kernel trigger registry and runner."""

    def __init__(self, kernel: Kernel, events: TraceEvents) -> None:
        self.kernel = kernel
        self.events = events
        from .trace_events_hist import Hists

        self.hists = Hists(kernel, events, self)

    # --------------------------------------------------------------- file text
    def available_text(self) -> str:
        return "# Available triggers:\n#" + "".join(" " + c for c in COMMANDS) + "\n"

    def show(self, file: EventFile) -> str:
        shown = [t for t in file.triggers if "probe" not in t.extra]   # eprobes print nothing
        if not shown:
            return self.available_text()
        return "".join(t.show() for t in shown)

    # --------------------------------------------------------------- parsing
    def write(self, file: EventFile, data: bytes) -> int:
        """event_trigger_regex_write()."""
        if not data:
            return 0
        if len(data) >= PAGE_SIZE:
            raise KernelError(errno.EINVAL)
        text = data.decode("latin-1")
        nul = text.find("\0")
        if nul >= 0:
            text = text[:nul]
        text = text.strip(" \t\n\v\f\r")
        ret = self.process(file, text)
        if ret < 0:
            raise KernelError(-ret)
        return len(data)

    def process(self, file: EventFile, buff: str) -> int:
        """trigger_process_regex()."""
        buff = buff.lstrip(" \t\n\v\f\r")
        cut = min((i for i, c in enumerate(buff) if c in ": \t"), default=-1)
        if cut >= 0:
            command, nxt = buff[:cut], buff[cut + 1:].lstrip(" \t\n\v\f\r") or None
        else:
            command, nxt = buff, None
        glob = buff
        if command.startswith("!"):
            command = command[1:]
        if command not in COMMANDS:
            return -errno.EINVAL
        if command in ("traceon", "traceoff", "snapshot", "stacktrace"):
            return self._parse_simple(file, glob, command, nxt)
        if command in TARGET_COMMANDS:
            return self._parse_enable(file, glob, command, nxt)
        return self._parse_hist(file, glob, nxt)

    def _parse_hist(self, file: EventFile, glob: str, nxt: str | None) -> int:
        """event_hist_trigger_parse(); the trigger prints through the hist code."""
        ret = self.hists.parse(file, glob, "hist", nxt)
        for t in file.triggers:
            if t.cmd == "hist":
                t.extra["hist_text"] = self.hists.trigger_text
        return ret

    @staticmethod
    def _separate(param_and_filter: str | None, required: bool) -> tuple[int, str | None, str | None]:
        """event_trigger_separate_filter(): ``PARAM [FILTER]``."""
        if param_and_filter is None:
            return (-errno.EINVAL if required else 0), None, None
        if not required and not param_and_filter[:1].isdigit():
            return 0, None, param_and_filter
        sep = min((i for i, c in enumerate(param_and_filter) if c in " \t"), default=-1)
        if sep < 0:
            return 0, param_and_filter, None
        flt = param_and_filter[sep + 1:].lstrip(" \t\n\v\f\r") or None
        return 0, param_and_filter[:sep], flt

    def _set_filter(self, file: EventFile, data: TriggerData, flt: str | None) -> int:
        """set_trigger_filter(): ``if FILTER``."""
        if flt is None:
            return 0
        word, _, rest = flt.partition(" ")
        if "\t" in word:
            word, _, more = word.partition("\t")
            rest = more + " " + rest
        if word != "if" or not rest:
            return -errno.EINVAL
        from .trace_events_filter import create_filter

        f, err = create_filter(file.tr, file.call, rest, self.kernel)
        if err:
            return err
        data.filter_str = rest
        data.pred = f.pred
        return 0

    @staticmethod
    def _parse_num(param: str | None, data: TriggerData) -> int:
        if param is None:
            return 0
        number = param.split(":", 1)[0]
        if not number:
            return -errno.EINVAL
        try:
            data.count = int(number, 0)
        except ValueError:
            return -errno.EINVAL
        if data.count < 0:
            return -errno.EINVAL
        return 0

    def _parse_simple(self, file: EventFile, glob: str, cmd: str, nxt: str | None) -> int:
        remove = glob.startswith("!")
        ret, param, flt = self._separate(nxt, False)
        if ret:
            return ret
        data = TriggerData(cmd)
        if remove:
            self._unregister(file, data)
            return 0
        ret = self._parse_num(param, data)
        if ret:
            return ret
        ret = self._set_filter(file, data, flt)
        if ret < 0:
            return ret
        if cmd == "snapshot":
            self.kernel.trace.alloc_snapshot(file.tr)
        return self._register(file, data)

    def _parse_enable(self, file: EventFile, glob: str, cmd: str, nxt: str | None) -> int:
        remove = glob.startswith("!")
        if nxt is None or not nxt.strip():
            return -errno.EINVAL
        ret, param, flt = self._separate(nxt, True)
        if ret:
            return ret
        assert param is not None
        system, sep, param2 = param.partition(":")
        if not sep:
            return -errno.EINVAL
        event, _, rest = param2.partition(":")
        call = self.events.find_event(system, event)
        target = self.events.file(file.tr, call) if call is not None else None
        if target is None or call is None or call.ignore_enable:
            return -errno.EINVAL
        data = TriggerData(cmd, target=target, system=system, event=event)
        if remove:
            self._unregister(file, data)
            return 0
        ret = self._parse_num(rest if rest else None, data)
        if ret:
            return ret
        ret = self._set_filter(file, data, flt)
        if ret < 0:
            return ret
        # the target event is enabled in soft mode for as long as the trigger lives
        self.events.event_enable_disable(target, True, soft=True)
        ret = self._register(file, data)
        if ret:
            self.events.event_enable_disable(target, False, soft=True)
        return ret

    # --------------------------------------------------------------- registry
    def _same(self, a: TriggerData, b: TriggerData) -> bool:
        if a.cmd != b.cmd:
            return False
        if a.trigger_type in (ETT_EVENT_ENABLE, ETT_HIST_ENABLE):
            return a.target is b.target
        return True

    def _register(self, file: EventFile, data: TriggerData) -> int:
        for t in file.triggers:
            if data.trigger_type in (ETT_EVENT_ENABLE, ETT_HIST_ENABLE):
                if self._same(t, data):
                    return -errno.EEXIST
            elif t.trigger_type == data.trigger_type:
                return -errno.EEXIST
        file.triggers.insert(0, data)
        self._update_cond(file)
        self._trigger_mode(file, True)
        return 0

    def _unregister(self, file: EventFile, data: TriggerData) -> None:
        for t in list(file.triggers):
            if self._same(t, data):
                file.triggers.remove(t)
                self._update_cond(file)
                self._trigger_mode(file, False)
                if t.target is not None:
                    self.events.event_enable_disable(t.target, False, soft=True)
                return

    def clear_all(self, file: EventFile) -> None:
        """unreg_all of every command (O_TRUNC open, instance removal); eprobes' triggers
        are not commands and stay."""
        for t in list(file.triggers):
            if "probe" not in t.extra and t.cmd != "hist":
                self._unregister(file, t)
        self.hists.unreg_all(file)

    def attach_probe(self, file: EventFile, data: TriggerData) -> None:
        """enable_eprobe(): an eprobe's trigger (``data.extra["probe"]`` is called with
        each record of ``file``'s event) goes at the tail of the list."""
        file.triggers.append(data)
        self._trigger_mode(file, True)
        self._update_cond(file)

    def detach_probe(self, file: EventFile, data: TriggerData) -> bool:
        """disable_eprobe(): False when the trigger is not on ``file``."""
        if not any(t is data for t in file.triggers):
            return False
        file.triggers = [t for t in file.triggers if t is not data]
        self._trigger_mode(file, False)
        self._update_cond(file)
        return True

    def _update_cond(self, file: EventFile) -> None:
        # update_cond_flag(): a filter, a post trigger, or a command that needs the
        # record (hist, eprobe)
        if any(t.pred is not None or "probe" in t.extra or t.cmd == "hist"
               or t.cmd in POST_TRIGGER_COMMANDS for t in file.triggers):
            file.flags |= EVENT_FILE_FL_TRIGGER_COND
        else:
            file.flags &= ~EVENT_FILE_FL_TRIGGER_COND

    def _trigger_mode(self, file: EventFile, on: bool) -> None:
        """trace_event_trigger_enable_disable()."""
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
    def event_triggers_call(self, file: EventFile, rec: bytes | bytearray | None) -> int:
        """event_triggers_call(): without a record (``rec`` None, a file whose triggers
        need none) every trigger runs; with one, each trigger whose filter matches it,
        except those that must run once it is written, whose event_trigger_type bits are
        returned for event_triggers_post_call(): the post triggers (traceoff,
        stacktrace) and the eprobes (their record is nested in this one: the kernel
        writes it while this one is reserved, after it in the buffer; here it is
        written after this one is committed)."""
        tt = 0
        for t in list(file.triggers):
            if rec is None:
                self._fire(file, t, None)
                continue
            if t.pred is not None and not t.pred(rec, 0):
                continue
            if t.cmd in POST_TRIGGER_COMMANDS or "probe" in t.extra:
                tt |= t.trigger_type
                continue
            self._fire(file, t, rec)
        return tt

    def event_triggers_post_call(self, file: EventFile, tt: int, rec: bytes | bytearray) -> None:
        """event_triggers_post_call(): the triggers event_triggers_call() deferred."""
        for t in list(file.triggers):
            if not t.trigger_type & tt:
                continue
            if "probe" in t.extra:
                if t.pred is None or t.pred(rec, 0):
                    self._fire(file, t, rec)
            else:
                self._fire(file, t, None)

    def _fire(self, file: EventFile, t: TriggerData, rec: bytes | bytearray | None) -> None:
        probe = t.extra.get("probe")
        if probe is not None:       # eprobe_trigger_func(): needs the record
            if rec:
                probe(rec)
            return
        tracing = self.kernel.trace
        tr = file.tr
        cmd = t.cmd
        if cmd == "hist":
            if rec:
                self.hists.fire(t, file, rec)
            return
        if cmd in ("traceon", "traceoff"):
            on = tr.buffer.record_is_set_on()
            if on == (cmd == "traceon"):
                return
            if not t.count:
                return
            if t.count != -1:
                t.count -= 1
            if cmd == "traceon":
                tracing.tracer_tracing_on(tr)
            else:
                tracing.tracer_tracing_off(tr)
            return
        if not t.count:
            return
        if cmd in ("enable_hist", "disable_hist"):   # hist_enable_trigger()
            assert t.target is not None
            if t.count != -1:
                t.count -= 1
            for h in t.target.triggers:
                if h.cmd == "hist":
                    h.extra["paused"] = cmd == "disable_hist"
            return
        if cmd in ("enable_event", "disable_event"):
            target = t.target
            assert target is not None
            enable = cmd == "enable_event"
            if enable == (not target.flags & EVENT_FILE_FL_SOFT_DISABLED):
                return
            if t.count != -1:
                t.count -= 1
            if enable:
                target.flags &= ~EVENT_FILE_FL_SOFT_DISABLED
            else:
                target.flags |= EVENT_FILE_FL_SOFT_DISABLED
            return
        if t.count != -1:
            t.count -= 1
        if cmd == "snapshot":
            tracing.take_snapshot(tr)
        elif cmd == "stacktrace":
            self._stacktrace(file)

    def _stacktrace(self, file: EventFile) -> None:
        """__trace_stack(): a TRACE_STACK entry of the tracepoint's callers."""
        from .trace import TRACE_STACK

        ks = self.kernel.kallsyms
        name = file.call.name
        addrs = []
        for pat in STACK_SKIP_NAMES:
            a = ks.addr_of(pat.format(name))
            if a:
                addrs.append(a + 0x4B)
        size = 16 + 8 * (len(addrs) + 1)
        cpu = self.kernel.sched.cpu
        tr = file.tr
        off = tr.event_reserve(cpu, TRACE_STACK, size)
        if off < 0:
            return
        buf = tr.event_buf(cpu)
        struct.pack_into("<i", buf, off + 8, len(addrs))
        for i, a in enumerate(addrs + [0]):
            struct.pack_into("<Q", buf, off + 16 + 8 * i, a)
        tr.event_commit(cpu)
