"""Fprobe-based dynamic events: the ``f`` and ``t`` kinds (kernel/trace/trace_fprobe.c).

Grammar (``__trace_fprobe_create``)::

    f[MAXACTIVE][:[GRP/][EVENT]] [MOD:]SYM[%return] [FETCHARGS]
    t[:[GRP/][EVENT]] TRACEPOINT [FETCHARGS]

Default groups ``fprobes`` / ``tracepoints``; default names ``SYM__entry``,
``SYM__exit`` or the tracepoint name.  Each definition is a ``TraceFprobe`` with its own
``Fprobe`` (kernel/fprobe.py); several definitions with the same GRP/EVENT share one
``TraceProbeEvent`` — the multiprobe append, with DIFF_PROBE_TYPE / DIFF_ARG_TYPE /
SAME_PROBE checks (trace_probe.py).  A ``t`` probe puts its fprobe on the tracepoint's
``__probestub_NAME`` and registers the stub as a probe of the tracepoint
(tracepoint.py runs it through its ftrace site).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from .fprobe import Fprobe, disable_fprobe, enable_fprobe
from .lib import isalnum, isdigit
from .trace_events import Tracepoint, file_takes_nothing
from .trace_events_h import TRACE_EVENT_FL_FPROBE
from .trace_probe import (
    PROBE_HEAD_SIZE,
    PROBE_RET_HEAD_SIZE,
    TP_FLAG_PROFILE,
    TP_FLAG_TRACE,
    TPARG_FL_FENTRY,
    TPARG_FL_FPROBE,
    TPARG_FL_KERNEL,
    TPARG_FL_RETURN,
    TPARG_FL_TPOINT,
    ParseContext,
    ProbeDynEvent,
    ProbeErr,
    TraceProbeKind,
)
from .trace_probe_tmpl import (
    func_probe_printer,
    store_trace_entry_data,
    trace_probe_trace_func,
)
from .tracepoint import install as install_probestubs

if TYPE_CHECKING:
    from .core import Kernel
    from .mm import Regs
    from .trace_dynevent import DynEvent
    from .trace_probe import TraceProbeEvent

FPROBE_EVENT_SYSTEM = "fprobes"
TRACEPOINT_EVENT_SYSTEM = "tracepoints"
RETHOOK_MAXACTIVE_MAX = 4096


class _Stub:
    """TRACEPOINT_STUB: a tracepoint not loaded yet (may come with a module)."""

    def __repr__(self) -> str:
        return "TRACEPOINT_STUB"


TRACEPOINT_STUB = _Stub()


class TraceFprobe(ProbeDynEvent):
    """``struct trace_fprobe``: one ``f``/``t`` definition and its fprobe."""

    event: TraceProbeEvent[TraceFprobe]
    kind: FprobeEvents

    def __init__(self, kind: FprobeEvents, group: str, event: str, symbol: str,
                 tpoint: Tracepoint | _Stub | None, maxactive: int, nargs: int,
                 is_return: bool) -> None:
        super().__init__(kind, group, event, nargs, TRACE_EVENT_FL_FPROBE)
        self.symbol = symbol
        self.tpoint = tpoint
        self.fp = Fprobe()
        if is_return:
            self.fp.exit_handler = self.fexit_dispatcher
        else:
            self.fp.entry_handler = self.fentry_dispatcher
        self.fp.nr_maxactive = maxactive
        self.fp.quiet = self.records_nothing
        self.fp.ops.quiet = self.records_nothing
        self.event.call.printer = func_probe_printer(self.event, is_return)

    def records_nothing(self) -> bool:
        """Its call sites can leave no mark now (``FtraceOps.quiet``): the fprobe is
        disabled, or the event is traced only (no perf) into files that take nothing
        (tracing off there, no trigger).  A trace_fprobe counts no hits."""
        pe = self.event
        return self.fp.disabled() or (not pe.flags & TP_FLAG_PROFILE
                                      and all(map(file_takes_nothing, pe.files)))

    # trace_fprobe_is_return / is_tracepoint
    def is_return(self) -> bool:
        return self.fp.exit_handler is not None

    def is_tracepoint(self) -> bool:
        return self.tpoint is not None

    # --------------------------------------------------------------- firing
    def fentry_dispatcher(self, fp: Fprobe, entry_ip: int, ret_ip: int, regs: Regs | None,
                          entry_data: bytearray | None) -> int:
        """fentry_dispatcher() → fentry_trace_func()."""
        pe = self.event
        if pe.flags & TP_FLAG_TRACE:
            env = self.kind.fetch_env(regs)
            trace_probe_trace_func(pe, self.tp, env, PROBE_HEAD_SIZE, (entry_ip,),
                                   depth=self.kind.entry_depth(fp, entry_ip, self.is_tracepoint()))
        return 0

    def fexit_entry_handler(self, fp: Fprobe, entry_ip: int, ret_ip: int, regs: Regs | None,
                            entry_data: bytearray | None) -> int:
        """fexit_entry_handler(): save the parameters ``$argN`` needs at exit."""
        if self.tp.entry_arg is not None and entry_data is not None and regs is not None:
            store_trace_entry_data(entry_data, self.tp, regs)
        return 0

    def fexit_dispatcher(self, fp: Fprobe, entry_ip: int, ret_ip: int, regs: Regs | None,
                         entry_data: bytearray | None) -> None:
        """fexit_dispatcher() → fexit_trace_func(): rethook_trampoline_handler disables
        preemption and fprobe_exit_handler takes the recursion lock, the reserve
        discounts one."""
        pe = self.event
        if pe.flags & TP_FLAG_TRACE:
            env = self.kind.fetch_env(regs, entry_data)
            trace_probe_trace_func(pe, self.tp, env, PROBE_RET_HEAD_SIZE, (entry_ip, ret_ip),
                                   depth=1)


class FprobeEvents(TraceProbeKind[TraceFprobe]):
    """The ``trace_fprobe_ops`` dyn_event kind of one kernel."""

    probe_class = TraceFprobe
    log_subsystem = "trace_fprobe"

    def __init__(self, kernel: Kernel) -> None:
        super().__init__(kernel)
        self.fprobe = kernel.fprobe
        self.ftrace = kernel.ftrace
        self.btf = kernel.btf
        self.kallsyms = kernel.kallsyms

    def entry_depth(self, fp: Fprobe, entry_ip: int, tpoint: bool) -> int:
        """Preemption disabled on top of the call site's when the record is reserved:
        fprobe_handler's recursion lock, minus the one trace_event_buffer_reserve()
        discounts (tracing_gen_ctx_dec), plus arch_ftrace_ops_list_func's lock when the
        site is shared with other ops, plus the tracepoint's own for a tprobe."""
        depth = 1 if tpoint else 0
        ft = self.ftrace
        i = ft.ip_to_index(entry_ip)
        ops = fp.ops
        if i is None or ops is None or ft.site_func[i] is not ops.site:
            depth += 1
        return depth

    # --------------------------------------------------------------- dyn_event ops
    def show(self, ev: DynEvent) -> str:
        assert isinstance(ev, TraceFprobe)
        out = ["t" if ev.is_tracepoint() else "f"]
        if ev.is_return() and ev.fp.nr_maxactive:
            out.append(str(ev.fp.nr_maxactive))
        out.append(f":{ev.group}/{ev.name} {ev.symbol}{'%return' if ev.is_return() else ''}")
        return "".join(out) + ev.tp.show_args() + "\n"

    def location(self, p: TraceFprobe) -> str:
        return p.symbol

    # --------------------------------------------------------------- parsing
    def _parse_symbol_and_return(self, argv: list[str], is_tracepoint: bool
                                 ) -> tuple[int, str, bool]:
        a1 = argv[1]
        is_return = False
        pct = a1.find("%")
        if pct >= 0:
            if not is_tracepoint and a1[pct:] == "%return":
                is_return = True
            else:
                self.log_err(pct, ProbeErr.BAD_ADDR_SUFFIX)
                return -errno.EINVAL, "", False
            symbol = a1[:pct]
        else:
            symbol = a1
        if is_return:
            return 0, symbol, True
        if is_tracepoint:
            for i, c in enumerate(symbol):
                if not (isalnum(c) or c == "_"):
                    self.log_err(i, ProbeErr.BAD_TP_NAME)
                    return -errno.EINVAL, "", False
        for i in range(2, len(argv)):
            t = argv[i].find("$retval")
            if t >= 0:
                nxt = argv[i][t + 7:t + 8]
                if not (nxt and (isalnum(nxt) or nxt == "_")):
                    if is_tracepoint:
                        self.log_set_index(i)
                        self.log_err(t, ProbeErr.RETVAL_ON_PROBE)
                        return -errno.EINVAL, "", False
                    is_return = True
                    break
        return 0, symbol, is_return

    def parse(self, argv: list[str]) -> int:
        """__trace_fprobe_create()."""
        if argv[0][0] not in ("f", "t") or len(argv) < 2:
            return -errno.ECANCELED
        is_tracepoint = argv[0][0] == "t"
        ctx = ParseContext(flags=TPARG_FL_KERNEL | TPARG_FL_FPROBE, btf=self.btf, log=self.log)
        with self.parsing(argv, ctx):
            return self._create(argv, is_tracepoint, ctx)

    def _create(self, argv: list[str], is_tracepoint: bool, ctx: ParseContext) -> int:
        group = TRACEPOINT_EVENT_SYSTEM if is_tracepoint else FPROBE_EVENT_SYSTEM
        colon, event = self.event_part(argv[0])
        ret, maxactive = self.parse_maxactive(argv[0], colon, RETHOOK_MAXACTIVE_MAX)
        if ret:
            return ret

        self.log_set_index(1)
        ret, symbol, is_return = self._parse_symbol_and_return(argv, is_tracepoint)
        if ret < 0:
            return -errno.EINVAL
        if not is_return and maxactive:
            self.log_set_index(0)
            self.log_err(1, ProbeErr.BAD_MAXACT_TYPE)
            return -errno.EINVAL

        if is_tracepoint:
            default = ("_" if symbol[:1] and isdigit(symbol[0]) else "") + symbol
        else:
            default = f"{symbol}__{'exit' if is_return else 'entry'}"
        ret, name, group = self.name_probe_event(event, colon + 1, group, default)
        if ret:
            return ret

        ctx.flags |= TPARG_FL_RETURN if is_return else TPARG_FL_FENTRY
        tpoint: Tracepoint | _Stub | None = None
        if is_tracepoint:
            ctx.flags |= TPARG_FL_TPOINT
            tp = self.events.find(symbol)
            if tp is not None:
                res = self.kallsyms.lookup_addr(tp.probestub)
                ctx.funcname = res[0] if res is not None else f"__probestub_{symbol}"
                tpoint = tp
            else:
                tpoint = TRACEPOINT_STUB     # CONFIG_MODULES: may be loaded afterwards
                ctx.funcname = symbol
        else:
            ctx.funcname = symbol

        ret, args = self.expand_args(argv[2:], ctx)
        if ret:
            return ret
        tf = TraceFprobe(self, group, name, symbol, tpoint, maxactive, len(args), is_return)
        return self.create_probe(tf, args, ctx, is_return)

    def setup_entry_data(self, p: TraceFprobe) -> None:
        p.fp.entry_handler = p.fexit_entry_handler
        p.fp.entry_data_size = p.tp.entry_data_size()

    # --------------------------------------------------------------- registration
    def probe_type_differs(self, p: TraceFprobe, old: TraceFprobe) -> bool:
        return p.is_return() != old.is_return() or p.is_tracepoint() != old.is_tracepoint()

    def register_probe(self, p: TraceFprobe) -> int:
        """``__register_trace_fprobe``."""
        if p.fp.registered:
            return -errno.EINVAL
        ret = self.update_args(p, self._lookup_name)
        if ret:
            return ret
        # the fprobe starts disabled unless the event is already enabled
        (enable_fprobe if p.event.is_enabled() else disable_fprobe)(p.fp)
        tpoint = p.tpoint
        if isinstance(tpoint, Tracepoint):
            ret = tpoint.probe_register_may_exist(tpoint.probestub, None)
            if ret < 0:
                return ret
            return self.fprobe.register_fprobe_ips(p.fp, [tpoint.probestub])
        if tpoint is TRACEPOINT_STUB:
            return 0
        return self.fprobe.register_fprobe(p.fp, p.symbol, None)

    def unregister_probe(self, p: TraceFprobe) -> None:
        """``__unregister_trace_fprobe``."""
        if not p.fp.registered:
            return
        self.fprobe.unregister_fprobe(p.fp)
        p.fp.reset()
        tpoint = p.tpoint
        if isinstance(tpoint, Tracepoint):
            tpoint.probe_unregister(tpoint.probestub, None)
            p.tpoint = None

    def _lookup_name(self, sym: str) -> int:
        return self.kallsyms.addr_of(sym) or 0

    # --------------------------------------------------------------- enable/disable
    def enable_probes(self, pe: TraceProbeEvent[TraceFprobe]) -> int:
        for tf in pe.probes:
            if tf.fp.registered:
                enable_fprobe(tf.fp)
        return 0

    def disable_probes(self, pe: TraceProbeEvent[TraceFprobe]) -> None:
        for tf in pe.probes:
            if tf.fp.registered:
                disable_fprobe(tf.fp)


def boot(kernel: Kernel) -> FprobeEvents:
    """core_initcall(init_fprobe_trace_early): register the kind with dyn_event."""
    kind = FprobeEvents(kernel)
    kernel.dynevent.register(kind)
    install_probestubs(kernel)     # tracepoints call __probestub_NAME through its ftrace site
    return kind
