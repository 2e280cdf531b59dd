"""``kprobe_events``, ``kprobe_profile``, ``uprobe_events``, ``uprobe_profile``
(trace_kprobe.c / trace_uprobe.c ``probes_open``, ``probes_write``, ``profile_open``) and
``synthetic_events`` (trace_events_synth.c).

``*_events`` behave like ``dynamic_events`` restricted to one kind: an O_TRUNC open for
write releases that kind's events only (EBUSY fails the open when one is enabled), reads
show that kind's definitions, and each write runs ``trace_parse_run_command`` with the
kind's ``create_or_delete_trace_*probe`` (``-:`` removes; a line of another syntax is
EINVAL).  ``synthetic_events`` lists ``NAME\\tFIELDS`` lines and runs
create_or_delete_synth_event per line.  ``*_profile`` are read-only seq files.
"""

from __future__ import annotations

from ..kernel.core import Kernel
from .dynevent_files import dyn_events_file
from .files import seq_file
from .node import Node

TRACE_MODE_READ = 0o440


def probe_top_files(kernel: Kernel) -> dict[str, Node]:
    """The probe files of the top-level tracing directory."""
    dyn = kernel.dynevent
    kp, up, synth = kernel.kprobe_events, kernel.uprobe_events, kernel.synth_events
    return {
        "kprobe_events": dyn_events_file(dyn, kp, kp.run_command),
        "kprobe_profile": seq_file(TRACE_MODE_READ, kp.profile_text),
        "uprobe_events": dyn_events_file(dyn, up, up.run_command),
        "uprobe_profile": seq_file(TRACE_MODE_READ, up.profile_text),
        "synthetic_events": dyn_events_file(dyn, synth, synth.run_command, synth.file_text),
    }


__all__ = ["probe_top_files"]
