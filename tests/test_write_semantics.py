"""What ONE write(2) returns and leaves behind (docs/write-semantics.md): the
trace_get_user() files take one word per call, the others parse the whole buffer.  The
tree tests call the open file's write once, as ``os.write`` does; the mount tests call
``os.write`` through FUSE."""

from __future__ import annotations

import errno
import itertools
import os
from pathlib import Path

import pytest

from tracefs_sim.kernel import Kernel
from tracefs_sim.kernel.errors import KernelError
from tracefs_sim.kernel.kconfig import IS_ENABLED
from tracefs_sim.tracefs import build_tree
from tracefs_sim.tracefs.files import read_file, write_errno, write_file, write_once
from tracefs_sim.tracefs.node import WRITE_TRUNC, Dir, walk

ALL = "#### all functions enabled ####\n"


@pytest.fixture
def root() -> Dir:
    return build_tree(Kernel(nr_cpus=2, seed=1))


def _once(root: Dir, path: str, data: bytes, append: bool = False) -> int | str:
    """One write(2): its count, or the errno name of its failure."""
    try:
        return write_once(root, path, data, append=append)
    except KernelError as e:
        return errno.errorcode[e.errno]


def cat(root: Dir, path: str) -> str:
    return read_file(root, path).decode()


# ---------------------------------------------------------------- one word per write(2)
def test_set_event_takes_one_word_per_write(root) -> None:
    assert _once(root, "set_event", b"sched:sched_switch\nsched:nosuch\n") == 19
    assert cat(root, "set_event") == "sched:sched_switch\n"
    assert _once(root, "set_event", b"sched:sched_wakeup sched:nosuch", append=True) == 19
    assert cat(root, "set_event") == "sched:sched_switch\nsched:sched_wakeup\n"
    # the caller's next write(2) goes on with the rest: its word fails that write
    assert _once(root, "set_event", b"sched:nosuch", append=True) == "EINVAL"
    assert cat(root, "set_event") == "sched:sched_switch\nsched:sched_wakeup\n"
    # a fresh parser each call: the rest of a split word is a word of its own
    assert _once(root, "set_event", b"sched:sched_swi") == "EINVAL"
    assert cat(root, "set_event") == ""             # O_TRUNC cleared them at open
    assert _once(root, "set_event", b"sched:sched_switch") == 18
    # blanks and a NUL where a word would start are consumed without a word
    assert _once(root, "set_event", b"  \n\t", append=True) == 4
    assert _once(root, "set_event", b"\0sched:sched_switch", append=True) == 1
    # echo (stdio) writes the rest after each short write
    write_file(root, "set_event", "sched:sched_wakeup\0sched:sched_switch")
    assert cat(root, "set_event") == "sched:sched_switch\nsched:sched_wakeup\n"


@pytest.mark.parametrize("path", ["set_ftrace_filter", "set_graph_function", "stack_trace_filter",
                                  "set_ftrace_notrace", "set_graph_notrace"])
def test_filter_files_take_one_word_per_write(root, path) -> None:
    assert _once(root, path, b"vfs_read nosuch_fn_x") == 9
    assert cat(root, path) == "vfs_read\n"
    # the rest, written again, fails alone (a word with no blank after it waits for
    # the release, which ignores its error); the open's hash is committed at release
    assert _once(root, path, b"nosuch_fn_x\n", append=True) == "EINVAL"
    assert _once(root, path, b"nosuch_fn_x", append=True) == 11
    assert cat(root, path) == "vfs_read\n"


def test_a_word_continues_across_writes_of_one_open(root) -> None:
    f = walk(root, "set_ftrace_filter").open(WRITE_TRUNC)
    assert f.write(0, b"vfs_re") == 6
    assert f.write(6, b"ad nosuch") == 3          # "ad " ends vfs_read
    with pytest.raises(KernelError):
        f.write(9, b"nosuch_fn_x ")
    f.release()
    assert cat(root, "set_ftrace_filter") == "vfs_read\n"


def test_an_overlong_word_fails_the_parser_for_good(root) -> None:
    """trace_parser_fail(): later words of the same open are read but not applied."""
    f = walk(root, "set_ftrace_filter").open(WRITE_TRUNC)
    with pytest.raises(KernelError) as e:
        f.write(0, b"x" * 700 + b" ")
    assert e.value.errno == errno.EINVAL
    assert f.write(0, b"vfs_read\n") == 9
    f.release()
    assert cat(root, "set_ftrace_filter") == ALL


# ---------------------------------------------------------------- whole-buffer parsers
def test_pid_files_are_all_or_nothing(root) -> None:
    for path in ("set_event_pid", "set_ftrace_pid", "set_event_notrace_pid", "set_ftrace_notrace_pid"):
        assert _once(root, path, b"1 2 abc") == "EINVAL"
        assert cat(root, path) in ("", "no pid\n")
        assert _once(root, path, b"1 0x10\n") == 7          # kstrtoul(…, 0)
        assert _once(root, path, b" 3  ", append=True) == 4
        assert _once(root, path, b"1073741824", append=True) == "EPERM"   # past the pid list
        assert _once(root, path, b"\n", append=True) == 1   # the old pids count: kept
        assert cat(root, path) == "1\n3\n16\n"
        assert _once(root, path, b"5 \0 6", append=True) == 3   # stops at the NUL
        assert cat(root, path) == "1\n3\n5\n16\n"


def test_lines_before_a_bad_one_stand(root) -> None:
    assert _once(root, "dynamic_events", b"f:a vfs_read\nbogus\n") == "EINVAL"
    assert cat(root, "dynamic_events") == "f:fprobes/a vfs_read\n"
    assert _once(root, "kprobe_events", b"p:k vfs_write\nbogus\n") == "EINVAL"
    assert cat(root, "kprobe_events") == "p:kprobes/k vfs_write\n"


def test_trigger_and_trace_options_parse_the_whole_buffer(root) -> None:
    t = "events/sched/sched_switch/trigger"
    assert _once(root, t, b"traceoff\nbogus\n") == "EINVAL"
    assert not cat(root, t).startswith("traceoff")
    assert _once(root, "trace_options", b"noprint-parent bogusopt") == "EINVAL"
    assert cat(root, "options/print-parent") == "1\n"
    assert _once(root, "trace_options", b" noprint-parent\xa0\n") == 17    # strstrip
    assert cat(root, "options/print-parent") == "0\n"
    assert _once(root, "trace_options", b"x" * 64) == "EINVAL"


def test_current_tracer_trace_clock_cpumask(root) -> None:
    assert _once(root, "current_tracer", b"  function\n") == 11          # strim both ends
    assert cat(root, "current_tracer") == "function\n"
    assert _once(root, "current_tracer", b"nop" + b" " * 200) == 203      # first 100 bytes
    assert _once(root, "trace_clock", b"global\0junk") == 11
    assert "[global]" in cat(root, "trace_clock")
    assert _once(root, "trace_clock", b"global" + b" " * 60) == "EINVAL"  # char buf[64]
    assert _once(root, "tracing_cpumask", b"1\n") == 2
    assert cat(root, "tracing_cpumask") == "1\n"
    assert _once(root, "tracing_cpumask", b"ff") == "EOVERFLOW"        # 2 CPUs
    assert _once(root, "tracing_cpumask", b"0x3") == "EINVAL"
    assert cat(root, "tracing_cpumask") == "1\n"
    assert _once(root, "tracing_cpumask", b"0,3") == "EOVERFLOW"


def test_instance_trace_options_has_every_flag(root) -> None:
    """tracing_trace_options_show() lists every core flag for an instance too; only its
    options/ directory leaves the top-level ones out."""
    walk(root, "instances").mkdir("foo")
    opts = cat(root, "instances/foo/trace_options").split()
    assert "notrace_printk" in opts or "trace_printk" in opts
    assert "record-cmd" in opts
    assert walk(root, "instances/foo/options").lookup("record-cmd") is None
    assert _once(root, "instances/foo/trace_options", b"norecord-cmd") == 12


def test_tracer_options_belong_to_the_tracer(root) -> None:
    """struct tracer_flags is the tracer's: one value for every trace array."""
    walk(root, "instances").mkdir("foo")
    write_file(root, "instances/foo/options/funcgraph-proc", "1")
    assert cat(root, "options/funcgraph-proc") == "1\n"
    # nop_set_flag refuses test_nop_refuse whichever tracer runs
    write_file(root, "current_tracer", "function")
    assert write_errno(root, "options/test_nop_refuse", "1") == errno.EINVAL


# ---------------------------------------------------------------- triggers and O_TRUNC
def test_trigger_truncation_removes_only_hist_triggers(root) -> None:
    t = "events/sched/sched_switch/trigger"
    write_file(root, t, "traceoff")
    write_file(root, t, "!stacktrace")          # O_TRUNC: no unreg_all for traceoff
    assert cat(root, t) == "traceoff:unlimited\n"
    assert write_errno(root, t, "traceon") == errno.EEXIST        # same trigger type
    write_file(root, t, "hist:keys=prev_pid", append=True)
    write_file(root, t, "enable_hist:sched:sched_wakeup", append=True)
    write_file(root, t, "stacktrace", append=False)               # O_TRUNC: hist go
    assert cat(root, t) == "stacktrace:unlimited\ntraceoff:unlimited\n"
    write_file(root, t, "!traceon", append=True)                  # removes by type
    assert cat(root, t) == "stacktrace:unlimited\n"
    write_file(root, t, "enable_event:sched:sched_wakeup", append=True)
    write_file(root, t, "!disable_event:sched:sched_wakeup", append=True)
    assert cat(root, t) == "stacktrace:unlimited\n"


# ---------------------------------------------------------------- dynamic events O_TRUNC
DEFS = {"eprobe": ("e:ep sched/sched_switch prev=$prev_pid", "events/eprobes/ep/enable"),
        "fprobe": ("f:fp vfs_read", "events/fprobes/fp/enable"),
        "synth": ("s:sy u64 lat", "events/synthetic/sy/enable")}


@pytest.mark.parametrize("order", list(itertools.permutations(DEFS)))
@pytest.mark.parametrize("busy", list(DEFS))
def test_dynamic_events_truncation(order, busy) -> None:
    """dyn_events_release_all(): every event's is_busy() first (a probe: enabled; a
    synthetic event: referenced by a hist), then each is freed in list order.  An
    enabled probe fails the open with EBUSY before anything is freed; an enabled
    synthetic event is not "busy" but refuses to be freed (trace_remove_event_call():
    EBUSY), so the events listed before it are gone, as on 6.12."""
    root = build_tree(Kernel(nr_cpus=2, seed=1))
    for kind in order:
        write_file(root, "dynamic_events", DEFS[kind][0], append=True)
    write_file(root, DEFS[busy][1], "1")
    before = cat(root, "dynamic_events").splitlines()
    with pytest.raises(KernelError) as e:
        walk(root, "dynamic_events").open(WRITE_TRUNC)
    assert e.value.errno == errno.EBUSY
    after = cat(root, "dynamic_events").splitlines()
    if busy != "synth":
        assert after == before
    else:
        assert after == before[order.index("synth"):]


def test_kprobe_events_truncation_is_all_or_nothing(root) -> None:
    write_file(root, "kprobe_events", "p:a vfs_read\np:b vfs_write\n")
    write_file(root, "dynamic_events", "f:fp vfs_read", append=True)
    write_file(root, "events/kprobes/b/enable", "1")
    with pytest.raises(KernelError):
        walk(root, "kprobe_events").open(WRITE_TRUNC)
    assert cat(root, "kprobe_events") == "p:kprobes/a vfs_read\np:kprobes/b vfs_write\n"
    write_file(root, "events/kprobes/b/enable", "0")
    write_file(root, "events/fprobes/fp/enable", "1")     # another kind: not considered
    walk(root, "kprobe_events").open(WRITE_TRUNC).release()
    assert cat(root, "dynamic_events") == "f:fprobes/fp vfs_read\n"


# ---------------------------------------------------------------- config
def test_per_cpu_snapshot_without_allow_swap(root) -> None:
    assert not IS_ENABLED("CONFIG_RING_BUFFER_ALLOW_SWAP")
    text = cat(root, "per_cpu/cpu0/snapshot")
    assert ("# echo 1 > snapshot : Not supported with this kernel.\n"
            "#                     Must use main snapshot file to allocate.\n") in text
    assert _once(root, "per_cpu/cpu0/snapshot", b"1") == "EINVAL"
    assert _once(root, "per_cpu/cpu0/snapshot", b"0") == "EINVAL"
    assert _once(root, "per_cpu/cpu0/snapshot", b"2") == 1
    assert "Snapshot is freed" in cat(root, "snapshot")
    assert _once(root, "snapshot", b"1") == 1
    assert "Snapshot is allocated" in cat(root, "per_cpu/cpu1/snapshot")


# ---------------------------------------------------------------- through the mount
def _os_write(path: Path, data: bytes, flags: int = os.O_TRUNC) -> int | str:
    fd = os.open(path, os.O_WRONLY | flags)
    try:
        return os.write(fd, data)
    except OSError as e:
        return errno.errorcode[e.errno]
    finally:
        os.close(fd)


def test_one_write_through_the_mount(mounted) -> None:
    """A FUSE WRITE answered with fewer bytes is what the caller's write(2) returns: one
    file of each class, written with os.write once."""
    assert _os_write(mounted / "set_event", b"sched:sched_switch\nsched:nosuch\n") == 19
    assert (mounted / "set_event").read_text() == "sched:sched_switch\n"
    assert _os_write(mounted / "set_ftrace_filter", b"vfs_read nosuch_fn_x") == 9
    assert (mounted / "set_ftrace_filter").read_text() == "vfs_read\n"
    assert _os_write(mounted / "set_event_pid", b"1 2 abc") == "EINVAL"
    assert (mounted / "set_event_pid").read_text() == ""
    assert _os_write(mounted / "dynamic_events", b"f:a vfs_read\nbogus line\n") == "EINVAL"
    assert (mounted / "dynamic_events").read_text() == "f:fprobes/a vfs_read\n"
    assert _os_write(mounted / "buffer_percent", b"40\n") == 3
    assert _os_write(mounted / "buffer_percent", b"400\n") == "EINVAL"
    assert (mounted / "buffer_percent").read_text() == "40\n"
    assert _os_write(mounted / "per_cpu/cpu0/snapshot", b"1") == "EINVAL"
