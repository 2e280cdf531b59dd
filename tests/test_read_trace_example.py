"""examples/read_trace.py against a mount: enable sched_switch, read trace_pipe with a deadline."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "read_trace.py"


def load():
    spec = importlib.util.spec_from_file_location("read_trace", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.mount
def test_read_trace_example(mount_server) -> None:
    """Unseeded: a seeded machine moves only when requests arrive (its clock is virtual),
    and a reader blocked in poll(2) makes none; an idle real-time machine still switches
    (its kernel threads, the reader itself)."""
    mounted = mount_server(seed=None).path
    rt = load()
    t0 = time.monotonic()
    lines = rt.trace_event(str(mounted), "sched/sched_switch", timeout=3.0, max_lines=3)
    assert len(lines) == 3, lines
    assert all(" sched_switch: prev_comm=" in line for line in lines), lines
    assert time.monotonic() - t0 < 3.5
    assert (mounted / "events/sched/sched_switch/enable").read_text() == "0\n"
    # an empty pipe: the read ends at the deadline instead of blocking
    t0 = time.monotonic()
    (mounted / "tracing_on").write_text("0")
    (mounted / "trace").write_text("")
    assert rt.read_pipe(str(mounted), timeout=0.5) == []
    assert time.monotonic() - t0 < 2.0
