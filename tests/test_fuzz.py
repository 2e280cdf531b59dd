"""Fuzz the control files: the short run.  The long run is ``scripts/fuzz``.

Seeded mutated commands (tracefs_sim/fuzz.py) go through the tree layer for the bulk and
through a real mount for a sample.  Any exception other than KernelError, a hang, or a
rejected write that changed a snapshotted control file (minus the files the kernel itself
changes on a failed write, see ``fuzz._excluded``) fails the test with the command.
The two runs are time-boxed: they sit in the slow lane.
"""

from __future__ import annotations

import errno
import time
from pathlib import Path

import pytest

from tracefs_sim import fuzz as fe
from tracefs_sim.kernel import Kernel
from tracefs_sim.tracefs import build_tree
from tracefs_sim.tracefs.node import Dir

TREE_SECONDS = 28.0
MOUNT_SECONDS = 14.0
# where scripts/ftracetest extracts the kernel's ftrace selftests: their literal commands
# widen the corpus of a checkout that has run it
SELFTESTS = Path(__file__).resolve().parents[1] / ".work" / "ftracetest" / "ftrace" / "test.d"


def _tree(seed: int) -> fe.TreeDriver:
    return fe.TreeDriver(build_tree(Kernel(nr_cpus=2, seed=seed)))


def _report(fuzzer: fe.Fuzzer) -> str:
    lines = [f"{len(fuzzer.findings)} findings after {fuzzer.stats.commands} commands:"]
    for (kind, path, detail), items in sorted(fe.dedupe(fuzzer.findings).items()):
        lines.append(f"{len(items)}x {kind} {path}: {detail}\n  {items[0]}")
    return "\n".join(lines)


@pytest.mark.slow
def test_fuzz_tree_layer():
    commands = fe.corpus(SELFTESTS if SELFTESTS.is_dir() else None)
    deadline = time.monotonic() + TREE_SECONDS
    fuzzer = fe.Fuzzer(_tree(7), seed=7, twin=_tree(7), commands=commands)
    for _ in fuzzer.run(4000, deadline):
        pass
    assert fuzzer.stats.commands >= 200
    assert fuzzer.stats.rejected > 0 and fuzzer.stats.accepted > 0
    assert not fuzzer.findings, _report(fuzzer)


@pytest.mark.slow
def test_fuzz_through_the_mount(mount_server):
    server, twin = mount_server(), mount_server()
    fuzzer = fe.Fuzzer(fe.MountDriver(server.path), seed=11, twin=fe.MountDriver(twin.path),
                       reset_every=25, normalize_counts=True)
    fe.run_mount_commands(fuzzer, server.proc, 400, time.monotonic() + MOUNT_SECONDS)
    assert fuzzer.stats.commands >= 30
    assert server.mounted() and server.proc.poll() is None
    assert not fuzzer.findings, _report(fuzzer)


class _PlantedBugs(fe.TreeDriver):
    """A driver whose writes misbehave on purpose: the checker must notice each way."""

    def __init__(self, root: Dir, how: str) -> None:
        super().__init__(root)
        self.how = how

    def write(self, path: str, chunks: list[bytes], trunc: bool) -> fe.WriteLog:
        if self.how == "state":  # change current_tracer, then reject the write
            super().write("current_tracer", [b"function\n"], True)
            return fe.WriteLog(err=errno.EINVAL, failed_data=chunks[0])
        if self.how == "crash":
            raise IndexError("planted")
        if self.how == "return":  # a word file taking the whole buffer at once
            log = super().write(path, chunks, trunc)
            log.calls = [(b"".join(chunks), len(b"".join(chunks)))]
            return log
        log = super().write(path, chunks, trunc)
        if self.how == "keep" and log.err:  # words after the failing one applied too
            super().write(path, [chunks[0].split(b"\n")[2] + b"\n"], False)
        return log


@pytest.mark.parametrize("how,kind,cmd", [
    ("state", "state-change", ("trace_clock", b"bogus\n")),
    ("crash", "crash", ("trace_clock", b"bogus\n")),
    ("return", "bad-return", ("set_event", b"sched:sched_switch sched:sched_wakeup\n")),
    ("keep", "state-change", ("set_event", b"sched:sched_switch\n!sched:nosuch\nsched:sched_wakeup\n")),
])
def test_the_checker_catches_planted_bugs(kernel, how, kind, cmd):
    fuzzer = fe.Fuzzer(_PlantedBugs(build_tree(kernel), how), seed=1, twin=_tree(1))
    fuzzer.run_one(fe.Command("write", cmd[0], [cmd[1]], trunc=True))
    assert [f.kind for f in fuzzer.findings] == [kind]
    if how == "state":
        assert "current_tracer" in fuzzer.findings[0].detail


@pytest.mark.parametrize("path,data", [
    ("set_event", b"sched:sched_switch\nsched:nosuch\n"),
    ("set_ftrace_filter", b"vfs_read nosuch_fn_x\n"),
    ("dynamic_events", b"f:a vfs_read\nbogus\n"),
    ("events/sched/sched_switch/filter", b"prev_pid =="),
    ("set_event_pid", b"1 2 abc"),
])
def test_what_6_12_keeps_of_a_failing_write_is_no_finding(kernel, path, data):
    """The words before the failing one (one per write(2)), the lines before a bad line,
    a failed filter: the twin keeps the same, so the checker is quiet."""
    fuzzer = fe.Fuzzer(fe.TreeDriver(build_tree(kernel)), seed=1, twin=_tree(1))
    fuzzer.run_one(fe.Command("write", path, [data], trunc=True))
    assert fuzzer.stats.rejected == 1
    assert not fuzzer.findings, _report(fuzzer)


def test_a_word_split_over_writes_fails_whole(kernel):
    """``schedule`` then ``:\n``: the second write finishes the word ``schedule:``, which
    fails; nothing of it stays for the release to apply."""
    fuzzer = fe.Fuzzer(fe.TreeDriver(build_tree(kernel)), seed=1, twin=_tree(1))
    fuzzer.run_one(fe.Command("write", "set_ftrace_filter", [b"vfs_read schedule", b":\n"]))
    assert fuzzer.driver.read("set_ftrace_filter") == b"vfs_read\n"
    assert fuzzer.stats.rejected == 1
    assert not fuzzer.findings, _report(fuzzer)


def test_generator_is_seeded_and_covers_the_mutation_kinds():
    a, b = fe.Generator(5), fe.Generator(5)
    cmds = [a.next() for _ in range(3000)]
    assert [repr(c) for c in cmds[:200]] == [repr(b.next()) for _ in range(200)]
    kinds = {c.kind for c in cmds}
    assert {"valid", "broken-token", "binary", "huge", "overlong-line", "multi-line",
            "mkdir", "rmdir"} <= kinds
    assert any(len(c.chunks) > 8 for c in cmds)  # many small writes on one fd
    assert any(c.path.startswith("instances/") and c.op == "write" for c in cmds)
    targets = {c.path for c in cmds}
    for t in ("dynamic_events", "kprobe_events", "set_ftrace_filter", "set_ftrace_notrace",
              "set_graph_function", "set_event", "events/sched/sched_switch/filter",
              "events/sched/sched_switch/trigger", "trace_options", "current_tracer",
              "buffer_size_kb", "trace_clock", "options/hex"):
        assert t in targets, t


def test_an_event_a_removed_trigger_switched_is_activity_not_state():
    """When an enable_event/disable_event trigger goes, its target stays as its last
    firing left it, which depends on when the workload fired the trigger's event: the
    mount fuzzer's twin comparison leaves such an event (and its set_event line) out
    until the next reset, as it does an event in soft mode."""
    fuzzer = fe.Fuzzer(_tree(7), seed=7, twin=_tree(7), reset_every=1000)
    fuzzer.run_one(fe.Command("write", "events/sched/sched_switch/trigger",
                              [b"enable_event:sched:sched_wakeup\n"]))
    # a rejected one switches nothing
    fuzzer.run_one(fe.Command("write", "events/sched/sched_switch/trigger",
                              [b"enable_event:sched:sched_waking:bogus\n"]))
    assert fuzzer.switched == {("", "sched", "sched_wakeup")}
    snap = {"set_event": b"sched:sched_switch\nsched:sched_wakeup\n",
            "events/sched/sched_wakeup/enable": b"1\n", "events/sched/sched_switch/enable": b"1\n",
            "instances/a/events/sched/sched_wakeup/enable": b"1\n"}
    fe._normalize_soft_mode(snap, fuzzer.switched)
    assert snap == {"set_event": b"sched:sched_switch\n", "events/sched/sched_wakeup/enable": b"?*\n",
                    "events/sched/sched_switch/enable": b"1\n",
                    "instances/a/events/sched/sched_wakeup/enable": b"1\n"}
    fuzzer.reset()
    assert fuzzer.switched == set()
