"""Hist trigger actions (trace_events_hist.c parse_actions(), create_actions() and
the action functions): ``onmatch(SYS.EVENT).SYNTH(params)`` / ``.trace(SYNTH,
params)``, ``onmax($var)`` and ``onchange($var)`` with ``.save(fields)``,
``.snapshot()`` or a synthetic event.

A parameter is a variable reference (``$var``, ``SYS.EVENT.$var``), a field of the
trigger's event, or ``SYS.EVENT.FIELD``: a field of another event read through a
field variable, a ``synthetic_FIELD=FIELD`` histogram created on that event with its
histogram's keys (create_field_var_hist()) and removed with the trigger.
onmax/onchange keep the tracked value in an element variable slot of their own.

Errors log through ``HistLog`` and raise ``HistError(-errno)`` to the hist command's
parse entry point, like the rest of the parser.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .trace_events_hist_data import HistData, HistEltData, HistErr, HistError, HistLog
from .trace_events_hist_field import (
    HistCtx,
    HistField,
    HistValue,
    field_print,
    hist_fn_call,
)
from .trace_events_hist_parse import HistParser
from .trace_events_synth import SynthEvent, SynthField, trace_synth
from .tracing_map import Elt

if TYPE_CHECKING:
    from .core import Kernel
    from .trace_events_hist import HistCommand

Record = bytes | bytearray
# A parameter's value at action time: (record, context, resolved variable references)
ParamGetter = Callable[[Record, HistCtx, list[HistValue]], HistValue]

HANDLER_ONMATCH, HANDLER_ONMAX, HANDLER_ONCHANGE = "onmatch", "onmax", "onchange"
ACTION_TRACE, ACTION_SAVE, ACTION_SNAPSHOT = "trace", "save", "snapshot"


@dataclass
class Action:
    """``struct action_data``: HANDLER(...).ACTION(params)."""

    handler: str                        # onmatch / onmax / onchange
    action: str = ""                    # trace / save / snapshot
    name: str = ""                      # action name as written (synth event or keyword)
    synth_name: str = ""
    use_trace_keyword: bool = False
    params: list[str] = field(default_factory=list)
    match_system: str = ""
    match_event: str = ""
    var_str: str = ""                   # onmax($var) / onchange($var)
    synth: SynthEvent | None = None
    getters: list[ParamGetter] = field(default_factory=list)
    track_ref: HistField | None = None  # the var ref tracked by onmax/onchange

    def spec(self) -> str:
        """print_actions_spec() of one action."""
        if self.handler == HANDLER_ONMATCH:
            s = f"onmatch({self.match_system}.{self.match_event})."
        else:
            s = f"{self.handler}({self.var_str})."
        if self.action == ACTION_SNAPSHOT:
            return s + "snapshot()"
        if self.action == ACTION_SAVE:
            return s + "save(" + ",".join(self.params) + ")"
        if self.use_trace_keyword:
            return s + f"trace({self.synth_name}" + "".join("," + p for p in self.params) + ")"
        return s + f"{self.synth_name}(" + ",".join(self.params) + ")"


class HistActions:
    """Parsing, creating and running the actions of hist triggers of one kernel."""

    def __init__(self, kernel: Kernel, parser: HistParser, log: HistLog,
                 command: HistCommand) -> None:
        self.kernel = kernel
        self.parser = parser
        self.log = log
        self.command = command

    def err(self, hist: HistData, err: HistErr, text: str | None = None) -> None:
        self.log.err(hist.tr, err, text)

    # ------------------------------------------------------------------ parsing
    def parse_action(self, hist: HistData, text: str) -> Action:
        """parse_actions() of one ``onmatch(..)`` / ``onmax(..)`` / ``onchange(..)``."""
        handler, _, rest = text.partition("(")
        act = Action(handler)
        head, close, rest = rest.partition(")")
        if handler == HANDLER_ONMATCH:
            if not close:
                self.err(hist, HistErr.NO_CLOSING_PAREN, head)
                raise HistError(-errno.EINVAL)
            system, dot, event = head.partition(".")
            if not dot:
                self.err(hist, HistErr.SUBSYS_NOT_FOUND, system)
                raise HistError(-errno.EINVAL)
            events = self.parser.events
            call = events.find_event(system, event)
            if call is None or events.file(hist.tr, call) is None:
                self.err(hist, HistErr.INVALID_SUBSYS_EVENT, event)
                raise HistError(-errno.EINVAL)
            act.match_system, act.match_event = system, event
        else:
            if not close:
                raise HistError(-errno.EINVAL)
            act.var_str = head
        _, dot, rest = rest.partition(".")
        name, paren, rest = rest.partition("(")
        if not dot or not paren:
            self.err(hist, HistErr.ACTION_NOT_FOUND)
            raise HistError(-errno.EINVAL)
        params, close, _ = rest.partition(")")
        act.name = name
        if name.startswith("save"):
            if not close:
                self.err(hist, HistErr.NO_SAVE_PARAMS)
                raise HistError(-errno.EINVAL)
            act.action = ACTION_SAVE
        elif name.startswith("snapshot"):
            if not close:
                self.err(hist, HistErr.NO_CLOSING_PAREN, params)
                raise HistError(-errno.EINVAL)
            act.action = ACTION_SNAPSHOT
        else:
            act.action = ACTION_TRACE
            act.use_trace_keyword = name.startswith("trace")
        if act.action in (ACTION_SAVE, ACTION_SNAPSHOT) and handler == HANDLER_ONMATCH:
            self.err(hist, HistErr.ACTION_MISMATCH, name)
            raise HistError(-errno.EINVAL)
        plist = [p.strip() for p in params.split(",")] if params else []
        if act.action == ACTION_TRACE:
            if act.use_trace_keyword:
                if not plist:
                    raise HistError(-errno.EINVAL)
                act.synth_name = plist.pop(0)
            else:
                act.synth_name = name
        if act.action != ACTION_SNAPSHOT:
            act.params = plist
        return act

    # ------------------------------------------------------------------ creating
    def create_actions(self, hist: HistData) -> None:
        """create_actions(): synthetic event, parameters, tracked variables."""
        hist.track_slots = {}
        for i, act in enumerate(hist.action_data):
            if act.handler != HANDLER_ONMATCH:
                if not act.var_str.startswith("$"):
                    self.err(hist, HistErr.ONX_NOT_VAR, act.var_str)
                    raise HistError(-errno.EINVAL)
                try:
                    ref = self.parser.parse_var_ref(hist, None, None, act.var_str)
                except HistError:
                    self.err(hist, HistErr.ONX_VAR_NOT_FOUND, act.var_str[1:])
                    raise
                act.track_ref = ref
                hist.track_slots[i] = hist.map.add_var()
            if act.action == ACTION_TRACE:
                se = self.kernel.synth_events.find(act.synth_name)
                if se is None:
                    self.err(hist, HistErr.SYNTH_EVENT_NOT_FOUND, act.synth_name)
                    raise HistError(-errno.EINVAL)
                if len(act.params) != len(se.fields):
                    self.err(hist, HistErr.SYNTH_COUNT_MISMATCH, act.synth_name)
                    raise HistError(-errno.EINVAL)
                act.synth = se
            act.getters = []
            for pos, p in enumerate(act.params):
                getter, ptype, psize, psigned = self._param_getter(hist, p)
                if act.synth is not None and not check_synth_field(act.synth.fields[pos], ptype,
                                                                   psize, psigned):
                    self.err(hist, HistErr.SYNTH_TYPE_MISMATCH, p)
                    raise HistError(-errno.EINVAL)
                act.getters.append(getter)

    def _param_getter(self, hist: HistData, param: str) -> tuple[ParamGetter, str, int, bool]:
        """A parameter's value at action time: a variable reference, a field of this
        event, or ``SYS.EVENT.FIELD`` through a field variable on that event; with the
        parameter's type, size and signedness."""
        parts = param.split(".")
        if param.startswith("$") or (len(parts) == 3 and parts[2].startswith("$")):
            system, event, var = (None, None, param) if param.startswith("$") else parts
            return self._ref_param(hist, system, event, var)
        if len(parts) == 3:
            return self._remote_field_var(hist, parts[0], parts[1], parts[2], param)
        fld = hist.file.call.find_field(param)
        if fld is None and param not in ("common_timestamp", "common_cpu"):
            self.err(hist, HistErr.PARAM_NOT_FOUND, param)
            raise HistError(-errno.EINVAL)
        hf = self.parser.parse_atom(hist, param, 0, None)
        return ((lambda rec, ctx, vals: hist_fn_call(hf, rec, ctx, vals)), hf.type, hf.size,
                hf.is_signed)

    def _ref_param(self, hist: HistData, system: str | None, event: str | None,
                   var: str) -> tuple[ParamGetter, str, int, bool]:
        ref = self.parser.parse_var_ref(hist, system, event, var)
        assert ref is not None
        idx = ref.var_ref_idx
        return ((lambda rec, ctx, vals: vals[idx] if idx < len(vals) else 0), ref.type,
                ref.size, ref.is_signed)

    def _remote_field_var(self, hist: HistData, system: str, event: str, fname: str,
                          param: str) -> tuple[ParamGetter, str, int, bool]:
        """create_field_var_hist(): ``synthetic_FIELD=FIELD`` on a histogram of the other
        event with that histogram's keys, read back by reference."""
        events = self.parser.events
        call = events.find_event(system, event)
        file = events.file(hist.tr, call) if call is not None else None
        target = None
        if file is not None:
            target = next((t.hist for t in file.triggers if t.hist is not None), None)
        if file is None or target is None or call is None or call.find_field(fname) is None:
            self.err(hist, HistErr.FIELD_VAR_CREATE_FAIL, param)
            raise HistError(-errno.EINVAL)
        keys = ",".join(field_print(k) for k in target.keys())
        cmd = f"keys={keys}:synthetic_{fname}={fname}"
        saved = self.log.save()
        ret = self.command.parse(file, "hist", "hist", cmd)
        self.log.restore(saved)
        if ret:
            self.err(hist, HistErr.FIELD_VAR_CREATE_FAIL, param)
            raise HistError(-errno.EINVAL)
        hist.field_var_hists.append((file, cmd))
        return self._ref_param(hist, system, event, f"$synthetic_{fname}")

    def drop_field_var_hists(self, hist: HistData) -> None:
        """unregister_field_var_hists()."""
        for file, cmd in hist.field_var_hists:
            saved = self.log.save()
            self.command.parse(file, "!hist", "hist", cmd)
            self.log.restore(saved)
        hist.field_var_hists.clear()

    # ------------------------------------------------------------------ running
    def run_actions(self, hist: HistData, elt: Elt[HistEltData], rec: Record,
                    ref_vals: list[HistValue]) -> None:
        """hist_trigger_actions(): onmatch traces its synthetic event; onmax/onchange
        keep the tracked value per element and save fields or take a snapshot."""
        k = self.kernel
        tr = hist.file.tr
        ctx = (tr.clock.now(), k.sched.cpu, tr.clock.in_ns)
        for i, act in enumerate(hist.action_data):
            if act.handler != HANDLER_ONMATCH:
                ref = act.track_ref
                val = ref_vals[ref.var_ref_idx] if ref is not None else 0
                slot = hist.track_slots[i]
                cur = elt.vars[slot]
                better = (val > cur) if act.handler == HANDLER_ONMAX else (val != cur)
                if not better:
                    continue
                elt.vars[slot] = val
                elt.var_set[slot] = True
                if act.action == ACTION_SAVE:
                    elt.private.saved[i] = [g(rec, ctx, ref_vals) for g in act.getters]
                    continue
                if act.action == ACTION_SNAPSHOT:
                    k.trace.take_snapshot(tr)
                    hist.snapshot = (val, elt.key, elt.private.comm)
                    continue
            if act.synth is None:
                continue
            values = [g(rec, ctx, ref_vals) for g in act.getters]
            trace_synth(k, act.synth, values)


def check_synth_field(f: SynthField, ptype: str, psize: int, psigned: bool) -> bool:
    """check_synth_field(): a parameter's type against the synthetic field's."""
    if "char[" in ptype and f.is_string and f.is_dynamic:
        return True
    if "long[" in ptype and f.is_stack:
        return True
    ftype = f.type.removeprefix("__data_loc ")
    if ftype != ptype and (f.size != psize or (not f.is_string and f.is_signed != psigned)):
        return False
    return True
