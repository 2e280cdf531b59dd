"""Fprobe-based dynamic events: the ``f`` and ``t`` kinds (kernel/trace/trace_fprobe.c).

Grammar (``__trace_fprobe_create``)::

    f[MAXACTIVE][:[GRP/][EVENT]] [MOD:]SYM[%return] [FETCHARGS]
    t[:[GRP/][EVENT]] TRACEPOINT [FETCHARGS]

Default groups ``fprobes`` / ``tracepoints``; default names ``SYM__entry``,
``SYM__exit`` or the tracepoint name.  Each definition is a ``TraceFprobe`` (a
``DynEvent``) with its own ``Fprobe``; several definitions with the same GRP/EVENT share
one ``ProbeEvent`` (the kernel's trace_probe_event: event call, enable flags, linked
event files) — the "multiprobe" append, with DIFF_PROBE_TYPE / DIFF_ARG_TYPE /
SAME_PROBE checks.

Interfaces used (all optional, so the kind can be unit-tested with fakes):

* ``events``: ``add_event_call(call) -> int`` (0, -EEXIST when GRP/EVENT exists, …;
  assigns ``call.type_id``, creates ``events/GRP/EVENT``, registers ``call.printer``
  with the output registry) and ``remove_event_call(call) -> int`` (0 or -EBUSY; sets
  ``tr.clear_trace`` where the event was ever enabled).  An event file calls
  ``call.reg(call, TRACE_REG_REGISTER | TRACE_REG_UNREGISTER, file)``; ``file.tr`` is its
  TraceArray and ``file.soft_disabled`` (optional) the trigger soft-disable state.
  ``call.refcnt`` > 0 while event files are open (trace_event_dyn_busy).
* ``fprobe``: ``FprobeCore`` (fprobe.py) — ``register_fprobe(fp, filter, notfilter)``,
  ``register_fprobe_ips(fp, ips)``, ``unregister_fprobe(fp)``.
* ``tracepoints``: ``find(name) -> tp | None`` with ``tp.probestub`` (stub address),
  ``probe_register_may_exist(func, data) -> int`` and ``probe_unregister(func, data)``.
* ``btf``: ``ProbeBtf`` (trace_probe.py); ``kallsyms``: ``addr_of(name)``,
  ``lookup_name(addr)``/``format_pS(addr)``.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .trace_dynevent import DynEvent, DynEvents
from .trace_output import Printer, TraceIter
from .trace_probe import (
    MAX_ARGSTR_LEN,
    MAX_EVENT_NAME_LEN,
    MAX_TRACE_ARGS,
    PROBE_PRINT_NORMAL,
    PROBE_PRINT_RETURN,
    TP_FLAG_PROFILE,
    TP_FLAG_TRACE,
    TPARG_FL_FENTRY,
    TPARG_FL_FPROBE,
    TPARG_FL_KERNEL,
    TPARG_FL_RETURN,
    TPARG_FL_TPOINT,
    FetchEnv,
    ParseContext,
    ProbeBtf,
    ProbeErr,
    ProbeField,
    TraceProbe,
    argv_split,
    compare_arg_type,
    define_arg_fields,
    get_data_size,
    isalnum,
    isdigit,
    kstrtouint,
    match_command_args,
    print_args,
    sanitize_event_name,
    set_print_fmt,
    store_trace_args,
    store_trace_entry_data,
    traceprobe_expand_dentry_args,
    traceprobe_expand_meta_args,
    traceprobe_finish_parse,
    traceprobe_get_entry_data_size,
    traceprobe_parse_event_name,
    traceprobe_parse_probe_arg,
    traceprobe_update_arg,
)
from .tracepoint import install as install_probestubs

if TYPE_CHECKING:
    from .core import Kernel

EVENT_FILE_FL_SOFT_DISABLED = 1 << 6    # include/linux/trace_events.h (trace_events.py)
EVENT_FILE_FL_TRIGGER_MODE = 1 << 7
EVENT_FILE_FL_TRIGGER_COND = 1 << 8
EVENT_FILE_FL_PID_FILTER = 1 << 9
_SOFT_CHECK = EVENT_FILE_FL_TRIGGER_MODE | EVENT_FILE_FL_SOFT_DISABLED | EVENT_FILE_FL_PID_FILTER

FPROBE_EVENT_SYSTEM = "fprobes"
TRACEPOINT_EVENT_SYSTEM = "tracepoints"
RETHOOK_MAXACTIVE_MAX = 4096

TRACE_REG_REGISTER = 0
TRACE_REG_UNREGISTER = 1
TRACE_REG_PERF_REGISTER = 2
TRACE_REG_PERF_UNREGISTER = 3

TRACE_EVENT_FL_DYNAMIC = 1 << 5       # include/linux/trace_events.h (trace_events.py)
TRACE_EVENT_FL_FPROBE = 1 << 9

FENTRY_HEAD_SIZE = 16   # struct fentry_trace_entry_head: trace_entry + ip
FEXIT_HEAD_SIZE = 24    # struct fexit_trace_entry_head: trace_entry + func + ret_ip
_Q = struct.Struct("<Q")


class _Stub:
    """TRACEPOINT_STUB: a tracepoint not loaded yet (may come with a module)."""

    def __repr__(self) -> str:
        return "TRACEPOINT_STUB"


TRACEPOINT_STUB = _Stub()


# ----------------------------------------------------------------------------- event call
class FprobeEventCall:
    """The ``trace_event_call`` of a probe event, as the event registry sees it."""

    def __init__(self, pe: ProbeEvent) -> None:
        self.pe = pe
        self.name = pe.name
        self.system = pe.group
        self.type_id = 0
        self.flags = TRACE_EVENT_FL_FPROBE
        self.refcnt = 0
        self.print_fmt = ""
        self.is_return = False
        self.printer: Printer = FprobePrinter(pe)

    # the class's reg() callback (fprobe_register)
    def reg(self, call: FprobeEventCall, type_: int, file: Any) -> int:
        if type_ == TRACE_REG_REGISTER:
            return self.pe.kind.enable(self.pe, file)
        if type_ == TRACE_REG_UNREGISTER:
            return self.pe.kind.disable(self.pe, file)
        if type_ == TRACE_REG_PERF_REGISTER:
            return self.pe.kind.enable(self.pe, None)
        if type_ == TRACE_REG_PERF_UNREGISTER:
            return self.pe.kind.disable(self.pe, None)
        return 0

    def fields(self) -> list[ProbeField]:
        """The event-specific ``field:`` lines (after the common ones)."""
        tp = self.pe.primary().tp
        if self.is_return:
            head = [ProbeField("unsigned long", "__probe_func", 8, 8, False),
                    ProbeField("unsigned long", "__probe_ret_ip", 16, 8, False)]
            return head + define_arg_fields(tp, FEXIT_HEAD_SIZE)
        return ([ProbeField("unsigned long", "__probe_ip", 8, 8, False)]
                + define_arg_fields(tp, FENTRY_HEAD_SIZE))


@dataclass
class ProbeEvent:
    """``struct trace_probe_event``: shared by every probe appended to GRP/EVENT."""

    kind: FprobeEvents
    name: str
    group: str
    flags: int = 0
    files: list[Any] = field(default_factory=list)
    probes: list[TraceFprobe] = field(default_factory=list)
    call: FprobeEventCall = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.call = FprobeEventCall(self)

    def primary(self) -> TraceFprobe:
        return self.probes[0]

    def is_enabled(self) -> bool:
        return bool(self.flags & (TP_FLAG_TRACE | TP_FLAG_PROFILE))


class TraceFprobe(DynEvent):
    """``struct trace_fprobe``: one ``f``/``t`` definition."""

    def __init__(self, kind: FprobeEvents, group: str, event: str, symbol: str,
                 tpoint: Any, maxactive: int, nargs: int, is_return: bool) -> None:
        super().__init__(kind)
        from .fprobe import Fprobe

        self.symbol = symbol
        self.tpoint = tpoint
        self.is_return_probe = is_return
        self.fp = Fprobe()
        self.fp.owner = self
        if is_return:
            self.fp.exit_handler = kind._fexit_dispatcher
        else:
            self.fp.entry_handler = kind._fentry_dispatcher
        self.fp.nr_maxactive = maxactive
        self.tp = TraceProbe(nr_args=nargs)
        self.event = ProbeEvent(kind, event, group)
        self.event.probes.append(self)
        self.event.call.is_return = is_return

    # trace_fprobe_is_return / is_tracepoint / symbol
    def is_return(self) -> bool:
        return self.fp.exit_handler is not None

    def is_tracepoint(self) -> bool:
        return self.tpoint is not None

    @property
    def name(self) -> str:
        return self.event.name

    @property
    def group(self) -> str:
        return self.event.group


# ----------------------------------------------------------------------------- printing
class FprobePrinter(Printer):
    """print_fentry_event / print_fexit_event (the primary probe's args are used)."""

    def __init__(self, pe: ProbeEvent) -> None:
        self.pe = pe

    def trace(self, it: TraceIter) -> str:
        from .trace import ITER_SYM_OFFSET

        pe = self.pe
        if not pe.probes:
            return ""
        tp = pe.primary().tp
        out = it.kernel.trace.output
        buf, off = it.buf, it.off
        flags = it.flags

        def sym(addr: int) -> str:
            return out.sym(addr, ITER_SYM_OFFSET) if addr else "0x0"

        if pe.call.is_return:
            func = _Q.unpack_from(buf, off + 8)[0]
            ret_ip = _Q.unpack_from(buf, off + 16)[0]
            head = (f"{pe.name}: ({out.sym(ret_ip, flags | ITER_SYM_OFFSET)} <- "
                    f"{out.sym(func, flags & ~ITER_SYM_OFFSET)})")
            data = off + FEXIT_HEAD_SIZE
        else:
            ip = _Q.unpack_from(buf, off + 8)[0]
            head = f"{pe.name}: ({out.sym(ip, flags | ITER_SYM_OFFSET)})"
            data = off + FENTRY_HEAD_SIZE
        return head + print_args(tp.args, buf, data, off, sym) + "\n"

    def raw(self, it: TraceIter) -> str:
        return ""   # trace_nop_print: fprobe events define only .trace

    def hex(self, it: TraceIter) -> str:
        return ""

    def binary(self, it: TraceIter) -> bytes:
        return b""


# ----------------------------------------------------------------------------- the kind
class _LocalTracepoint:
    __slots__ = ("name", "probestub", "probes")

    def __init__(self, name: str, probestub: int) -> None:
        self.name = name
        self.probestub = probestub
        self.probes: list[tuple[Any, Any]] = []

    def probe_register_may_exist(self, func: Any, data: Any) -> int:
        if (func, data) in self.probes:
            return -errno.EEXIST
        self.probes.append((func, data))
        return 0

    def probe_unregister(self, func: Any, data: Any) -> int:
        try:
            self.probes.remove((func, data))
        except ValueError:
            return -errno.ENOENT
        return 0


class FprobeEvents:
    """The ``trace_fprobe_ops`` dyn_event kind of one kernel."""

    def __init__(self, dyn: DynEvents, *, events: Any = None, fprobe: Any = None,
                 btf: ProbeBtf | None = None, kallsyms: Any = None,
                 tracepoints: Any = None, kernel: Kernel | None = None) -> None:
        self.dyn = dyn
        self.events = events
        self.fprobe = fprobe
        self.btf = btf
        self.kallsyms = kallsyms
        self.tracepoints = tracepoints
        self.kernel = kernel
        self._local_tps: dict[str, _LocalTracepoint] = {}

    # --------------------------------------------------------------- helpers
    def _log_set(self, index: int) -> None:
        self.dyn.probe_log.set_index(index)

    def _log_err(self, offset: int, err: ProbeErr) -> None:
        self.dyn.probe_log.err(offset, err)

    def probes(self) -> list[TraceFprobe]:
        return [ev for ev in self.dyn.events if isinstance(ev, TraceFprobe)]

    def find_tracepoint(self, name: str) -> Any:
        if self.tracepoints is not None:
            return self.tracepoints.find(name)
        tp = self._local_tps.get(name)
        if tp is not None:
            return tp
        ks = self.kallsyms
        addr = ks.addr_of("__probestub_" + name) if ks is not None else 0
        if not addr:
            return None
        tp = self._local_tps[name] = _LocalTracepoint(name, addr)
        return tp

    def _lookup_name(self, sym: str) -> int:
        if self.kallsyms is None:
            return 0
        return self.kallsyms.addr_of(sym) or 0

    def _sym_name(self, addr: int) -> str | None:
        ks = self.kallsyms
        if ks is None:
            return None
        look = getattr(ks, "lookup_addr", None)
        if look is None:
            return None
        res = look(addr)
        if res is None:
            return None
        return res if isinstance(res, str) else res[0]

    # --------------------------------------------------------------- dyn_event ops
    def create(self, raw_command: str) -> int:
        argv = argv_split(raw_command)
        if not argv:
            return 0
        return self._create(argv)

    def show(self, ev: DynEvent) -> str:
        assert isinstance(ev, TraceFprobe)
        out = ["t" if ev.is_tracepoint() else "f"]
        if ev.is_return() and ev.fp.nr_maxactive:
            out.append(str(ev.fp.nr_maxactive))
        out.append(f":{ev.group}/{ev.name}")
        out.append(f" {ev.symbol}{'%return' if ev.is_return() else ''}")
        for a in ev.tp.args:
            out.append(f" {a.name}={a.comm}")
        out.append("\n")
        return "".join(out)

    def is_busy(self, ev: DynEvent) -> bool:
        assert isinstance(ev, TraceFprobe)
        return ev.event.is_enabled()

    def free(self, ev: DynEvent) -> int:
        assert isinstance(ev, TraceFprobe)
        return self._unregister_trace_fprobe(ev)

    def match(self, system: str | None, event: str, argv: list[str], ev: DynEvent) -> bool:
        assert isinstance(ev, TraceFprobe)
        if event and ev.name != event:
            return False
        if system is not None and ev.group != system:
            return False
        if not argv:
            return True
        if ev.symbol[:MAX_ARGSTR_LEN] != argv[0]:
            return False
        return match_command_args(ev.tp, argv[1:])

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
                self._log_err(pct, ProbeErr.BAD_ADDR_SUFFIX)
                return -errno.EINVAL, "", False
            symbol = a1[:pct]
        else:
            symbol = a1
        if is_return:
            return 0, symbol, True
        if is_tracepoint:
            for i, c in enumerate(symbol):
                if not (isalnum(c) or c == "_"):
                    self._log_err(i, ProbeErr.BAD_TP_NAME)
                    return -errno.EINVAL, "", False
        for i in range(2, len(argv)):
            t = argv[i].find("$retval")
            if t >= 0:
                nxt = argv[i][t + 7:t + 8]
                if not (nxt and (isalnum(nxt) or nxt == "_")):
                    if is_tracepoint:
                        self._log_set(i)
                        self._log_err(t, ProbeErr.RETVAL_ON_PROBE)
                        return -errno.EINVAL, "", False
                    is_return = True
                    break
        return 0, symbol, is_return

    def _create(self, argv: list[str]) -> int:
        if argv[0][0] not in ("f", "t") or len(argv) < 2:
            return -errno.ECANCELED
        log = self.dyn.probe_log
        is_tracepoint = argv[0][0] == "t"
        group: str = TRACEPOINT_EVENT_SYSTEM if is_tracepoint else FPROBE_EVENT_SYSTEM
        log.init("trace_fprobe", argv)
        ctx = ParseContext(flags=TPARG_FL_KERNEL | TPARG_FL_FPROBE, btf=self.btf, log=log)
        try:
            return self._create_locked(argv, is_tracepoint, group, ctx)
        finally:
            traceprobe_finish_parse(ctx)
            log.clear()

    def _create_locked(self, argv: list[str], is_tracepoint: bool, group: str,
                       ctx: ParseContext) -> int:
        a0 = argv[0]
        colon = a0.find(":", 1)
        event: str | None = a0[colon + 1:] if colon >= 0 else None
        maxactive = 0
        if a0[1:2] and isdigit(a0[1]):
            length = (colon - 1) if colon >= 0 else len(a0) - 1
            if length > MAX_EVENT_NAME_LEN - 1:
                self._log_err(1, ProbeErr.BAD_MAXACT)
                return -errno.EINVAL
            err, maxactive = kstrtouint(a0[1:1 + length], 0)
            if err or not maxactive:
                self._log_err(1, ProbeErr.BAD_MAXACT)
                return -errno.EINVAL
            if maxactive > RETHOOK_MAXACTIVE_MAX:
                self._log_err(1, ProbeErr.MAXACT_TOO_BIG)
                return -errno.EINVAL

        self._log_set(1)
        ret, symbol, is_return = self._parse_symbol_and_return(argv, is_tracepoint)
        if ret < 0:
            return -errno.EINVAL
        if not is_return and maxactive:
            self._log_set(0)
            self._log_err(1, ProbeErr.BAD_MAXACT_TYPE)
            return -errno.EINVAL

        self._log_set(0)
        if event is not None:
            ret, ev_name, grp = traceprobe_parse_event_name(event, colon + 1, self.dyn.probe_log)
            if ret:
                return -errno.EINVAL
            event = ev_name
            if grp is not None:
                group = grp
        if not event:
            if is_tracepoint:
                buf = ("_" if symbol[:1] and isdigit(symbol[0]) else "") + symbol
            else:
                buf = f"{symbol}__{'exit' if is_return else 'entry'}"
            event = sanitize_event_name(buf[:MAX_EVENT_NAME_LEN - 1])

        ctx.flags |= TPARG_FL_RETURN if is_return else TPARG_FL_FENTRY
        tpoint: Any = None
        if is_tracepoint:
            ctx.flags |= TPARG_FL_TPOINT
            tpoint = self.find_tracepoint(symbol)
            if tpoint is not None:
                ctx.funcname = self._sym_name(tpoint.probestub) or f"__probestub_{symbol}"
            else:
                tpoint = TRACEPOINT_STUB     # CONFIG_MODULES: may be loaded afterwards
                ctx.funcname = symbol
        else:
            ctx.funcname = symbol

        args = argv[2:]
        ret, new_argv = traceprobe_expand_meta_args(args, ctx)
        if ret < 0:
            return ret
        if new_argv is not None:
            args = new_argv
        if len(args) > MAX_TRACE_ARGS:
            return -errno.E2BIG
        ret, args = traceprobe_expand_dentry_args(args)
        if ret:
            return ret

        tf = TraceFprobe(self, group, event, symbol, tpoint, maxactive, len(args), is_return)
        for i, a in enumerate(args):
            self._log_set(i + 2)
            ctx.offset = 0
            ret = traceprobe_parse_probe_arg(tf.tp, i, a, ctx)
            if ret:
                return ret
        if is_return and tf.tp.entry_arg is not None:
            tf.fp.entry_handler = self._fexit_entry_handler
            tf.fp.entry_data_size = traceprobe_get_entry_data_size(tf.tp)
        tf.event.call.print_fmt = set_print_fmt(
            tf.tp, PROBE_PRINT_RETURN if is_return else PROBE_PRINT_NORMAL)

        ret = self._register_trace_fprobe(tf)
        if ret:
            self._log_set(1)
            if ret == -errno.EILSEQ:
                self._log_err(0, ProbeErr.BAD_INSN_BNDRY)
            elif ret == -errno.ENOENT:
                self._log_err(0, ProbeErr.BAD_PROBE_ADDR)
            elif ret not in (-errno.ENOMEM, -errno.EEXIST):
                self._log_err(0, ProbeErr.FAIL_REG_PROBE)
        return ret

    # --------------------------------------------------------------- registration
    def _find(self, event: str, group: str) -> TraceFprobe | None:
        for tf in self.probes():
            if tf.name == event and tf.group == group:
                return tf
        return None

    def _register_event_call(self, tf: TraceFprobe) -> int:
        if self.events is None:
            return 0
        return self.events.add_event_call(tf.event.call)

    def _unregister_event_call(self, tf: TraceFprobe) -> int:
        if self.events is None:
            return 0
        return self.events.remove_event_call(tf.event.call)

    def _register_trace_fprobe(self, tf: TraceFprobe) -> int:
        old = self._find(tf.name, tf.group)
        if old is not None:
            return self._append_trace_fprobe(tf, old)
        ret = self._register_event_call(tf)
        if ret:
            if ret == -errno.EEXIST:
                self._log_set(0)
                self._log_err(0, ProbeErr.EVENT_EXIST)
            return ret
        ret = self.__register(tf)
        if ret < 0:
            self._unregister_event_call(tf)
        else:
            tf.event.call.flags |= TRACE_EVENT_FL_DYNAMIC
            self.dyn.add(tf)
        return ret

    def _same_fprobe(self, orig: TraceFprobe, comp: TraceFprobe) -> bool:
        for o in orig.event.probes:
            if o.symbol != comp.symbol:
                continue
            if all(o.tp.args[i].comm == comp.tp.args[i].comm for i in range(o.tp.nr_args)):
                return True
        return False

    def _append_trace_fprobe(self, tf: TraceFprobe, to: TraceFprobe) -> int:
        if tf.is_return() != to.is_return() or tf.is_tracepoint() != to.is_tracepoint():
            self._log_set(0)
            self._log_err(0, ProbeErr.DIFF_PROBE_TYPE)
            return -errno.EEXIST
        ret = compare_arg_type(tf.tp, to.tp)
        if ret:
            self._log_set(ret + 1)
            self._log_err(0, ProbeErr.DIFF_ARG_TYPE)
            return -errno.EEXIST
        if self._same_fprobe(to, tf):
            self._log_set(0)
            self._log_err(0, ProbeErr.SAME_PROBE)
            return -errno.EEXIST
        # trace_probe_append: join the existing event
        tf.event = to.event
        to.event.probes.append(tf)
        ret = self.__register(tf)
        if ret:
            to.event.probes.remove(tf)
        else:
            self.dyn.add(tf)
        return ret

    def __register(self, tf: TraceFprobe) -> int:
        """``__register_trace_fprobe``."""
        from .fprobe import FPROBE_FL_DISABLED

        if tf.fp.registered:
            return -errno.EINVAL
        for a in tf.tp.args:
            ret = traceprobe_update_arg(a, self._lookup_name)
            if ret:
                return ret
        if tf.event.is_enabled():
            tf.fp.flags &= ~FPROBE_FL_DISABLED
        else:
            tf.fp.flags |= FPROBE_FL_DISABLED
        if tf.is_tracepoint():
            if tf.tpoint is TRACEPOINT_STUB:
                return 0
            return self._register_tracepoint_fprobe(tf)
        if self.fprobe is None:
            # No ftrace yet: accept what ftrace_set_filter would match.
            ks = self.kallsyms
            if ks is not None and not ks.is_traceable(tf.symbol):
                return -errno.EINVAL
            return 0
        return self.fprobe.register_fprobe(tf.fp, tf.symbol, None)

    def _register_tracepoint_fprobe(self, tf: TraceFprobe) -> int:
        tpoint = tf.tpoint
        ret = tpoint.probe_register_may_exist(tpoint.probestub, None)
        if ret < 0:
            return ret
        if self.fprobe is None:
            return 0
        return self.fprobe.register_fprobe_ips(tf.fp, [tpoint.probestub])

    def _unregister_fprobe(self, tf: TraceFprobe) -> None:
        """``__unregister_trace_fprobe``."""
        if self.fprobe is not None:
            if not tf.fp.registered:
                return
            self.fprobe.unregister_fprobe(tf.fp)
            tf.fp.reset()
        if tf.is_tracepoint() and tf.tpoint is not TRACEPOINT_STUB:
            tf.tpoint.probe_unregister(tf.tpoint.probestub, None)
            tf.tpoint = None

    def _unregister_trace_fprobe(self, tf: TraceFprobe) -> int:
        pe = tf.event
        if len(pe.probes) <= 1:
            if pe.is_enabled():
                return -errno.EBUSY
            if pe.call.refcnt:
                return -errno.EBUSY
            if self._unregister_event_call(tf):
                return -errno.EBUSY
        self._unregister_fprobe(tf)
        self.dyn.remove(tf)
        if tf in pe.probes:
            pe.probes.remove(tf)
        return 0

    # --------------------------------------------------------------- enable/disable
    def enable(self, pe: ProbeEvent, file: Any) -> int:
        from .fprobe import enable_fprobe

        enabled = pe.is_enabled()
        if file is not None:
            pe.files.append(file)
            pe.flags |= TP_FLAG_TRACE
        else:
            pe.flags |= TP_FLAG_PROFILE
        if not enabled:
            for tf in pe.probes:
                if tf.fp.registered:
                    enable_fprobe(tf.fp)
        return 0

    def disable(self, pe: ProbeEvent, file: Any) -> int:
        from .fprobe import disable_fprobe

        if file is not None:
            if not any(f is file for f in pe.files):
                return -errno.ENOENT
            if len(pe.files) == 1:
                pe.flags &= ~TP_FLAG_TRACE
                if not pe.is_enabled():
                    for tf in pe.probes:
                        if tf.fp.registered:
                            disable_fprobe(tf.fp)
            pe.files = [f for f in pe.files if f is not file]
            if not pe.files:
                pe.flags &= ~TP_FLAG_TRACE
        else:
            pe.flags &= ~TP_FLAG_PROFILE
            if not pe.is_enabled():
                for tf in pe.probes:
                    if tf.fp.registered:
                        disable_fprobe(tf.fp)
        return 0

    # --------------------------------------------------------------- firing
    def _env(self, regs: Any, edata: bytearray | None) -> FetchEnv:
        k = self.kernel
        comm = b""
        mem: Any = _NoMem()
        sprint: Callable[[int], str] = _hex_addr
        if k is not None:
            comm = k.sched.current.comm.encode("latin-1", "replace")[:15]
            mem = getattr(k, "mem", None) or mem
            ks = self.kallsyms
            if ks is not None and hasattr(ks, "format_pS"):
                sprint = ks.format_pS
        return FetchEnv(regs if regs is not None else _NoRegs(), mem, comm, edata, sprint)

    def _fentry_dispatcher(self, fp: Any, entry_ip: int, ret_ip: int, regs: Any,
                           entry_data: Any) -> int:
        tf: TraceFprobe = fp.owner
        if tf.event.flags & TP_FLAG_TRACE:
            env = self._env(regs, None)
            depth = self._entry_depth(fp, entry_ip, tf.is_tracepoint())
            for file in list(tf.event.files):
                self._write(tf, file, env, FENTRY_HEAD_SIZE, (entry_ip,), depth)
        return 0

    def _entry_depth(self, fp: Any, entry_ip: int, tpoint: bool) -> int:
        """Preemption disabled on top of the call site's when the record is reserved:
        fprobe_handler's recursion lock, minus the one trace_event_buffer_reserve()
        discounts (tracing_gen_ctx_dec), plus arch_ftrace_ops_list_func's lock when the
        site is shared with other ops, plus the tracepoint's own for a tprobe."""
        depth = 1 if tpoint else 0
        k = self.kernel
        ft = getattr(k, "ftrace", None) if k is not None else None
        if ft is not None:
            i = ft.ip_to_index(entry_ip)
            ops = fp.ops
            if i is None or ops is None or ft.site_func[i] is not getattr(ops, "site", None):
                depth += 1
        return depth

    def _fexit_entry_handler(self, fp: Any, entry_ip: int, ret_ip: int, regs: Any,
                             entry_data: Any) -> int:
        tf: TraceFprobe = fp.owner
        if tf.tp.entry_arg is not None and entry_data is not None:
            store_trace_entry_data(entry_data, tf.tp, regs)
        return 0

    def _fexit_dispatcher(self, fp: Any, entry_ip: int, ret_ip: int, regs: Any,
                          entry_data: Any) -> None:
        tf: TraceFprobe = fp.owner
        if tf.event.flags & TP_FLAG_TRACE:
            env = self._env(regs, entry_data)
            for file in list(tf.event.files):
                # rethook_trampoline_handler disables preemption, fprobe_exit_handler
                # takes the recursion lock, the reserve discounts one
                self._write(tf, file, env, FEXIT_HEAD_SIZE, (entry_ip, ret_ip), 1)

    def _write(self, tf: TraceFprobe, file: Any, env: FetchEnv, head: int,
               words: tuple[int, ...], depth: int = 0) -> None:
        """__fentry_trace_func / __fexit_trace_func for one linked event file."""
        if self.kernel is not None:
            write_probe_record(self.kernel, file, tf.tp, tf.event.call.type_id, env, head,
                               words, depth)


def write_probe_record(k: Kernel, file: Any, tp: TraceProbe, type_id: int, env: FetchEnv,
                       head: int, words: tuple[int, ...] = (), depth: int = 0) -> None:
    """One probe event record into one event file (fprobe, tprobe and eprobe events):
    trace_trigger_soft_disabled(), trace_event_buffer_reserve() (pid filter), the head
    words and the fetched arguments, then trace_event_buffer_commit() (conditional
    triggers, the event filter).  ``depth`` is added to the preempt count."""
    flags = getattr(file, "flags", 0)
    tev = getattr(file, "events", None)
    trig = getattr(tev, "triggers", None) if tev is not None else None
    if flags & _SOFT_CHECK and not flags & EVENT_FILE_FL_TRIGGER_COND:
        if flags & EVENT_FILE_FL_TRIGGER_MODE and trig is not None and file.triggers:
            trig.call_pre(file, b"")      # event_triggers_call(file, NULL): no filters
        if flags & EVENT_FILE_FL_SOFT_DISABLED:
            return
    tr = file.tr
    if flags & EVENT_FILE_FL_PID_FILTER and tev is not None and \
            tev.ignore_pid(tr.events, k.sched.current.pid):
        return
    dsize = get_data_size(tp, env)
    size = head + tp.size + dsize
    cpu = k.sched.cpu
    off = tr.event_reserve(cpu, type_id, size)
    if off < 0:
        return
    buf = tr.event_buf(cpu)
    if depth:
        buf[off + 3] = min(buf[off + 3] + depth, 0xFF)
    buf[off + 8:off + size] = bytes(size - 8)
    for i, w in enumerate(words):
        _Q.pack_into(buf, off + 8 + 8 * i, w & 0xFFFFFFFFFFFFFFFF)
    store_trace_args(buf, off + head, tp, env, head, dsize)
    if tev is None:
        tr.event_commit(cpu)
        return
    # event_trigger_unlock_commit() → __event_trigger_test_discard().  The conditional
    # triggers run on a copy once the record is committed (an eprobe trigger writes a
    # record of its own: the ring buffer takes one reservation at a time per CPU)
    rec = b""
    if flags & EVENT_FILE_FL_TRIGGER_COND and trig is not None and file.triggers:
        rec = bytes(buf[off:off + size])
    if flags & EVENT_FILE_FL_SOFT_DISABLED or not file.passes(buf, off):
        tr.buffer.discard(cpu)
    else:
        tr.event_commit(cpu)
    if rec and trig is not None:
        trig.call_pre(file, rec)
        trig.call_post(file, rec, True)


class _NoRegs:
    """The call site passed no register set: every register reads as 0."""

    def get_kernel_argument(self, n: int) -> int:
        return 0

    def return_value(self) -> int:
        return 0

    def kernel_stack_nth(self, n: int) -> int:
        return 0

    def stack_pointer(self) -> int:
        return 0


def _hex_addr(addr: int) -> str:
    return f"0x{addr:x}"


class _NoMem:
    """No simulated memory: every access faults."""

    def read(self, addr: int, size: int, user: bool = False) -> bytes | None:
        return None

    def read_str(self, addr: int, maxlen: int, user: bool = False) -> bytes | None:
        return None


def boot(kernel: Kernel) -> FprobeEvents:
    """core_initcall(init_fprobe_trace_early): register the kind with dyn_event."""
    kind = FprobeEvents(kernel.dynevent, events=kernel.events, fprobe=kernel.fprobe,
                        btf=kernel.btf, kallsyms=kernel.kallsyms, tracepoints=kernel.events,
                        kernel=kernel)
    kernel.dynevent.register(kind)
    install_probestubs(kernel)     # tracepoints call __probestub_NAME through its ftrace site
    return kind
