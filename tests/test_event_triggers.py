"""The event_command registry and the generic trigger commands
(trace_events_trigger.py, kernel/trace/trace_events_trigger.c): registration order,
the COUNT parse (kstrtoul base 0), enable_hist/disable_hist pausing the target's
histograms, and an eprobe-style trigger that carries its own function."""

from __future__ import annotations

import errno
from types import SimpleNamespace

import pytest

from tracefs_sim.kernel import Kernel
from tracefs_sim.kernel.trace_events_trigger import EventCommand, TriggerData
from tracefs_sim.tracefs import build_tree
from tracefs_sim.tracefs.files import read_file, write_errno

FORK = "events/sched/sched_process_fork/trigger"
KMALLOC = "events/kmem/kmalloc"


@pytest.fixture
def env(kernel: Kernel) -> SimpleNamespace:
    """The kernel, its tree, and ``echo``/``cat`` on it (``>>`` unless told)."""
    root = build_tree(kernel)

    def kmalloc(n: int = 1) -> None:
        for _ in range(n):
            kernel.workload.emit("kmalloc", 0x1000, 0xFFFF888000001000, 8, 8, 0xCC0, -1)
    return SimpleNamespace(
        k=kernel, kmalloc=kmalloc,
        write=lambda path, text, append=True: write_errno(root, path, text, append),
        read=lambda path: read_file(root, path).decode())


def test_commands_in_register_trigger_cmds_order(env) -> None:
    # this file's six, then trace_events_hist.py's enable_hist, disable_hist, hist
    assert env.read(FORK) == ("# Available triggers:\n# traceon traceoff snapshot stacktrace "
                              "enable_event disable_event enable_hist disable_hist hist\n")
    triggers = env.k.events.triggers
    with pytest.raises(ValueError):
        triggers.register_event_command(EventCommand(triggers, "hist", 16))
    assert env.write(FORK, "nosuch") == errno.EINVAL


@pytest.mark.parametrize("param,shown", [
    ("traceoff:5", "traceoff:count=5"),
    ("traceoff:0x10", "traceoff:count=16"),
    ("traceoff:010", "traceoff:count=8"),           # kstrtoul(number, 0): octal
    ("traceoff: 3 if parent_pid > 0", "traceoff:count=3 if parent_pid > 0"),
    ("traceoff", "traceoff:unlimited"),
])
def test_count_is_kstrtoul_base_0(env, param, shown) -> None:
    assert env.write(FORK, param) == 0
    assert env.read(FORK) == shown + "\n"


# a COUNT that is not a digit first is taken for the filter: "+3" is no "if"
@pytest.mark.parametrize("param", ["traceoff:1_0", "traceoff:5x", "traceoff:-1", "traceoff:08",
                                   "traceoff:+3"])
def test_bad_counts(env, param) -> None:
    assert env.write(FORK, param) == errno.EINVAL
    assert env.read(FORK).startswith("# Available triggers:")


def test_disable_hist_pauses_and_enable_hist_continues(env) -> None:
    assert env.write(f"{KMALLOC}/trigger", "hist:keys=bytes_req") == 0
    assert env.write("events/kmem/kfree/trigger", "disable_hist:kmem:kmalloc:1") == 0
    assert env.write("events/kmem/mm_page_alloc/trigger", "enable_hist:kmem:kmalloc") == 0
    env.kmalloc(2)
    env.k.workload.emit("kfree", 0x1000, 0xFFFF888000001000)
    assert env.read("events/kmem/kfree/trigger") == "disable_hist:kmem:kmalloc:count=0\n"
    assert env.read(f"{KMALLOC}/trigger").endswith(" [paused]\n")
    env.kmalloc(3)                                   # paused: not counted
    assert "Hits: 2\n" in env.read(f"{KMALLOC}/hist")
    env.k.workload.emit("mm_page_alloc", 0x1000, 0, 0xCC0, 0)
    assert env.read(f"{KMALLOC}/trigger").endswith(" [active]\n")
    env.kmalloc(1)
    assert "Hits: 3\n" in env.read(f"{KMALLOC}/hist")


def test_probe_trigger_gets_records_after_commit_and_prints_nothing(env) -> None:
    """An eprobe's trigger: no command, its ``probe`` runs in call_post with the
    record, and the trigger file does not show it."""
    seen: list[bytes] = []
    file = env.k.events.file(env.k.trace.global_trace, env.k.events.find_event("kmem", "kmalloc"))
    assert file is not None
    data = TriggerData("eprobe", probe=lambda rec: seen.append(bytes(rec)))
    env.k.events.triggers.attach_probe(file, data)
    assert env.read(f"{KMALLOC}/trigger").startswith("# Available triggers:")
    env.kmalloc(2)
    assert len(seen) == 2 and all(len(r) > 8 for r in seen)
    assert env.k.events.triggers.detach_probe(file, data)
    assert not env.k.events.triggers.detach_probe(file, data)
    env.kmalloc(1)
    assert len(seen) == 2
