"""Event probes: the ``e`` dynamic-event kind (kernel/trace/trace_eprobe.c, 6.12).

Grammar (``__trace_eprobe_create``)::

    e[:[GRP/][EVENT]] SYSTEM.EVENT [FETCHARGS] [if FILTER]

Default group ``eprobes``, default name the attached event's.  Fetch args read the
attached event's record: ``$FIELD`` (FETCH_OP_TP_ARG), ``$comm``, derefs of those.  An
eprobe event is enabled by hanging a trigger (not a trigger command: the ``trigger`` file
does not show it) on the attached event's file in the same instance; each record of that
event is handed to the eprobe, which writes its own record (``e: (SYSTEM.EVENT) ARGS``).
The optional filter is the attached event's filter syntax and decides which records do.
The attached event holds a reference while the eprobe exists (a dynamic one cannot be
removed before it).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .trace_events import EventCall
from .trace_events_filter import create_filter
from .trace_events_h import (
    TRACE_EVENT_FL_EPROBE,
    TRACE_EVENT_FL_IGNORE_ENABLE,
    TRACE_EVENT_FL_KPROBE,
    TRACE_EVENT_FL_UPROBE,
)
from .trace_events_trigger import TriggerData
from .trace_probe import (
    MAX_EVENT_NAME_LEN,
    MAX_TRACE_ARGS,
    NO_REGS,
    PROBE_PRINT_EVENT,
    TPARG_FL_KERNEL,
    TPARG_FL_TEVENT,
    FetchEnv,
    ParseContext,
    ProbeDynEvent,
    ProbeErr,
    TraceProbeKind,
    define_arg_fields,
    set_print_fmt,
    traceprobe_finish_parse,
    traceprobe_parse_event_name,
    traceprobe_parse_probe_arg,
    traceprobe_update_arg,
)
from .trace_probe_tmpl import ProbeEventPrinter, trace_probe_write

if TYPE_CHECKING:
    from .core import Kernel
    from .trace_dynevent import DynEvent
    from .trace_events import EventFile
    from .trace_output import TraceIter
    from .trace_probe import TraceProbeEvent

EPROBE_EVENT_SYSTEM = "eprobes"
EPROBE_HEAD_SIZE = 8            # struct eprobe_trace_entry_head: just the trace_entry

_SKIP_ATTACH = (TRACE_EVENT_FL_IGNORE_ENABLE | TRACE_EVENT_FL_KPROBE | TRACE_EVENT_FL_UPROBE
                | TRACE_EVENT_FL_EPROBE)

# where a record handed to an eprobe "is": string fields are fetched as addresses in it
RECORD_ADDR = 0xFFFF_8881_03A0_0000


@dataclass
class _Link:
    """An eprobe event file and the trigger it hangs on the attached event's file."""

    file: EventFile
    target: EventFile
    trigger: TriggerData = field(init=False)


class EprobePrinter(ProbeEventPrinter):
    """print_eprobe_event(): ``NAME: (SYSTEM.EVENT) ARGS``."""

    def __init__(self, pe: TraceProbeEvent[TraceEprobe], attached: EventCall) -> None:
        super().__init__(pe, EPROBE_HEAD_SIZE)
        self.attached = attached

    def head(self, it: TraceIter) -> str:
        return f"{self.attached.system}.{self.attached.name}"


class TraceEprobe(ProbeDynEvent):
    """``struct trace_eprobe``: the attached event (a reference is held) and the
    triggers enabling the eprobe hangs on its files."""

    event: TraceProbeEvent[TraceEprobe]
    kind: EprobeEvents

    def __init__(self, kind: EprobeEvents, group: str, name: str, attached: EventCall,
                 nargs: int) -> None:
        super().__init__(kind, group, name, nargs, TRACE_EVENT_FL_EPROBE)
        self.attached = attached
        self.event_system = attached.system
        self.event_name = attached.name
        self.filter_str: str | None = None
        self.links: list[_Link] = []
        self.event.call.printer = EprobePrinter(self.event, attached)

    def fire(self, link: _Link, rec: bytes | bytearray) -> None:
        """eprobe_trigger_func() → __eprobe_trace_func(): one record of the attached
        event, written into the eprobe's event file of that instance."""
        k = self.kind.kernel
        env = FetchEnv(NO_REGS, k.mem, k.sched.current.comm.encode("latin-1", "replace")[:15],
                       None, k.kallsyms.format_pS, rec, RECORD_ADDR)
        trace_probe_write(link.file, self.tp, env, EPROBE_HEAD_SIZE, ())


class EprobeEvents(TraceProbeKind[TraceEprobe]):
    """The ``eprobe_dyn_event_ops`` kind of one kernel."""

    probe_class = TraceEprobe
    log_subsystem = "event_probe"

    # --------------------------------------------------------------- dyn_event ops
    def show(self, ev: DynEvent) -> str:
        assert isinstance(ev, TraceEprobe)
        return (f"e:{ev.group}/{ev.name} {ev.event_system}.{ev.event_name}"
                + ev.tp.show_args() + "\n")

    def location(self, p: TraceEprobe) -> str:
        return f"{p.event_system}.{p.event_name}"

    def match_location(self, p: TraceEprobe, arg: str) -> bool:
        """eprobe_dyn_event_match(): ``SYSTEM.EVENT`` or ``SYSTEM/EVENT``."""
        sep = arg.find("/")
        if sep < 0:
            sep = arg.find(".")
        return sep >= 0 and arg[:sep] == p.event_system and arg[sep + 1:] == p.event_name

    # --------------------------------------------------------------- parsing
    def parse(self, argv: list[str]) -> int:
        if len(argv) < 2 or argv[0][0] != "e":
            return -errno.ECANCELED
        with self.parsing(argv):
            return self._create(argv)

    def _create(self, argv: list[str]) -> int:
        """__trace_eprobe_create()."""
        log = self.log
        colon, event = self.event_part(argv[0])
        ret, event, group = self.parse_group_event(event, colon + 1, EPROBE_EVENT_SYSTEM)
        if ret:
            return ret
        log.set_index(1)
        ret, sys_event, sys_name = traceprobe_parse_event_name(argv[1], 0, log)
        if ret or not sys_event or not sys_name:
            self.log_err(0, ProbeErr.NO_EVENT_INFO)
            return -errno.EINVAL
        if not event:
            event = sys_event[:MAX_EVENT_NAME_LEN - 1]

        args = argv[2:]
        filt: list[str] | None = None
        filter_idx = 0
        for i, a in enumerate(args):
            if a == "if":
                filter_idx = i + 3
                filt = args[i + 1:]
                args = args[:i]
                break
        if len(args) > MAX_TRACE_ARGS:
            return -errno.E2BIG

        target = self._find_and_get_event(sys_name, sys_event)
        if target is None:
            self.log_err(0, ProbeErr.BAD_ATTACH_EVENT)
            return -errno.ENODEV
        ep = TraceEprobe(self, group, event, target, len(args))
        ok = False
        try:
            if filt is not None:
                log.set_index(filter_idx)
                ret = self._parse_filter(ep, filt)
                if ret:
                    return ret
            for i, a in enumerate(args):
                log.set_index(i + 2)
                ctx = ParseContext(flags=TPARG_FL_KERNEL | TPARG_FL_TEVENT, log=log,
                                   event=target)
                ret = traceprobe_parse_probe_arg(ep.tp, i, a, ctx)
                if not ret:
                    ret = traceprobe_update_arg(ep.tp.args[i], self._lookup_name)
                traceprobe_finish_parse(ctx)
                if ret:
                    return ret
            ep.event.call.set_format(define_arg_fields(ep.tp, EPROBE_HEAD_SIZE),
                                     set_print_fmt(ep.tp, PROBE_PRINT_EVENT))
            ret = self.events.add_event_call(ep.event.call)
            if ret:
                if ret == -errno.EEXIST:
                    log.set_index(0)
                    self.log_err(0, ProbeErr.EVENT_EXIST)
                return ret
            self.dyn.add(ep)
            ok = True
            return 0
        finally:
            if not ok:
                self._put_ref(target)

    def _lookup_name(self, sym: str) -> int:
        return self.kernel.kallsyms.addr_of(sym) or 0

    def _find_and_get_event(self, system: str, name: str) -> EventCall | None:
        """find_and_get_event(): not ftrace's own, kprobe, uprobe or eprobe events."""
        for call in self.events.calls:
            if call.flags & _SKIP_ATTACH or call.system == "ftrace":
                continue
            if call.system == system and call.name == name:
                call.refcnt += 1        # trace_event_try_get_ref()
                return call
        return None

    @staticmethod
    def _put_ref(call: EventCall) -> None:
        if call.refcnt > 0:
            call.refcnt -= 1

    def _parse_filter(self, ep: TraceEprobe, argv: list[str]) -> int:
        """trace_eprobe_parse_filter(): the attached event's filter syntax."""
        if not argv:
            self.log_err(0, ProbeErr.NO_EP_FILTER)
            return -errno.EINVAL
        text = " ".join(argv)
        _flt, err = create_filter(self.kernel.trace.global_trace, ep.attached, text, self.kernel)
        if err:
            return err
        ep.filter_str = text
        return 0

    # --------------------------------------------------------------- registration
    def unregister_probe(self, p: TraceEprobe) -> None:
        """eprobe_dyn_event_release(): the attached event's reference goes."""
        self._put_ref(p.attached)

    # --------------------------------------------------------------- enable/disable
    def enable(self, pe: TraceProbeEvent[TraceEprobe], file: EventFile | None) -> int:
        """enable_trace_eprobe(): a trigger on the attached event's file of the same
        instance (perf is not simulated)."""
        if file is None:
            return 0
        ep = pe.primary()
        target = self.events.file(file.tr, ep.attached)
        if target is None:
            return -errno.ENOENT
        pred = None
        if ep.filter_str is not None:
            flt, err = create_filter(file.tr, ep.attached, ep.filter_str, self.kernel, False)
            if err:
                return err
            pred = flt.pred
        link = _Link(file, target)
        link.trigger = TriggerData("eprobe", pred=pred,
                                   probe=lambda rec, _l=link: ep.fire(_l, rec))
        ep.links.append(link)
        pe.add_file(file)
        self.events.triggers.attach_probe(target, link.trigger)
        return 0

    def disable(self, pe: TraceProbeEvent[TraceEprobe], file: EventFile | None) -> int:
        if file is None:
            return 0
        ep = pe.primary()
        link = next((lk for lk in ep.links if lk.file is file), None)
        if link is None:
            return -errno.ENOENT
        ep.links.remove(link)
        pe.remove_file(file)
        self.events.triggers.detach_probe(link.target, link.trigger)
        return 0


def boot(kernel: Kernel) -> EprobeEvents:
    """core_initcall(trace_events_eprobe_init_early)."""
    kind = EprobeEvents(kernel)
    kernel.dynevent.register(kind)
    return kind
