"""The tracing core through the tracefs layer (no mount): trace, trace_pipe, markers,
options, buffer sizes, snapshot, error_log, instances — checked against the golden
transcripts of the reference kernel."""

from __future__ import annotations

import errno

import pytest

from tracefs_sim.kernel import Kernel
from tracefs_sim.kernel.errors import WOULD_BLOCK, KernelError
from tracefs_sim.tracefs import build_tree
from tracefs_sim.tracefs.files import read_file, write_file
from tracefs_sim.tracefs.node import READ_ONLY, walk

HEADER_IRQ = (
    "#                                _-----=> irqs-off/BH-disabled\n"
    "#                               / _----=> need-resched\n"
    "#                              | / _---=> hardirq/softirq\n"
    "#                              || / _--=> preempt-depth\n"
    "#                              ||| / _-=> migrate-disable\n"
    "#                              |||| /     delay\n"
    "#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION\n"
    "#              | |         |   |||||     |         |\n")


@pytest.fixture
def kt():
    k = Kernel(nr_cpus=2, seed=7)
    k.workload.enabled = False  # only the test's own records
    return k, build_tree(k)


def as_task(k: Kernel, pid: int, comm: str = "bash", cpu: int = 0):
    k.syscall_enter(pid, comm, cpu)


def marker(k, root, text, pid=177, cpu=0):
    as_task(k, pid, "bash", cpu)
    try:
        return write_file(root, "trace_marker", text)
    finally:
        k.syscall_exit()


def text(root, path) -> str:
    return read_file(root, path).decode()


def test_empty_trace_header(kt):
    k, root = kt
    assert text(root, "trace") == ("# tracer: nop\n#\n# entries-in-buffer/entries-written: 0/0   #P:2\n#\n"
                                   + HEADER_IRQ)


def test_marker_line_and_counts(kt):
    k, root = kt
    marker(k, root, "hello\n")
    marker(k, root, "no-newline")
    out = text(root, "trace")
    assert "# entries-in-buffer/entries-written: 2/2   #P:2\n" in out
    lines = out.splitlines()[-2:]
    assert lines[0].startswith("           <...>-177     [000] .....     ")
    assert lines[0].endswith(": tracing_mark_write: hello")
    assert lines[1].endswith(": tracing_mark_write: no-newline")


def test_o_trunc_clears(kt):
    k, root = kt
    marker(k, root, "x\n")
    write_file(root, "trace", "")
    assert "entries-written: 0/0" in text(root, "trace")


def test_record_tgid_header_and_column(kt):
    k, root = kt
    marker(k, root, "hello\n", pid=184, cpu=1)
    write_file(root, "options/record-tgid", "1")
    out = text(root, "trace")
    assert "#           TASK-PID       TGID    CPU#  |||||  TIMESTAMP  FUNCTION\n" in out
    assert "           <...>-184     (-------) [001] ....." in out


def test_no_irq_info_and_no_context(kt):
    k, root = kt
    marker(k, root, "hello\n", pid=184, cpu=1)
    write_file(root, "options/irq-info", "0")
    out = text(root, "trace")
    assert "#           TASK-PID     CPU#     TIMESTAMP  FUNCTION\n#              | |         |         |         |\n" in out
    assert "           <...>-184     [001]      " in out
    write_file(root, "options/irq-info", "1")
    write_file(root, "options/context-info", "0")
    assert text(root, "trace") == "# tracer: nop\n#\ntracing_mark_write: hello\n"


def test_raw_and_hex(kt):
    k, root = kt
    marker(k, root, "hello\n", pid=184, cpu=1)
    write_file(root, "options/raw", "1")
    last = text(root, "trace").splitlines()[-1]
    pid, cpu, ts, hashmark, ip, msg = last.split()
    assert (pid, cpu, hashmark, msg) == ("184", "1", "#", "hello")
    write_file(root, "options/raw", "0")
    write_file(root, "options/hex", "1")
    out = text(root, "trace")
    assert out.endswith(" type: 5\n\n")
    assert "000000b8 00000001 " in out


def test_tracing_off_marker_ebadf(kt):
    k, root = kt
    write_file(root, "tracing_on", "0")
    with pytest.raises(KernelError) as e:
        marker(k, root, "not-recorded\n")
    assert e.value.errno == errno.EBADF
    assert text(root, "tracing_on") == "0\n"


def test_marker_raw(kt):
    k, root = kt
    as_task(k, 213)
    write_file(root, "trace_marker_raw", b"\x01\x00\x00\x00abcd")
    k.syscall_exit()
    assert "# 1 buf: 61 62 63 64" in text(root, "trace")
    with pytest.raises(KernelError):
        write_file(root, "trace_marker_raw", b"ab")


def test_trace_pipe_consumes_and_blocks(kt):
    k, root = kt
    f = walk(root, "trace_pipe").open(READ_ONLY)
    assert f.read(0, 4096) is WOULD_BLOCK
    marker(k, root, "one\n")
    marker(k, root, "two\n", cpu=1)
    data = f.read(0, 4096)
    assert data.count(b"\n") == 2 and data.index(b"one") < data.index(b"two")
    assert f.read(0, 4096) is WOULD_BLOCK
    write_file(root, "tracing_on", "0")
    assert f.read(0, 4096) == b""  # EOF once read and tracing is off
    f.release()
    assert "entries-written: 0/0" in text(root, "trace")


def test_trace_pipe_small_reads_keep_leftover(kt):
    k, root = kt
    marker(k, root, "abcdefgh\n")
    f = walk(root, "trace_pipe").open(READ_ONLY)
    parts = [f.read(0, 10) for _ in range(20)]
    joined = b"".join(p for p in parts if p)
    assert joined.endswith(b"tracing_mark_write: abcdefgh\n")
    f.release()


def test_trace_options_and_flags(kt):
    k, root = kt
    opts = text(root, "trace_options").split()
    assert opts[:3] == ["print-parent", "nosym-offset", "nosym-addr"]
    assert opts[-2:] == ["notest_nop_accept", "notest_nop_refuse"]
    write_file(root, "trace_options", "noprint-parent")
    assert text(root, "options/print-parent") == "0\n"
    with pytest.raises(KernelError) as e:
        write_file(root, "trace_options", "nosuchopt")
    assert e.value.errno == errno.EINVAL
    with pytest.raises(KernelError):
        write_file(root, "options/print-parent", "2")
    with pytest.raises(KernelError):
        write_file(root, "options/test_nop_refuse", "1")
    write_file(root, "options/test_nop_accept", "1")
    assert "test_nop_accept\n" in text(root, "trace_options")


def test_tracer_options_follow_current_tracer(kt):
    k, root = kt
    write_file(root, "current_tracer", "function")
    assert text(root, "trace_options").split()[-2:] == ["nofunc_stack_trace", "nofunc-no-repeats"]
    write_file(root, "current_tracer", "nop")


def test_trace_clock(kt):
    k, root = kt
    assert text(root, "trace_clock") == "[local] global counter uptime perf mono mono_raw boot tai x86-tsc\n"
    write_file(root, "trace_clock", "global")
    assert text(root, "trace_clock").startswith("local [global]")
    with pytest.raises(KernelError):
        write_file(root, "trace_clock", "nosuchclock")
    write_file(root, "trace_clock", "counter")
    marker(k, root, "hello\n")
    marker(k, root, "world\n")
    lines = text(root, "trace").splitlines()[-2:]
    assert lines[0].split(":")[0].split()[-1].isdigit()


def test_buffer_sizes_golden(kt):
    k, root = kt
    assert text(root, "buffer_size_kb") == "7 (expanded: 1408)\n"
    assert text(root, "buffer_total_size_kb") == "14 (expanded: 2816)\n"
    assert text(root, "per_cpu/cpu0/buffer_size_kb") == "7\n"
    assert text(root, "buffer_subbuf_size_kb") == "4\n"
    assert text(root, "buffer_percent") == "50\n"
    write_file(root, "buffer_size_kb", "100")
    assert text(root, "buffer_size_kb") == "103\n"
    assert text(root, "buffer_total_size_kb") == "206\n"
    write_file(root, "per_cpu/cpu1/buffer_size_kb", "200")
    assert text(root, "buffer_size_kb") == "X\n"
    assert text(root, "buffer_total_size_kb") == "306\n"
    for bad in ("abc", "0"):
        with pytest.raises(KernelError):
            write_file(root, "buffer_size_kb", bad)
    assert text(root, "buffer_size_kb") == "X\n"
    write_file(root, "buffer_size_kb", "1")
    assert text(root, "buffer_size_kb") == "7\n"
    write_file(root, "buffer_subbuf_size_kb", "8")
    assert text(root, "buffer_subbuf_size_kb") == "8\n"
    with pytest.raises(KernelError):
        write_file(root, "buffer_subbuf_size_kb", "0")
    write_file(root, "buffer_subbuf_size_kb", "3")
    assert text(root, "buffer_subbuf_size_kb") == "4\n"
    with pytest.raises(KernelError):
        write_file(root, "buffer_total_size_kb", "1")


def test_free_buffer(kt):
    k, root = kt
    write_file(root, "buffer_size_kb", "1410")
    write_file(root, "tracing_on", "0")
    write_file(root, "free_buffer", "1")
    assert text(root, "buffer_size_kb") == "7\n"
    assert text(root, "tracing_on") == "0\n"


def test_saved_cmdlines_size_quirk(kt):
    k, root = kt
    assert text(root, "saved_cmdlines_size") == "6552\n"
    write_file(root, "saved_cmdlines_size", "16")
    assert text(root, "saved_cmdlines_size") == "6552\n"
    for bad in ("0", "99999999", "abc"):
        with pytest.raises(KernelError):
            write_file(root, "saved_cmdlines_size", bad)


def test_a_caller_gone_from_proc_keeps_its_comm_in_saved_cmdlines(kt):
    """A request of a caller that has exited names it "<...>" (/proc has no comm for
    it): the task the kernel knows keeps its name, so saved_cmdlines (what trace-cmd
    and the trace file name a pid by) still says ``cat``; an exec's comm renames it."""
    k, root = kt
    write_file(root, "events/sched/sched_switch/enable", "1")
    for comm in ("sh", "cat", "<...>"):
        k.syscall_enter(4321, comm, 0)
        k.syscall_exit(0)
    assert k.sched.tasks[4321].comm == "cat"
    assert "4321 cat\n" in text(root, "saved_cmdlines")


def test_snapshot(kt):
    k, root = kt
    assert "# * Snapshot is freed *" in text(root, "snapshot")
    marker(k, root, "before\n")
    write_file(root, "tracing_on", "0")
    write_file(root, "snapshot", "1")
    assert "Snapshot is allocated" not in text(root, "snapshot")
    assert "tracing_mark_write: before" in text(root, "snapshot")
    assert text(root, "tracing_on") == "0\n"
    assert "before" not in text(root, "trace")
    write_file(root, "snapshot", "2")
    assert "# * Snapshot is allocated *" in text(root, "snapshot")
    write_file(root, "snapshot", "0")
    assert "# * Snapshot is freed *" in text(root, "snapshot")
    with pytest.raises(KernelError):
        write_file(root, "per_cpu/cpu0/snapshot", "0")


def test_error_log_limit_and_clear(kt):
    k, root = kt
    tr = k.trace.global_trace
    for i in range(10):
        tr.log_err("trace_fprobe", f"f cmd{i}", "Invalid argument", 2)
    out = text(root, "error_log")
    assert out.count("Command:") == 8 and "cmd9" in out and "cmd1\n" not in out
    line = out.splitlines()[0]
    assert line.endswith("] trace_fprobe: error: Invalid argument")
    assert out.splitlines()[2] == " " * 13 + "^"
    write_file(root, "error_log", "")
    assert text(root, "error_log") == ""


def test_instances(kt):
    k, root = kt
    inst = walk(root, "instances")
    foo = inst.mkdir("foo")
    names = [n for n, _ in foo.entries()]
    assert "trace_marker" in names and "README" not in names and "options" in names
    assert text(root, "instances/foo/buffer_size_kb") == "1410\n"
    opts = [n for n, _ in walk(root, "instances/foo/options").entries()]
    assert "trace_printk" not in opts and "record-cmd" not in opts and "record-tgid" in opts
    with pytest.raises(KernelError) as e:
        inst.mkdir("foo")
    assert e.value.errno == errno.EEXIST
    f = walk(root, "instances/foo/trace_pipe").open(READ_ONLY)
    with pytest.raises(KernelError) as e:
        inst.rmdir("foo")
    assert e.value.errno == errno.EBUSY
    f.release()
    inst.rmdir("foo")
    assert walk(root, "instances").lookup("foo") is None


def test_tracing_cpumask(kt):
    k, root = kt
    assert text(root, "tracing_cpumask") == "3\n"
    write_file(root, "tracing_cpumask", "1")
    with pytest.raises(KernelError) as e:  # the CPU's buffer refuses: as if not open for write
        marker(k, root, "on-cpu1\n", cpu=1)
    assert e.value.errno == errno.EBADF
    assert "on-cpu1" not in text(root, "trace")
    write_file(root, "tracing_cpumask", "3")
    marker(k, root, "on-cpu1\n", cpu=1)
    assert "on-cpu1" in text(root, "trace")


def test_trace_pipe_raw_page(kt):
    k, root = kt
    marker(k, root, "ABCDEFGH\n", pid=187)
    write_file(root, "tracing_on", "0")
    f = walk(root, "per_cpu/cpu0/trace_pipe_raw").open(READ_ONLY)
    page = f.read(0, 4096)
    assert len(page) == 4096
    assert page[8:16] == bytes.fromhex("2000000000000000")  # commit = 32
    assert page[16:20] == bytes.fromhex("07000000")
    assert page[20:24] == bytes.fromhex("05000000") and page[24:28] == (187).to_bytes(4, "little")
    assert page[36:46] == b"ABCDEFGH\n\0"
    assert f.read(0, 4096) == b""  # drained and tracing off
    f.release()
