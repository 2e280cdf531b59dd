"""The function tracer's func-no-repeats option: TRACE_FUNC_REPEATS entries."""

from __future__ import annotations

import re

from tracefs_sim.kernel import Kernel
from tracefs_sim.tracefs import build_tree
from tracefs_sim.tracefs.files import read_file, write_file


def test_repeats_are_counted_then_flushed_by_the_next_function() -> None:
    k = Kernel(nr_cpus=1, seed=1)
    k.workload.enabled = False
    root = build_tree(k)
    write_file(root, "set_ftrace_filter", b"_raw_spin_lock\nvfs_read")
    write_file(root, "current_tracer", b"function")
    write_file(root, "options/func-no-repeats", b"1")
    for _ in range(5):
        k.workload.sites.call("_raw_spin_lock", "schedule")
    k.syscall_enter(300, "cat", 0, op="read")
    k.syscall_exit()
    lines = [x for x in read_file(root, "trace").decode().splitlines() if not x.startswith("#")]
    assert len(lines) == 3
    assert lines[0].endswith(": _raw_spin_lock <-schedule")
    m = re.search(r": _raw_spin_lock <-schedule \(repeats: 4, last_ts: +(\d+\.\d{6})\)$", lines[1])
    assert m, lines[1]
    ts = lambda line: float(line.split(":")[0].split()[-1])  # noqa: E731
    assert ts(lines[0]) <= float(m[1]) <= ts(lines[1])
    assert lines[2].endswith(": vfs_read <-ksys_read")
    write_file(root, "options/raw", b"1")
    raw = read_file(root, "trace").decode().splitlines()
    assert re.match(r"^300 0 \d+ \d+ \d+ 4 \d+$", [x for x in raw if x.count(" ") == 6][0])
    # without the option every call is a record
    write_file(root, "options/raw", b"0")
    write_file(root, "options/func-no-repeats", b"0")
    write_file(root, "trace", b"")
    for _ in range(3):
        k.workload.sites.call("_raw_spin_lock", "schedule")
    lines = [x for x in read_file(root, "trace").decode().splitlines() if not x.startswith("#")]
    assert len(lines) == 3 and "repeats" not in "".join(lines)


def _plain_and_lines(k: Kernel, annotate: bool) -> tuple[str, str]:
    """The trace text of the top buffer by the fast renderer (over the records copied
    out) and by print_trace_line() (over the records in their pages)."""
    from tracefs_sim.kernel.trace_output import (
        TraceIter,
        _render_lines,
        _render_plain,
        merged_copies,
        merged_records,
    )

    tr = k.trace.global_trace
    cpus = list(range(k.nr_cpus))
    plain: list[bytes] = []
    _render_plain(k.trace.output, TraceIter(tr), merged_copies(tr.buffer, cpus), plain, annotate)
    lines = list(_render_lines(k.trace.output, TraceIter(tr), merged_records(tr.buffer, cpus), annotate))
    return b"".join(plain).decode(), "".join(map(str, lines))


def test_fast_trace_rendering_matches_print_trace_line() -> None:
    """The trace file's common-case renderer (cached context columns and function text,
    times formatted per millisecond) prints what print_trace_line() prints, for function
    records among other entry types, on every CPU, with the overrun annotation."""
    k = Kernel(nr_cpus=2, seed=3)
    root = build_tree(k)
    write_file(root, "buffer_size_kb", b"8")
    write_file(root, "current_tracer", b"function")
    write_file(root, "set_event", b"sched:sched_switch\nsyscalls:sys_enter_read")
    for i in range(400):
        k.syscall_enter(300 + i % 3, "cat", i % 2, op="read", name="trace", count=4096)
        k.syscall_exit(4096)
        if i >= 390:    # late enough not to be overwritten
            write_file(root, "trace_marker", f"mark {i}\n")
    write_file(root, "tracing_on", b"0")
    stats = [read_file(root, f"per_cpu/cpu{c}/stats").decode() for c in (0, 1)]
    assert all(not re.search(r"^overrun: 0$", s, re.M) for s in stats)  # both CPUs lost pages
    plain, lines = _plain_and_lines(k, annotate=True)
    assert plain == lines
    assert plain.count("buffer started ####\n") == 1       # the CPU that does not come first
    assert " vfs_read <-ksys_read\n" in plain and "sched_switch: prev_comm=" in plain
    assert "tracing_mark_write: mark " in plain
    text = read_file(root, "trace").decode()
    assert text.endswith(plain) and "##### CPU " in text
    write_file(root, "options/sym-offset", b"1")
    write_file(root, "options/record-tgid", b"1")
    plain, lines = _plain_and_lines(k, annotate=False)
    assert plain == lines and "vfs_read+0x" in plain


def test_fast_trace_rendering_of_a_single_cpu_s_records() -> None:
    """Records on one CPU only are rendered straight from what was copied out (no merge):
    the same text as print_trace_line(), with that CPU's number."""
    k = Kernel(nr_cpus=2, seed=3)
    root = build_tree(k)
    k.workload.enabled = False
    write_file(root, "current_tracer", b"function")
    write_file(root, "set_event", b"syscalls:sys_enter_read")
    for _ in range(50):
        k.syscall_enter(300, "cat", 1, op="read", name="trace", count=4096)
        k.syscall_exit(4096)
    write_file(root, "tracing_on", b"0")
    assert k.trace.global_trace.buffer.entries(0) == 0
    plain, lines = _plain_and_lines(k, annotate=False)
    assert plain == lines and " vfs_read <-ksys_read\n" in plain
    assert "[001]" in plain and "[000]" not in plain
    assert read_file(root, "trace").decode().endswith(plain)


def test_function_tracer_with_tracing_off_lets_the_machine_idle() -> None:
    """With tracing off the function tracer's callbacks can record nothing: the simulated
    machine skips the calls (Workload.quiet) unless something else is attached or the
    callback keeps state (func-no-repeats)."""
    k = Kernel(nr_cpus=1, seed=1)
    root = build_tree(k)
    wl = k.workload
    assert wl.quiet()
    write_file(root, "current_tracer", b"function")
    assert not wl.quiet()
    write_file(root, "tracing_on", b"0")
    assert wl.quiet()
    write_file(root, "options/func-no-repeats", b"1")
    assert not wl.quiet()
    write_file(root, "options/func-no-repeats", b"0")
    assert wl.quiet()
    write_file(root, "set_ftrace_filter", b"vfs_read:traceon")   # another ops: it acts
    assert not wl.quiet()
    write_file(root, "set_ftrace_filter", b"!vfs_read:traceon", append=True)
    assert wl.quiet()
    write_file(root, "tracing_on", b"1")
    assert not wl.quiet()
    k.syscall_enter(300, "cat", 0, op="read", name="trace", count=4096)
    k.syscall_exit(4096)
    assert " vfs_read <-ksys_read" in read_file(root, "trace").decode()
