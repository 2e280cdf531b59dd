"""Every file of the 6.12 tracing directory exists with its mode and does something.

The listings are those of ``ls -la`` on the reference kernel (golden transcript
05-ls.txt: the top level, ``per_cpu/cpu0`` and a new ``instances/foo``).  A file is
*inert* when it only reads empty and refuses or ignores writes: the one kind allowed is a
``NotSimulatedFile`` named in ``trace_files.NOT_SIMULATED`` with its reason.  Every other
file must read something at boot or after one action that gives it content.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path

import pytest

from tracefs_sim.kernel import Kernel
from tracefs_sim.kernel.errors import WOULD_BLOCK, KernelError
from tracefs_sim.tracefs import build_tree, trace_files
from tracefs_sim.tracefs.files import read_file, write_errno, write_file
from tracefs_sim.tracefs.node import READ_ONLY, WRITE_APPEND, Dir, File, Node, walk
from tracefs_sim.tracefs.trace_files import NOT_SIMULATED, NotSimulatedFile, TreeBuildError

GOLDEN = Path(__file__).resolve().parents[2] / "shared" / "reference" / "golden" / "05-ls.txt"


def _listing(text: str) -> dict[str, str]:
    """``ls -la`` mode column and name, one entry a line."""
    return dict(reversed(line.split()) for line in text.strip().splitlines())


TOP_LEVEL = _listing("""
-r--r----- README
-r--r----- available_events
-r--r----- available_filter_functions
-r--r----- available_filter_functions_addrs
-r--r----- available_tracers
-rw-r----- buffer_percent
-rw-r----- buffer_size_kb
-rw-r----- buffer_subbuf_size_kb
-r--r----- buffer_total_size_kb
-rw-r----- current_tracer
-r--r----- dyn_ftrace_total_info
-rw-r----- dynamic_events
-r--r----- enabled_functions
-rw-r----- error_log
drwxr-xr-x events
--w------- free_buffer
drwxr-x--- instances
-rw-r----- kprobe_events
-r--r----- kprobe_profile
-rw-r----- max_graph_depth
drwxr-x--- options
drwxr-x--- per_cpu
-r--r----- printk_formats
-r--r----- saved_cmdlines
-rw-r----- saved_cmdlines_size
-r--r----- saved_tgids
-rw-r----- set_event
-rw-r----- set_event_notrace_pid
-rw-r----- set_event_pid
-rw-r----- set_ftrace_filter
-rw-r----- set_ftrace_notrace
-rw-r----- set_ftrace_notrace_pid
-rw-r----- set_ftrace_pid
-rw-r----- set_graph_function
-rw-r----- set_graph_notrace
-rw-r----- snapshot
-rw-r----- stack_max_size
-r--r----- stack_trace
-rw-r----- stack_trace_filter
-rw-r----- synthetic_events
-r--r----- timestamp_mode
-r--r----- touched_functions
-rw-r----- trace
-rw-r----- trace_clock
--w--w---- trace_marker
--w--w---- trace_marker_raw
-rw-r----- trace_options
-r--r----- trace_pipe
-rw-r----- tracing_cpumask
-rw-r----- tracing_max_latency
-rw-r----- tracing_on
-rw-r----- tracing_thresh
-rw-r----- uprobe_events
-r--r----- uprobe_profile
""")

PER_CPU_CPU0 = _listing("""
-rw-r----- buffer_size_kb
-rw-r----- snapshot
-r--r----- snapshot_raw
-r--r----- stats
-rw-r----- trace
-r--r----- trace_pipe
-r--r----- trace_pipe_raw
""")

# an instance has init_tracer_tracefs()'s files, with the modes of the top level
TOP_LEVEL_ONLY = {
    "README", "available_events", "available_filter_functions", "available_filter_functions_addrs",
    "dyn_ftrace_total_info", "dynamic_events", "enabled_functions", "instances", "kprobe_events",
    "kprobe_profile", "max_graph_depth", "printk_formats", "saved_cmdlines", "saved_cmdlines_size",
    "saved_tgids", "set_graph_function", "set_graph_notrace", "stack_max_size", "stack_trace",
    "stack_trace_filter", "synthetic_events", "touched_functions", "tracing_thresh",
    "uprobe_events", "uprobe_profile",
}
INSTANCE = {name: mode for name, mode in TOP_LEVEL.items() if name not in TOP_LEVEL_ONLY}


def _mode_string(node: Node) -> str:
    bits = "".join(c if node.mode & (1 << (8 - i)) else "-" for i, c in enumerate("rwxrwxrwx"))
    return ("d" if node.is_dir else "-") + bits


@pytest.fixture
def kt() -> tuple[Kernel, Dir]:
    k = Kernel(nr_cpus=2, seed=1)
    return k, build_tree(k)


def _as_task(k: Kernel, action: Callable[[], object], pid: int = 1234) -> None:
    k.syscall_enter(pid, "bash", 0)
    try:
        action()
    finally:
        k.syscall_exit()


def _assert_listing(d: Node, expected: dict[str, str], where: str) -> None:
    assert isinstance(d, Dir)
    got = {name: _mode_string(node) for name, node in d.entries()}
    assert got == expected, where


@pytest.mark.skipif(not GOLDEN.is_file(), reason="../shared not present")
def test_listings_are_the_golden_transcript() -> None:
    """The tables above are 05-ls.txt's ``ls -la`` of ., per_cpu/cpu0 and instances/foo."""
    sections: dict[str, dict[str, str]] = {}
    cur: dict[str, str] | None = None
    for line in GOLDEN.read_text().splitlines():
        if line.startswith("$ "):
            cur = sections.setdefault(line[2:], {}) if line.startswith("$ ls -la") else None
        elif cur is not None and not line.startswith("total"):
            f = line.split()
            if f[-1] not in (".", ".."):
                cur[f[-1]] = f[0]
    assert sections["ls -la"] == TOP_LEVEL
    assert sections["ls -la per_cpu/cpu0/"] == PER_CPU_CPU0
    assert sections["ls -la instances/foo/"] == INSTANCE


def test_every_file_of_the_6_12_tree_exists_with_its_mode(kt) -> None:
    k, root = kt
    _assert_listing(root, TOP_LEVEL, "top level")
    _assert_listing(walk(root, "per_cpu/cpu0"), PER_CPU_CPU0, "per_cpu/cpu0")
    _assert_listing(root.lookup("instances").mkdir("foo"), INSTANCE, "instances/foo")
    _assert_listing(walk(root, "instances/foo/per_cpu/cpu0"), PER_CPU_CPU0, "instances/foo/per_cpu/cpu0")


def test_only_the_named_files_are_not_simulated(kt) -> None:
    k, root = kt
    root.lookup("instances").mkdir("foo")

    def placeholders(d: Dir, prefix: str) -> set[str]:
        found = set()
        for name, node in d.entries():
            if isinstance(node, NotSimulatedFile):
                found.add(prefix + name)
            elif type(node) is Dir:
                found |= placeholders(node, f"{prefix}{name}/")
        return found

    assert placeholders(root, "") == set(NOT_SIMULATED) <= set(TOP_LEVEL)
    for name, spec in NOT_SIMULATED.items():
        node = root.lookup(name)
        assert isinstance(node, NotSimulatedFile) and node.mode == spec.mode and node.reason
        assert read_file(root, name) == b""
        assert write_errno(root, name, "1\n") == errno.EINVAL


# What gives each file that reads empty at boot some content (run in this order).
def _fill(k: Kernel, root: Dir) -> None:
    write_file(root, "dynamic_events", "f:myprobe vfs_read\n", append=True)      # enabled/touched_functions
    write_file(root, "kprobe_events", "p:kp vfs_write\n", append=True)           # kprobe_profile
    write_file(root, "uprobe_events", "p:up /bin/sh:0x1000\n", append=True)      # uprobe_profile
    write_file(root, "synthetic_events", "mysynth u64 lat\n", append=True)
    write_file(root, "set_event", "sched:sched_switch\n")                        # saved_cmdlines
    write_file(root, "set_event_pid", "1\n")
    write_file(root, "set_event_notrace_pid", "2\n")
    write_file(root, "options/record-tgid", "1\n")                                # saved_tgids
    assert write_errno(root, "kprobe_events", "p:bad no_such_function\n", append=True) == errno.EINVAL
    _as_task(k, lambda: write_file(root, "trace_marker", "hello\n"))


EMPTY_AT_BOOT = {
    "dynamic_events", "enabled_functions", "error_log", "kprobe_events", "kprobe_profile",
    "saved_cmdlines", "saved_tgids", "set_event", "set_event_notrace_pid", "set_event_pid",
    "synthetic_events", "touched_functions", "uprobe_events", "uprobe_profile",
}
NOT_READABLE = {"free_buffer", "trace_marker", "trace_marker_raw"}   # write-only: below
BLOCKING = {"trace_pipe"}                                             # below


def _readable_files() -> list[str]:
    return [name for name, mode in TOP_LEVEL.items()
            if mode[0] == "-" and name not in set(NOT_SIMULATED) | NOT_READABLE | BLOCKING]


def test_every_readable_file_has_content_at_boot_or_after_use(kt) -> None:
    """An inert stand-in for a real file (reads empty whatever happens) fails here."""
    k, root = kt
    empty = {name for name in _readable_files() if read_file(root, name) == b""}
    assert empty == EMPTY_AT_BOOT
    _fill(k, root)
    still_empty = {name for name in EMPTY_AT_BOOT if read_file(root, name) == b""}
    assert still_empty == set()


def test_write_only_and_blocking_files_act(kt) -> None:
    k, root = kt
    pipe = walk(root, "trace_pipe")
    assert isinstance(pipe, File)
    reader = pipe.open(READ_ONLY)
    try:
        assert reader.read(0, 4096) is WOULD_BLOCK
        _as_task(k, lambda: write_file(root, "trace_marker", "via marker\n"))
        _as_task(k, lambda: write_file(root, "trace_marker_raw", b"\x01\x00\x00\x00ab"))
        text = b""
        while True:
            data = reader.read(len(text), 4096)
            if data is WOULD_BLOCK or not data:
                break
            text += data
    finally:
        reader.release()
    assert b"tracing_mark_write: via marker\n" in text
    assert b"# 1 buf: 61 62" in text
    write_file(root, "buffer_size_kb", "100")
    assert read_file(root, "buffer_size_kb") == b"103\n"
    free = walk(root, "free_buffer")
    assert isinstance(free, File)
    f = free.open(WRITE_APPEND)
    f.write(0, b"1")
    f.release()                      # the release frees the buffer
    assert read_file(root, "buffer_size_kb") == b"7\n"


def test_directories_have_their_children(kt) -> None:
    k, root = kt
    assert walk(root, "events/sched/sched_switch/enable")
    assert walk(root, "options/print-parent")
    assert {name for name, _ in walk(root, "per_cpu").entries()} == {"cpu0", "cpu1"}
    instances = walk(root, "instances")
    assert isinstance(instances, Dir)
    instances.mkdir("bar")
    assert walk(root, "instances/bar/trace")


def test_a_builder_missing_a_file_fails_the_build(monkeypatch) -> None:
    """A builder that stops making one of its files is a bug caught at boot, not a
    silently absent (or inert) file."""
    real = trace_files.probe_top_files

    def without_kprobe_events(kernel: Kernel) -> dict[str, Node]:
        files = real(kernel)
        del files["kprobe_events"]
        return files

    monkeypatch.setattr(trace_files, "probe_top_files", without_kprobe_events)
    with pytest.raises(TreeBuildError, match="kprobe_events"):
        build_tree(Kernel(nr_cpus=1, seed=1))


def test_not_simulated_file_refuses_writes_like_a_read_only_seq_file(kt) -> None:
    k, root = kt
    node = root.lookup("printk_formats")
    assert isinstance(node, File)
    f = node.open(READ_ONLY)
    try:
        with pytest.raises(KernelError) as e:
            f.write(0, b"x")
        assert e.value.errno == errno.EINVAL
    finally:
        f.release()
