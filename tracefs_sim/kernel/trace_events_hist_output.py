"""Printing hist triggers (trace_events_hist.c): the trigger's line in the ``trigger``
file (event_hist_trigger_print()) and the ``hist`` file (hist_show():
hist_trigger_print_key(), hist_trigger_print_val(), print_actions() and the totals),
with the kernel's column widths.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import trace_events_hist_field as hist_field
from .lib import MASK64
from .syscall_table import SyscallTable
from .trace_events_hist_actions import ACTION_SAVE, ACTION_SNAPSHOT, HANDLER_ONMATCH, HANDLER_ONMAX
from .trace_events_hist_data import HistData, HistEltData
from .trace_events_hist_field import HistField, field_name, field_print
from .tracing_map import Elt, KeyValue

if TYPE_CHECKING:
    from .kallsyms import Kallsyms
    from .trace_events import EventFile
    from .trace_events_trigger import TriggerData

# get_syscall_name(): the name in the syscall's metadata ("sys_newstat" for nr 4); a
# number without metadata (not implemented) prints as unknown_syscall
SYSCALL_NAMES = {s.nr: s.entry for s in SyscallTable.load().by_nr.values() if s.entry}


def trigger_print(data: TriggerData) -> str:
    """event_hist_trigger_print()."""
    hist = data.hist
    assert hist is not None
    s = "hist:"
    if data.name:
        s += f"{data.name}:"
    keys = []
    for hf in hist.keys():
        if hf.flags & hist_field.FL_STACKTRACE:
            keys.append(f"{hf.field.name}.stacktrace" if hf.field else "common_stacktrace")
        else:
            keys.append(field_print(hf))
    s += "keys=" + ",".join(keys) + ":vals="
    vals = []
    have_var = False
    for i, hf in enumerate(hist.vals()):
        if hf.flags & hist_field.FL_VAR:
            have_var = True
            continue
        if i == 0:
            if hist.attrs.no_hitcount:
                continue
            vals.append("hitcount")
        else:
            vals.append(field_print(hf))
    s += ",".join(vals)
    if have_var:
        s += ":" + ",".join(field_print(hf) for hf in hist.vals() if hf.flags & hist_field.FL_VAR)
    s += ":sort="
    sorts = []
    non_var = [hf for hf in hist.fields if not hf.flags & hist_field.FL_VAR]
    for idx, desc in hist.sort_keys:
        t = "hitcount" if idx == 0 else field_print(non_var[idx])
        sorts.append(t + (".descending" if desc else ""))
    s += ",".join(sorts)
    s += f":size={1 << hist.map.bits}"
    if hist.enable_timestamps:
        s += f":clock={hist.attrs.clock}"
    if hist.attrs.no_hitcount:
        s += ":nohitcount"
    for act in hist.action_data:
        s += ":" + act.spec()
    if data.filter_str:
        s += f" if {data.filter_str}"
    s += " [paused]" if data.paused else " [active]"
    return s + "\n"


def hist_show(file: EventFile, ks: Kallsyms) -> str:
    """hist_show(): every hist trigger of the event."""
    out: list[str] = []
    n = 0
    for t in file.triggers:
        hist = t.hist
        if hist is None:
            continue
        if n:
            out.append("\n\n")
        n += 1
        out.append("# event histogram\n#\n# trigger info: ")
        out.append(trigger_print(t))
        out.append("#\n\n")
        entries = hist.map.sort_entries(hist.sort_keys)
        _print_entries(out, hist, entries, ks)
        snap = next((a for a in hist.action_data if a.action == ACTION_SNAPSHOT), None)
        if snap is not None and hist.snapshot is not None:
            val, key, comm = hist.snapshot
            out.append("\nSnapshot taken (see tracing/snapshot).  Details:\n")
            out.append(f"\ttriggering value {{ {snap.handler}({snap.var_str}) }}: {val:10d}")
            out.append("\ttriggered by event with key: " + _key_text(hist, key, comm, ks) + "\n")
        out.append(f"\nTotals:\n    Hits: {hist.map.hits}\n    Entries: {len(entries)}\n"
                   f"    Dropped: {hist.map.drops}\n")
    return "".join(out)


def _print_entries(out: list[str], hist: HistData, entries: list[Elt[HistEltData]],
                   ks: Kallsyms) -> None:
    """hist_trigger_entry_print() of each sorted entry."""
    vals = hist.vals()
    stats: dict[int, tuple[int, int]] = {}
    for i, hf in enumerate(vals):
        if hf.flags & (hist_field.FL_PERCENT | hist_field.FL_GRAPH):
            slot = hist.sum_of[i]
            col = [e.sums[slot] for e in entries]
            stats[i] = (max(col, default=0), sum(col))
    for e in entries:
        out.append(_key_text(hist, e.key, e.private.comm, ks))
        if not hist.attrs.no_hitcount:
            out.append(_val_text(hist, 0, "hitcount", 0, stats, e))
        for i in range(1, hist.n_vals):
            hf = vals[i]
            if hf.flags & (hist_field.FL_VAR | hist_field.FL_EXPR):
                continue
            out.append(" " + _val_text(hist, i, field_name(hf), hf.flags, stats, e))
        out.append(_track_text(hist, e))
        out.append("\n")


def _track_text(hist: HistData, e: Elt[HistEltData]) -> str:
    """print_actions() / track_data_print(): the tracked value and saved fields."""
    out = []
    for i, act in enumerate(hist.action_data):
        if act.handler == HANDLER_ONMATCH or act.action == ACTION_SNAPSHOT:
            continue
        label = "max" if act.handler == HANDLER_ONMAX else "changed"
        out.append(f"\n\t{label}: {e.vars[hist.track_slots[i]]:10d}")
        if act.action != ACTION_SAVE:
            continue
        saved = e.private.saved.get(i, [0] * len(act.params))
        for name, v in zip(act.params, saved, strict=False):
            if isinstance(v, bytes):
                out.append(f"  {name}: {v.decode('latin-1'):<32}")
            else:
                out.append(f"  {name}: {v:10d}")
    return "".join(out)


def _val_text(hist: HistData, i: int, name: str, flags: int,
              stats: dict[int, tuple[int, int]], e: Elt[HistEltData]) -> str:
    """hist_trigger_print_val()."""
    v = e.sums[hist.sum_of[i]]
    if flags & hist_field.FL_PERCENT:
        pc = _percentage(v, stats[i][1])
        if pc is None:
            return f" {name} (%):[ERROR]"
        return f" {name} (%): {pc // 100:3d}.{pc % 100:02d}"
    if flags & hist_field.FL_GRAPH:
        return f" {name}: {_bar(v, stats[i][0]):>20}"
    if flags & hist_field.FL_HEX:
        return f" {name}: {v:10x}"
    return f" {name}: {v:10d}"


@dataclass(frozen=True, slots=True)
class _Key:
    """One key field being printed."""

    name: str
    v: KeyValue
    hf: HistField
    comm: str
    ks: Kallsyms


def _stack_text(k: _Key) -> str:
    assert isinstance(k.v, tuple)
    t = f"{k.hf.field.name}.stacktrace" if k.hf.field else "common_stacktrace:\n"
    return t + "".join(f"{' ' * 9}{k.ks.format_pS(a)}\n" for a in k.v if a)


def _syscall_text(k: _Key) -> str:
    assert isinstance(k.v, int)
    return f"{k.name}: {SYSCALL_NAMES.get(k.v, 'unknown_syscall'):<30}[{k.v:3d}]"


def _bucket_text(k: _Key) -> str:
    assert isinstance(k.v, int)
    return f"{k.name}: ~ {k.v}-{k.v + k.hf.buckets - 1}"


def _string_text(k: _Key) -> str:
    assert isinstance(k.v, bytes)
    return f"{k.name}: {k.v.decode('latin-1'):<50}"


# hist_trigger_print_key(): the first flag of a key field that has a format decides
_KEY_FORMATS: tuple[tuple[int, Callable[[_Key], str]], ...] = (
    (hist_field.FL_HEX, lambda k: f"{k.name}: {k.v:x}"),
    (hist_field.FL_SYM, lambda k: f"{k.name}: [{k.v:x}] {k.ks.format_ps(k.v):<45}"),
    (hist_field.FL_SYM_OFFSET, lambda k: f"{k.name}: [{k.v:x}] {k.ks.format_pS(k.v):<55}"),
    (hist_field.FL_EXECNAME, lambda k: f"{k.name}: {k.comm:<16}[{k.v:10d}]"),
    (hist_field.FL_SYSCALL, _syscall_text),
    (hist_field.FL_STACKTRACE, _stack_text),
    (hist_field.FL_LOG2, lambda k: f"{k.name}: ~ 2^{k.v:<2d}"),
    (hist_field.FL_BUCKET, _bucket_text),
    (hist_field.FL_STRING, _string_text),
)


def _key_text(hist: HistData, key: tuple[KeyValue, ...], comm: str, ks: Kallsyms) -> str:
    """hist_trigger_print_key()."""
    parts = []
    multiline = False
    for pos, hf in enumerate(hist.keys()):
        k = _Key(field_name(hf), key[pos], hf, comm, ks)
        for flag, fmt in _KEY_FORMATS:
            if hf.flags & flag:
                parts.append(fmt(k))
                multiline |= flag == hist_field.FL_STACKTRACE
                break
        else:
            parts.append(f"{k.name}: {k.v:10d}")
    return "{ " + ", ".join(parts) + ("" if multiline else " ") + "}"


def _percentage(v: int, total: int) -> int | None:
    """__get_percentage(): 100 times the percentage, None for the kernel's UINT_MAX."""
    if not total:
        return None if v else 0
    if v < MASK64 // 10000:
        return v * 10000 // total
    total //= 10000
    if not total:
        return None if v else 0
    return v // total


def _bar(v: int, mx: int) -> str:
    """The ``.graph`` modifier's bar: 20 columns for the largest value."""
    pc = _percentage(v, mx)
    if pc is None:
        return "[ERROR]"
    n = pc * 20 // 10000
    return ("#" * min(n, 20)).ljust(20)
