"""kernel/ftrace_cmds.py: what the dump, cpudump, stacktrace and snapshot function
commands do when their function runs (trace_functions.c, trace.c of 6.12)."""

from __future__ import annotations

import errno
import re

import pytest
from test_ftrace_files import Shell

from tracefs_sim.kernel.core import Kernel
from tracefs_sim.tracefs.node import walk

RULE = "---------------------------------"


@pytest.fixture
def sh() -> Shell:
    k = Kernel(nr_cpus=2, seed=1)
    k.workload.enabled = False
    return Shell(k)


def mark(k: Kernel, *writes: tuple[int, str]) -> None:
    """trace_marker writes ``(cpu, text)``, each by task 300+cpu on its CPU."""
    for cpu, text in writes:
        k.syscall_enter(300 + cpu, "cat", cpu)
        k.trace.mark_write(k.trace.global_trace, text.encode())
        k.syscall_exit()


def run(k: Kernel, func: str, cpu: int = 0) -> list[str]:
    """``func``'s call site runs on ``cpu`` (as task 400); returns what that printed
    to the kernel log, without the time stamps."""
    n = len(k.log)
    k.syscall_enter(400, "reader", cpu)
    k.ftrace.func_entry(k.kallsyms.index_of(func), 0)
    k.syscall_exit()
    return [re.sub(r"^\[ *\d+\.\d{6}\] ", "", line) for line in k.log[n:]]


def texts(lines: list[str]) -> list[str]:
    """The trace_marker texts of trace or log lines."""
    return [line.rsplit(": ", 1)[-1] for line in lines]


def entries(sh: Shell, path: str = "trace") -> list[str]:
    return [line for line in sh.cat(path).splitlines() if not line.startswith("#")]


def test_dump_prints_the_global_buffer_in_latency_format_and_consumes_it(sh):
    k = sh.k
    mark(k, (0, "a0"), (1, "b1"), (0, "c0"))
    sh.ok("set_ftrace_filter", "vfs_read:dump")
    assert sh.cat("set_ftrace_filter").endswith("vfs_read:dump:count=1\n")
    lines = run(k, "vfs_read", cpu=1)
    assert lines[0] == "Dumping ftrace buffer:" and lines[1] == RULE and lines[-1] == RULE
    # every CPU, oldest first, trace_print_lat_context() columns
    body = lines[2:-1]
    assert texts(body) == ["a0", "b1", "c0"]
    assert re.fullmatch(r"   <\.\.\.>-300       0\.{5} +\d+us : tracing_mark_write: a0", body[0])
    assert re.fullmatch(r"   <\.\.\.>-301       1\.{5} +\d+us : tracing_mark_write: b1", body[1])
    assert entries(sh) == []  # consumed
    assert sh.cat("tracing_on") == "0\n"  # ftrace_dump() turns tracing off
    assert sh.cat("set_ftrace_filter").endswith("vfs_read:dump:count=0\n")
    # dump runs once: the count is spent
    sh.ok("tracing_on", "1")
    mark(k, (0, "d0"))
    assert run(k, "vfs_read") == []
    assert texts(entries(sh)) == ["d0"]


def test_dump_of_an_empty_buffer(sh):
    k = sh.k
    sh.ok("set_ftrace_filter", "vfs_write:dump")
    assert run(k, "vfs_write") == ["Dumping ftrace buffer:", "   (ftrace buffer empty)"]


def test_cpudump_dumps_the_current_cpu_at_every_hit(sh):
    k = sh.k
    mark(k, (0, "a0"), (1, "b1"), (1, "c1"))
    sh.ok("set_ftrace_filter", "ksys_read:cpudump")
    assert texts(run(k, "ksys_read", cpu=1)) == ["Dumping ftrace buffer:", RULE, "b1", "c1", RULE]
    assert texts(entries(sh)) == ["a0"]  # CPU 0 kept
    # cpudump has no count (no init): it dumps at every hit
    assert sh.cat("set_ftrace_filter").endswith("ksys_read:cpudump:unlimited\n")
    assert texts(run(k, "ksys_read", cpu=0)) == ["Dumping ftrace buffer:", RULE, "a0", RULE]


def test_stacktrace_records_the_call_chain_in_the_array_of_the_probe(sh):
    k = sh.k
    sh.ok("set_ftrace_filter", "ksys_read:stacktrace")
    k.syscall_enter(400, "reader", 1, op="read")
    k.syscall_exit()
    text = sh.cat("trace")
    assert "<stack trace>\n => [FTRACE TRAMPOLINE]\n => ksys_read\n => do_syscall_64\n" in text
    assert len(entries(sh)) == 1 + text.count(" => ")
    # an instance's probe writes into the instance
    sh.ok("set_ftrace_filter", "!ksys_read:stacktrace", append=True)
    walk(sh.root, "instances").mkdir("foo")
    sh.ok("instances/foo/set_ftrace_filter", "vfs_read:stacktrace")
    k.syscall_enter(400, "reader", 1, op="read")
    k.syscall_exit()
    assert sh.cat("instances/foo/trace").count("<stack trace>") == 1
    assert sh.cat("trace").count("<stack trace>") == 1


def test_stacktrace_count_while_tracing_is_on(sh):
    k = sh.k
    sh.ok("set_ftrace_filter", "vfs_read:stacktrace:2")
    sh.ok("tracing_on", "0")
    run(k, "vfs_read")  # tracing_is_on() is false: nothing, and the count stays
    assert sh.cat("set_ftrace_filter").endswith("vfs_read:stacktrace:count=2\n")
    sh.ok("tracing_on", "1")
    for _ in range(3):
        run(k, "vfs_read")
    assert sh.cat("trace").count("<stack trace>") == 2
    assert sh.cat("set_ftrace_filter").endswith("vfs_read:stacktrace:count=0\n")


def test_snapshot_probe_arms_takes_and_disarms(sh):
    k = sh.k
    gt = k.trace.global_trace
    assert gt.snapshot == 0 and not gt.allocated_snapshot
    sh.ok("set_ftrace_filter", "vfs_read:snapshot:1")
    assert gt.snapshot == 1 and gt.allocated_snapshot  # tracing_arm_snapshot()
    sh.ok("set_ftrace_filter", "vfs_write:snapshot", append=True)
    assert gt.snapshot == 2
    mark(k, (0, "before"))
    run(k, "vfs_read")
    assert texts(entries(sh, "snapshot")) == ["before"]
    assert entries(sh) == []  # swapped with the (empty) snapshot buffer
    mark(k, (0, "after"))
    run(k, "vfs_read")  # count spent: no second swap
    assert texts(entries(sh)) == ["after"]
    assert sh.cat("set_ftrace_filter").endswith(
        "vfs_write:snapshot:unlimited\nvfs_read:snapshot:count=0\n")
    sh.ok("set_ftrace_filter", "!vfs_read:snapshot:0", append=True)
    assert gt.snapshot == 1
    sh.ok("set_ftrace_filter", "!vfs_write:snapshot", append=True)
    assert gt.snapshot == 0
    # a failed registration disarms again
    assert sh.echo("set_ftrace_filter", "nosuchfunc:snapshot", append=True) == errno.EINVAL
    assert gt.snapshot == 0


def test_snapshot_probe_without_a_snapshot_buffer_stops_tracing(sh):
    k = sh.k
    sh.ok("set_ftrace_filter", "vfs_read:snapshot")
    sh.ok("snapshot", "0")  # frees the buffer the probe armed
    run(k, "vfs_read")
    lines = entries(sh)
    assert [line.split(": ", 1)[1] for line in lines] == [
        "tracing_snapshot_instance_cond: *** SNAPSHOT NOT ALLOCATED ***",
        "tracing_snapshot_instance_cond: *** stopping trace here!   ***"]
    assert sh.cat("tracing_on") == "0\n"


def test_command_counts_parse_like_kstrtoul(sh):
    gt = sh.k.trace.global_trace
    sh.ok("set_ftrace_filter", "vfs_read:traceon:0x10")
    assert sh.cat("set_ftrace_filter").endswith("vfs_read:traceon:count=16\n")
    sh.ok("set_ftrace_filter", "vfs_write:traceon:", append=True)  # no number: unlimited count
    assert "vfs_write:traceon:count=-1\n" in sh.cat("set_ftrace_filter")
    assert sh.echo("set_ftrace_filter", "vfs_readv:traceoff:abc", append=True) == errno.EINVAL
    assert sh.echo("set_ftrace_filter", "vfs_readv:traceoff:99999999999999999999999",
                   append=True) == errno.ERANGE
    assert sh.echo("set_ftrace_filter", "vfs_readv:snapshot:1x", append=True) == errno.EINVAL
    assert gt.snapshot == 0 and not gt.allocated_snapshot
    assert sh.echo("set_ftrace_filter", "vfs_readv:enable_event:sched:sched_switch:99999999999999999999999",
                   append=True) == errno.ERANGE
