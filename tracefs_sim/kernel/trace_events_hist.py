"""Histogram triggers (kernel/trace/trace_events_hist.c, 6.12): the ``hist`` command
and ``enable_hist``/``disable_hist``.

``hist:[name=NAME:]keys=K[,K..][:vals=V[,V..]][:VAR=EXPR[,..]][:sort=S[,S]][:size=N]
[:clock=C][:nohitcount][:pause|:cont|:clear] [if FILTER]`` on an event's ``trigger``
file builds a ``HistData`` (the kernel's hist_trigger_data).  Every event record that
passes the trigger's filter is reduced to a key (a tuple of the key fields' values,
standing for the kernel's compound key bytes) and updates one element of its
``TracingMap`` (sums, variables, the comm for ``.execname``).

The hist code is split as the concerns of trace_events_hist.c:

- ``tracing_map.py``: the map, its elements and the sort (tracing_map.c);
- ``trace_events_hist_data.py``: the ERRORS table and its error_log path, the
  attributes, hist_trigger_data;
- ``trace_events_hist_field.py``: the hist_field expression tree and its values;
- ``trace_events_hist_parse.py``: the spec → fields, sort keys, variables;
- ``trace_events_hist_actions.py``: onmatch/onmax/onchange with trace/save/snapshot;
- ``trace_events_hist_output.py``: the trigger line and the ``hist`` file;
- this module: the commands (parse, register/match/named sharing, pause/cont/clear,
  the trigger function that updates the map, variable references resolved against
  the defining histogram's element of the same key) and their registration.

Errors go to error_log as ``hist:SYS:EVENT: error: TEXT`` with the command
``hist:PARAM`` and the caret at the first occurrence of the offending text in it.  The
command's parse returns 0 or -errno (HistError unwinds the parser to it); the trigger
file's write raises KernelError from that.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from .errors import KernelError
from .lib import MASK64
from .trace_events import EventFile
from .trace_events_h import ETT_EVENT_HIST, ETT_HIST_ENABLE
from .trace_events_hist_actions import HistActions
from .trace_events_hist_data import Attrs, HistData, HistEltData, HistErr, HistError, HistLog
from .trace_events_hist_field import (
    FL_STACKTRACE,
    FL_STRING,
    FL_VAR,
    HIST_STACKTRACE_DEPTH,
    HistCtx,
    HistField,
    HistValue,
    hist_fn_call,
)
from .trace_events_hist_output import hist_show, trigger_print
from .trace_events_hist_parse import HistParser, separate_filter
from .trace_events_trigger import (
    EventCommand,
    EventEnableCommand,
    Record,
    TriggerCommands,
    TriggerData,
    tracepoint_callers,
)
from .tracing_map import KeyValue
from .waitqueue import WaitQueue

if TYPE_CHECKING:
    from .core import Kernel

_HIST_STACK_NAMES = ("trace_event_raw_event_{}", "__traceiter_{}")


class HistCommand(EventCommand):
    """``trigger_hist_cmd`` of one kernel, with the hist code's statics
    (named_triggers, last_cmd, hist_poll_wq)."""

    needs_rec = True

    def __init__(self, triggers: TriggerCommands) -> None:
        super().__init__(triggers, "hist", ETT_EVENT_HIST)
        self.events = triggers.events
        self.log = HistLog()
        self.parser = HistParser(self.events, self.log)
        self.actions = HistActions(self.kernel, self.parser, self.log, self)
        self.named: list[TriggerData] = []      # named_triggers (a trigger owning a name)
        self.poll_wq = WaitQueue()              # hist_poll_wq: woken by every histogram hit

    # ------------------------------------------------------------------ the hist file
    def hit_count(self, file: EventFile) -> int:
        """get_hist_hit_count(): the hits of every histogram on the event."""
        return sum(t.hist.map.hits for t in file.triggers if t.hist is not None)

    def hist_text(self, file: EventFile) -> str:
        return hist_show(file, self.kernel.kallsyms)

    def print(self, data: TriggerData) -> str:
        return trigger_print(data)

    # ------------------------------------------------------------------ parse
    def parse(self, file: EventFile, glob: str, cmd: str, param_and_filter: str | None) -> int:
        """event_hist_trigger_parse(): 0 or -errno."""
        if param_and_filter is not None:
            self.log.set(file, param_and_filter)
        remove = glob.startswith("!")
        if param_and_filter is None or not param_and_filter.strip():
            return -errno.EINVAL
        param, flt = separate_filter(param_and_filter)
        if param is None:
            return -errno.EINVAL
        param = param.replace(".sym-offset", ".symXoffset")
        try:
            attrs = self.parser.parse_attrs(file.tr, param)
            hist = self._create_hist_data(attrs, file, remove)
        except HistError as e:
            return e.errno
        data = TriggerData(cmd, self, hist=hist)
        if flt is not None:
            ret = self.triggers.set_trigger_filter(file, data, "if " + flt)
            if ret < 0:
                return ret
        if remove:
            self._unreg_matching(file, data)
            return 0
        if self._update_only(data, file):
            return 0
        try:
            self.actions.create_actions(hist)
        except HistError as e:
            self.actions.drop_field_var_hists(hist)
            return e.errno
        ret = self.reg(file, data)
        if ret:
            self.actions.drop_field_var_hists(hist)
        else:
            self.log.clear()
        return ret

    def _create_hist_data(self, attrs: Attrs, file: EventFile, remove: bool) -> HistData:
        """create_hist_data(): the actions' text first (its errors come first), then
        the fields, sort keys and map fields."""
        sched = self.kernel.sched
        hist = HistData(attrs, file, remove, lambda: HistEltData(sched.current.comm))
        for text in attrs.actions:
            hist.action_data.append(self.actions.parse_action(hist, text))
        self.parser.create_fields(hist)
        return hist

    # ------------------------------------------------------------------ matching
    @staticmethod
    def _fields_match(a: HistField, b: HistField) -> bool:
        if a.flags != b.flags or a.offset != b.offset or a.size != b.size:
            return False
        if a.is_signed != b.is_signed or a.var_name != b.var_name:
            return False
        fa, fb = a.field, b.field
        if fa is not fb:
            if fa is None or fb is None:
                return False
            if (fa.name, fa.type, fa.size, fa.is_signed) != (fb.name, fb.type, fb.size, fb.is_signed):
                return False
        return True

    def match(self, data: TriggerData, test: TriggerData, named: TriggerData | None,
              ignore_filter: bool) -> bool:
        """hist_trigger_match()."""
        if named is not None and named is not test and named is not test.named_data:
            return False
        if named is None and self._is_named(test):
            return False
        h, ht = data.hist, test.hist
        assert h is not None and ht is not None
        if (h.n_vals != ht.n_vals or len(h.fields) != len(ht.fields)
                or len(h.sort_keys) != len(ht.sort_keys)):
            return False
        if not ignore_filter and bool(data.filter_str) != bool(test.filter_str):
            return False
        if not all(self._fields_match(a, b) for a, b in zip(h.fields, ht.fields, strict=True)):
            return False
        if h.sort_keys != ht.sort_keys:
            return False
        if not ignore_filter and data.filter_str and data.filter_str != test.filter_str:
            return False
        return [a.spec() for a in h.action_data] == [a.spec() for a in ht.action_data]

    def _find_named(self, name: str | None) -> TriggerData | None:
        """find_named_trigger()."""
        if not name:
            return None
        for d in self.named:
            if d.named_data is None and d.name == name:
                return d
        return None

    def _is_named(self, t: TriggerData) -> bool:
        return any(d is t for d in self.named)

    # ------------------------------------------------------------------ registry
    def _update_only(self, data: TriggerData, file: EventFile) -> bool:
        """existing_hist_update_only(): :pause / :cont / :clear on an existing trigger."""
        assert data.hist is not None
        a = data.hist.attrs
        if not (a.pause or a.cont or a.clear):
            return False
        named = self._find_named(a.name)
        if named is not None and not self.match(data, named, named, True):
            return False
        if a.name and named is None:
            return False
        for t in file.triggers:
            if t.ops is not self or not self.match(data, t, named, False):
                continue
            if a.pause:
                t.paused = True
            elif a.cont:
                t.paused = False
            else:
                assert t.hist is not None
                t.hist.map.clear()
            return True
        return False

    def reg(self, file: EventFile, data: TriggerData) -> int:
        """hist_register_trigger() + hist_trigger_enable()."""
        hist = data.hist
        assert hist is not None
        a = hist.attrs
        tr = file.tr
        named = self._find_named(a.name)
        if named is not None and not self.match(data, named, named, True):
            self.log.err(tr, HistErr.NAMED_MISMATCH, a.name)
            return -errno.EINVAL
        if not (a.name and named is None):
            for t in file.triggers:
                if t.ops is self and self.match(data, t, named, False):
                    self.log.err(tr, HistErr.TRIGGER_EEXIST)
                    return -errno.EEXIST
        if a.cont or a.clear:
            self.log.err(tr, HistErr.TRIGGER_ENOENT_CLEAR)
            return -errno.ENOENT
        if a.pause:
            data.paused = True
        if hist.enable_timestamps:
            try:
                self.kernel.trace.set_clock(tr, a.clock)
            except KernelError:
                self.log.err(tr, HistErr.SET_CLOCK_FAIL, a.clock)
                return -errno.EINVAL
        if named is not None:
            data.hist = named.hist
            data.named_data = named
            data.name = named.name
            self.named.insert(0, data)
        elif a.name:
            data.name = a.name
            self.named.insert(0, data)
        file.triggers.append(data)           # list_add_tail_rcu()
        self.triggers.update_cond_flag(file)
        self.triggers.trigger_enable_disable(file, True)
        return 0

    def _unreg_matching(self, file: EventFile, data: TriggerData) -> None:
        """hist_unregister_trigger() for ``!hist:...``, then its field variable hists."""
        assert data.hist is not None
        named = self._find_named(data.hist.attrs.name)
        for t in list(file.triggers):
            if t.ops is self and self.match(data, t, named, False):
                self.unreg(file, t)
                assert t.hist is not None
                self.actions.drop_field_var_hists(t.hist)
                break

    def unreg(self, file: EventFile, data: TriggerData) -> TriggerData | None:
        """hist_unregister_trigger() of ``data`` itself (the matching is done)."""
        file.triggers.remove(data)
        self.triggers.trigger_enable_disable(file, False)
        self.triggers.update_cond_flag(file)
        self.named = [d for d in self.named if d is not data]
        return data

    # ------------------------------------------------------------------ firing
    def trigger(self, data: TriggerData, file: EventFile, rec: Record) -> None:
        """event_hist_trigger(): one record into the histogram."""
        if not rec:
            return
        hist = data.hist
        assert hist is not None
        tr = file.tr
        ctx = (tr.clock.now(), self.kernel.sched.cpu, tr.clock.in_ns)
        key = tuple([self._key_value(hf, rec, ctx) for hf in hist.fields[hist.n_vals:]])
        ref_vals: list[HistValue] = [0] * len(hist.var_refs)
        if ref_vals and not self._resolve_refs(hist, key, ref_vals, False):
            return
        elt = hist.map.insert(key)
        if elt is None:
            return
        sums = elt.sums
        sum_of = hist.sum_of
        for i, hf in enumerate(hist.fields[:hist.n_vals]):
            v = hist_fn_call(hf, rec, ctx, ref_vals)
            if hf.flags & FL_VAR:
                elt.vars[hf.var_idx] = v
                elt.var_set[hf.var_idx] = True
                continue
            slot = sum_of[i]
            sums[slot] = (sums[slot] + (v if isinstance(v, int) else 0)) & MASK64
        if self._resolve_refs(hist, key, ref_vals, True):
            self.actions.run_actions(hist, elt, rec, ref_vals)
        if self.poll_wq:
            self.poll_wq.wake_up()          # hist_poll_wakeup()

    @staticmethod
    def _resolve_refs(hist: HistData, key: tuple[KeyValue, ...], vals: list[HistValue],
                      self_: bool) -> bool:
        """resolve_var_refs(): the referenced variables of this hist (``self_``) or of
        others, from the element with the same key; False when one is unset."""
        for i, ref in enumerate(hist.var_refs):
            var = ref.ref_var
            if var is None:
                return False
            vh = var.hist
            if (self_ and vh is not hist) or (not self_ and vh is hist):
                continue
            # tracing_map_lookup() compares the defining hist's key_size bytes of this
            # hist's key: its leading key fields
            elt = vh.map.lookup(key[:vh.n_keys] if len(key) > vh.n_keys else key)
            if elt is None or not elt.var_set[var.var_idx]:
                return False
            vals[i] = elt.vars[var.var_idx]
            if not self_ and ref.read_once:
                elt.var_set[var.var_idx] = False
        return True

    def _key_value(self, hf: HistField, rec: Record, ctx: HistCtx) -> KeyValue:
        if hf.flags & FL_STACKTRACE:
            ks = self.kernel.kallsyms
            event = hf.hist.file.call.name
            return tuple(tracepoint_callers(ks, event, _HIST_STACK_NAMES)[:HIST_STACKTRACE_DEPTH])
        v = hist_fn_call(hf, rec, ctx)
        if hf.flags & FL_STRING:
            return v[:hf.size - 1] if isinstance(v, bytes) else b""
        return v

    def unreg_all(self, file: EventFile) -> None:
        """hist_unreg_all()."""
        for t in list(file.triggers):
            if t.ops is self:
                self.unreg(file, t)


class HistEnableCommand(EventEnableCommand):
    """``enable_hist`` / ``disable_hist:SYS:EVENT[:COUNT]``: pause or continue every
    hist trigger of the target event (hist_enable_trigger())."""

    def unreg_all(self, file: EventFile) -> None:
        """hist_enable_unreg_all(): every enable_hist/disable_hist trigger of ``file``."""
        for t in list(file.triggers):
            if t.trigger_type == ETT_HIST_ENABLE:
                self.unreg(file, t)

    def trigger(self, data: TriggerData, file: EventFile, rec: Record) -> None:
        """hist_enable_count_trigger()."""
        target = data.target
        assert target is not None
        if not self.count_down(data):
            return
        for h in target.triggers:
            if h.hist is not None:
                h.paused = data.cmd == "disable_hist"


def boot(kernel: Kernel) -> HistCommand:
    """register_trigger_hist_enable_disable_cmds() then register_trigger_hist_cmd()."""
    triggers = kernel.events.triggers
    for name in ("enable_hist", "disable_hist"):
        triggers.register_event_command(HistEnableCommand(triggers, name, ETT_HIST_ENABLE))
    hist = HistCommand(triggers)
    triggers.register_event_command(hist)
    return hist
