"""``kprobe_events``, ``kprobe_profile``, ``uprobe_events``, ``uprobe_profile``
(trace_kprobe.c / trace_uprobe.c ``probes_open``, ``probes_write``, ``profile_open``).

``*_events`` behave like ``dynamic_events`` restricted to one kind: an O_TRUNC open for
write releases that kind's events only (EBUSY fails the open when one is enabled), reads
show that kind's definitions, and each write runs ``trace_parse_run_command`` with the
kind's ``create_or_delete_trace_*probe`` (``-:`` removes; a line of another syntax is
EINVAL).  ``*_profile`` are read-only seq files.
"""

from __future__ import annotations

from typing import Any

from .dynevent_files import DynEventsOpenFile
from .files import seq_file
from .node import File, Node, OpenMode

TRACE_MODE_WRITE = 0o640
TRACE_MODE_READ = 0o440


class ProbeEventsOpenFile(DynEventsOpenFile):
    """``kprobe_events`` / ``uprobe_events``: dynamic_events for one kind."""

    def kind_create(self, line: str) -> int:
        return self.kind.run_command(line)


class SynthEventsOpenFile(ProbeEventsOpenFile):
    """``synthetic_events`` (trace_events_synth.c): ``NAME\tFIELDS`` lines; a write runs
    create_or_delete_synth_event per line; O_TRUNC releases the synthetic events."""

    def read(self, offset: int, size: int) -> bytes:
        if offset == 0 or not self._buf:
            self._buf = self.kind.file_text().encode()
        return self._buf[offset:offset + size]


def probe_events_file(dyn: Any, kind: Any) -> File:
    return File(TRACE_MODE_WRITE, lambda node, m: ProbeEventsOpenFile(node, m, dyn, kind))


def probe_top_files(kernel: Any) -> dict[str, Node]:
    """The probe files of the top-level tracing directory (for the kinds that booted)."""
    files: dict[str, Node] = {}
    dyn = getattr(kernel, "dynevent", None)
    if dyn is None:
        return files
    kp = getattr(kernel, "kprobe_events", None)
    if kp is not None:
        files["kprobe_events"] = probe_events_file(dyn, kp)
        files["kprobe_profile"] = seq_file(TRACE_MODE_READ, kp.profile_text)
    up = getattr(kernel, "uprobe_events", None)
    if up is not None:
        files["uprobe_events"] = probe_events_file(dyn, up)
        files["uprobe_profile"] = seq_file(TRACE_MODE_READ, up.profile_text)
    synth = getattr(kernel, "synth_events", None)
    if synth is not None:
        files["synthetic_events"] = File(
            TRACE_MODE_WRITE, lambda node, m: SynthEventsOpenFile(node, m, dyn, synth))
    return files


__all__ = ["probe_top_files", "ProbeEventsOpenFile", "OpenMode"]
