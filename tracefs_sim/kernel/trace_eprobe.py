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
from typing import TYPE_CHECKING, Any

from .trace_dynevent import DynEvent, DynEvents
from .trace_output import Printer, TraceIter
from .trace_probe import (
    MAX_EVENT_NAME_LEN,
    MAX_TRACE_ARGS,
    PROBE_PRINT_EVENT,
    TP_FLAG_PROFILE,
    TP_FLAG_TRACE,
    TPARG_FL_KERNEL,
    TPARG_FL_TEVENT,
    FetchEnv,
    ParseContext,
    ProbeErr,
    ProbeField,
    TraceProbe,
    argv_split,
    define_arg_fields,
    match_command_args,
    print_args,
    set_print_fmt,
    traceprobe_finish_parse,
    traceprobe_parse_event_name,
    traceprobe_parse_probe_arg,
    traceprobe_update_arg,
)

if TYPE_CHECKING:
    from .core import Kernel

EPROBE_EVENT_SYSTEM = "eprobes"
EPROBE_HEAD_SIZE = 8            # struct eprobe_trace_entry_head: just the trace_entry

TRACE_REG_REGISTER = 0
TRACE_REG_UNREGISTER = 1

# include/linux/trace_events.h (trace_events.py)
TRACE_EVENT_FL_IGNORE_ENABLE = 1 << 3
TRACE_EVENT_FL_KPROBE = 1 << 6
TRACE_EVENT_FL_UPROBE = 1 << 7
TRACE_EVENT_FL_EPROBE = 1 << 8
_SKIP_ATTACH = (TRACE_EVENT_FL_IGNORE_ENABLE | TRACE_EVENT_FL_KPROBE | TRACE_EVENT_FL_UPROBE
                | TRACE_EVENT_FL_EPROBE)

# where a record handed to an eprobe "is": string fields are fetched as addresses in it
RECORD_ADDR = 0xFFFF_8881_03A0_0000


class EprobeEventCall:
    """The eprobe's ``trace_event_call``, as the event registry sees it."""

    def __init__(self, ep: TraceEprobe) -> None:
        self.ep = ep
        self.name = ep.name
        self.system = ep.group
        self.type_id = 0
        self.flags = TRACE_EVENT_FL_EPROBE
        self.refcnt = 0
        self.print_fmt = ""
        self.printer: Printer = EprobePrinter(ep)

    def reg(self, call: EprobeEventCall, type_: int, file: Any) -> int:
        """eprobe_register()."""
        if type_ == TRACE_REG_REGISTER:
            return self.ep.kind.enable(self.ep, file)
        if type_ == TRACE_REG_UNREGISTER:
            return self.ep.kind.disable(self.ep, file)
        return 0

    def fields(self) -> list[ProbeField]:
        return define_arg_fields(self.ep.tp, EPROBE_HEAD_SIZE)


@dataclass
class _Link:
    """An eprobe event file and the trigger it hangs on the attached event's file."""

    file: Any
    target: Any
    trigger: Any


@dataclass(eq=False)
class TraceEprobe(DynEvent):
    """``struct trace_eprobe``."""

    kind: EprobeEvents
    group: str
    name: str
    event_system: str
    event_name: str
    event: Any                       # the attached EventCall (a reference is held)
    tp: TraceProbe
    filter_str: str | None = None
    flags: int = 0                   # TP_FLAG_TRACE / TP_FLAG_PROFILE
    links: list[_Link] = field(default_factory=list)
    call: EprobeEventCall = None     # type: ignore[assignment]

    def __post_init__(self) -> None:
        DynEvent.__init__(self, self.kind)
        self.call = EprobeEventCall(self)

    def is_enabled(self) -> bool:
        return bool(self.flags & (TP_FLAG_TRACE | TP_FLAG_PROFILE))


class EprobePrinter(Printer):
    """print_eprobe_event(): ``NAME: (SYSTEM.EVENT) ARGS``."""

    def __init__(self, ep: TraceEprobe) -> None:
        self.ep = ep

    def trace(self, it: TraceIter) -> str:
        ep = self.ep
        ev = ep.event
        head = f"{ep.name}: ({ev.system}.{ev.name})"
        sym = it.kernel.kallsyms.format_pS if it.kernel is not None else (lambda a: f"0x{a:x}")
        return head + print_args(ep.tp.args, it.buf, it.off + EPROBE_HEAD_SIZE, it.off,
                                 sym) + "\n"

    def raw(self, it: TraceIter) -> str:
        return ""

    def hex(self, it: TraceIter) -> str:
        return ""

    def binary(self, it: TraceIter) -> bytes:
        return b""


class EprobeEvents:
    """The ``eprobe_dyn_event_ops`` kind of one kernel."""

    def __init__(self, dyn: DynEvents, kernel: Kernel | None = None, events: Any = None) -> None:
        self.dyn = dyn
        self.kernel = kernel
        self.events = events

    # --------------------------------------------------------------- dyn_event ops
    def create(self, raw_command: str) -> int:
        argv = argv_split(raw_command)
        if not argv:
            return 0
        if len(argv) < 2 or argv[0][0] != "e":
            return -errno.ECANCELED
        log = self.dyn.probe_log
        log.init("event_probe", argv)
        try:
            return self._create(argv)
        finally:
            log.clear()

    def show(self, ev: DynEvent) -> str:
        assert isinstance(ev, TraceEprobe)
        out = [f"e:{ev.group}/{ev.name} {ev.event_system}.{ev.event_name}"]
        for a in ev.tp.args:
            out.append(f" {a.name}={a.comm}")
        out.append("\n")
        return "".join(out)

    def is_busy(self, ev: DynEvent) -> bool:
        assert isinstance(ev, TraceEprobe)
        return ev.is_enabled()

    def free(self, ev: DynEvent) -> int:
        """eprobe_dyn_event_release() → unregister_trace_eprobe()."""
        assert isinstance(ev, TraceEprobe)
        if ev.is_enabled():
            return -errno.EBUSY
        if self.events is not None and self.events.remove_event_call(ev.call):
            return -errno.EBUSY
        self.dyn.remove(ev)
        self._put_ref(ev.event)
        return 0

    def match(self, system: str | None, event: str, argv: list[str], ev: DynEvent) -> bool:
        assert isinstance(ev, TraceEprobe)
        if system is not None and ev.group != system:
            return False
        if event and ev.name != event:
            return False
        if not argv:
            return True
        a0 = argv[0]
        sep = a0.find("/")
        if sep < 0:
            sep = a0.find(".")
        if sep < 0:
            return False
        if a0[:sep] != ev.event_system or a0[sep + 1:] != ev.event_name:
            return False
        if len(argv) < 2:
            return True
        return match_command_args(ev.tp, argv[1:])

    # --------------------------------------------------------------- parsing
    def _err(self, offset: int, err: ProbeErr) -> None:
        self.dyn.probe_log.err(offset, err)

    def _create(self, argv: list[str]) -> int:
        log = self.dyn.probe_log
        group = EPROBE_EVENT_SYSTEM
        event: str | None = None
        a0 = argv[0]
        colon = a0.find(":", 1)
        if colon >= 0:
            ret, ev_name, grp = traceprobe_parse_event_name(a0[colon + 1:], colon + 1, log)
            if ret:
                return -errno.EINVAL
            event = ev_name or ""
            if grp is not None:
                group = grp
        log.set_index(1)
        ret, sys_event, sys_name = traceprobe_parse_event_name(argv[1], 0, log)
        if ret or not sys_event or not sys_name:
            self._err(0, ProbeErr.NO_EVENT_INFO)
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
            self._err(0, ProbeErr.BAD_ATTACH_EVENT)
            return -errno.ENODEV
        ep = TraceEprobe(self, group, event, target.system, target.name, target,
                         TraceProbe(nr_args=len(args)))
        ok = False
        try:
            if filt is not None:
                log.set_index(filter_idx)
                ret = self._parse_filter(ep, filt)
                if ret:
                    return -errno.EINVAL if ret == -errno.EINVAL else ret
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
            ep.call.print_fmt = set_print_fmt(ep.tp, PROBE_PRINT_EVENT)
            if self.events is not None:
                ret = self.events.add_event_call(ep.call)
                if ret:
                    if ret == -errno.EEXIST:
                        log.set_index(0)
                        self._err(0, ProbeErr.EVENT_EXIST)
                    return ret
            self.dyn.add(ep)
            ok = True
            return 0
        finally:
            if not ok:
                self._put_ref(target)

    def _lookup_name(self, sym: str) -> int:
        k = self.kernel
        return (k.kallsyms.addr_of(sym) or 0) if k is not None else 0

    def _find_and_get_event(self, system: str, name: str) -> Any:
        """find_and_get_event(): not ftrace's own, kprobe, uprobe or eprobe events."""
        ev = self.events
        if ev is None:
            return None
        for call in ev.calls:
            flags = call.flags | getattr(call.ext, "flags", 0)
            if flags & _SKIP_ATTACH or call.system == "ftrace":
                continue
            if call.system == system and call.name == name:
                call.refcnt += 1        # trace_event_try_get_ref()
                return call
        return None

    @staticmethod
    def _put_ref(call: Any) -> None:
        if call is not None and call.refcnt > 0:
            call.refcnt -= 1

    def _parse_filter(self, ep: TraceEprobe, argv: list[str]) -> int:
        """trace_eprobe_parse_filter(): the attached event's filter syntax."""
        if not argv:
            self._err(0, ProbeErr.NO_EP_FILTER)
            return -errno.EINVAL
        text = " ".join(argv)
        k = self.kernel
        from .trace_events_filter import create_filter

        tr = k.trace.global_trace if k is not None else None
        _flt, err = create_filter(tr, ep.event, text, k)
        if err:
            return err
        ep.filter_str = text
        return 0

    # --------------------------------------------------------------- enable/disable
    def enable(self, ep: TraceEprobe, file: Any) -> int:
        """enable_trace_eprobe() for an event file (perf is not simulated)."""
        if file is None:
            ep.flags |= TP_FLAG_PROFILE
            return 0
        tev = self.events
        if tev is None or tev.triggers is None:
            return -errno.ENODEV
        target = tev.file(file.tr, ep.event)
        if target is None:
            return -errno.ENOENT
        from .trace_events_trigger import TriggerData

        pred = None
        if ep.filter_str is not None:
            from .trace_events_filter import create_filter

            flt, err = create_filter(file.tr, ep.event, ep.filter_str, self.kernel, False)
            if err:
                return err
            pred = flt.pred
        link = _Link(file, target, None)
        link.trigger = TriggerData("eprobe", pred=pred,
                                   probe=lambda rec, _l=link: self._fire(ep, _l, rec))
        ep.links.append(link)
        ep.flags |= TP_FLAG_TRACE
        tev.triggers.attach_probe(target, link.trigger)
        return 0

    def disable(self, ep: TraceEprobe, file: Any) -> int:
        if file is None:
            ep.flags &= ~TP_FLAG_PROFILE
            return 0
        link = next((lk for lk in ep.links if lk.file is file), None)
        if link is None:
            return -errno.ENOENT
        ep.links.remove(link)
        if not ep.links:
            ep.flags &= ~TP_FLAG_TRACE
        tev = self.events
        if tev is not None and tev.triggers is not None:
            tev.triggers.detach_probe(link.target, link.trigger)
        return 0

    # --------------------------------------------------------------- firing
    def _fire(self, ep: TraceEprobe, link: _Link, rec: bytes | bytearray) -> None:
        """__eprobe_trace_func(): one record of the attached event."""
        k = self.kernel
        if k is None:
            return
        from .trace_fprobe import _NoMem, _NoRegs, write_probe_record

        comm = k.sched.current.comm.encode("latin-1", "replace")[:15]
        mem: Any = getattr(k, "mem", None) or _NoMem()
        env = FetchEnv(_NoRegs(), mem, comm, None, k.kallsyms.format_pS, rec, RECORD_ADDR)
        write_probe_record(k, link.file, ep.tp, ep.call.type_id, env, EPROBE_HEAD_SIZE)


def boot(kernel: Kernel) -> EprobeEvents:
    """core_initcall(trace_events_eprobe_init_early)."""
    kind = EprobeEvents(kernel.dynevent, kernel, kernel.events)
    kernel.dynevent.register(kind)
    return kind
