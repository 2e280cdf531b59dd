"""The function_graph tracer through the tracefs layer (kernel/trace_functions_graph.py).

Durations come from fgraph's calltime/rettime: the tests replace ``fgraph._now`` with a
clock that advances a fixed step per reading (fgraph reads it once at every hooked
entry, traced or not, and once at every hooked return), so every line is exact.
"""

from __future__ import annotations

import pytest

from tracefs_sim.kernel import Kernel
from tracefs_sim.kernel.trace_functions_graph import graph_duration, graph_headers, graph_proc
from tracefs_sim.kernel.workload.irq import TIMER_SOFTIRQ
from tracefs_sim.tracefs import build_tree
from tracefs_sim.tracefs.files import read_file, write_file
from tracefs_sim.tracefs.node import READ_ONLY, walk

HEADER = ("# tracer: function_graph\n#\n"
          "# CPU  DURATION                  FUNCTION CALLS\n"
          "# |     |   |                     |   |   |   |\n")
TREE = ("vfs_read", ("rw_verify_area", "security_file_permission"), "__fsnotify_parent")


class Steps:
    """A calltime/rettime clock: +step ns per reading."""

    def __init__(self, step: int) -> None:
        self.t = 5_000_000_000
        self.step = step

    def __call__(self) -> int:
        self.t += self.step
        return self.t


@pytest.fixture
def kt():
    k = Kernel(nr_cpus=2, seed=1)
    k.workload.enabled = False  # only the test's own calls
    k.fgraph._now = Steps(1234)
    return k, build_tree(k)


def run(k: Kernel, tree=TREE, pid: int = 177, comm: str = "bash", cpu: int = 0) -> None:
    k.syscall_enter(pid, comm, cpu)
    try:
        k.workload.sites.call(tree)
    finally:
        k.syscall_exit()


def text(root, path: str = "trace") -> str:
    return read_file(root, path).decode()


def body(root, path: str = "trace") -> str:
    t = text(root, path)
    assert t.startswith("# tracer: function_graph\n#\n")
    return "".join(line for line in t.splitlines(keepends=True) if not line.startswith("#"))


def graph_on(root, path: str = "") -> None:
    write_file(root, path + "current_tracer", "function_graph")


# ---------------------------------------------------------------------------- formatters
@pytest.mark.parametrize("ns, out", [
    (1382, "1.382 us    "), (313, "0.313 us    "), (61770, "61.770 us   "),
    (140417, "140.417 us  "), (1837709, "1837.709 us "), (33998590, "33998.59 us "),
    (119760200, "119760.2 us "), (3594274000, "3594274 us  "), (12345678901, "12345678 us "),
    (0, "0.000 us    "),
])
def test_duration_column(ns, out):
    """trace_print_graph_duration(): Documentation/trace/ftrace.rst's examples."""
    assert graph_duration(ns) == out


def test_proc_column():
    assert graph_proc("bash", 177) == "   bash-177   "
    assert graph_proc("cat", 180) == "   cat-180    "
    assert graph_proc("kworker/0:1", 9) == "  kworker-9   "  # comm cut to 7
    assert graph_proc("systemd-journal", 1234567) == "systemd-1234567"


def test_header_variants():
    cpu, ovh, proc, dur, abst = 0x2, 0x4, 0x8, 0x10, 0x20
    assert graph_headers(cpu | ovh | dur, False) == HEADER.split("#\n", 1)[1]
    assert graph_headers(cpu | proc | dur, False) == (
        "# CPU  TASK/PID         DURATION                  FUNCTION CALLS\n"
        "# |     |    |           |   |                     |   |   |   |\n")
    assert graph_headers(abst | cpu | dur, False) == (
        "#     TIME        CPU  DURATION                  FUNCTION CALLS\n"
        "#      |          |     |   |                     |   |   |   |\n")
    assert graph_headers(0, False) == "#               FUNCTION CALLS\n#               |   |   |   |\n"
    assert graph_headers(cpu | dur, True) == (
        "#      _-----=> irqs-off        \n"
        "#     / _----=> need-resched    \n"
        "#    | / _---=> hardirq/softirq \n"
        "#    || / _--=> preempt-depth   \n"
        "#    ||| /                      \n"
        "# CPU||||     DURATION                  FUNCTION CALLS\n"
        "# |  ||||      |   |                     |   |   |   |\n")


# ---------------------------------------------------------------------------- output
def test_empty_trace_header(kt):
    k, root = kt
    graph_on(root)
    assert text(root) == HEADER
    assert "function_graph" in text(root, "available_tracers")


def test_nested_and_leaf_lines(kt):
    k, root = kt
    graph_on(root)
    run(k, ("vfs_read", "rw_verify_area"))
    run(k, "rw_verify_area")
    assert text(root) == HEADER + (
        " 0)               |  vfs_read() {\n"
        " 0)   1.234 us    |    rw_verify_area();\n"
        " 0)   3.702 us    |  }\n"
        " 0)   1.234 us    |  rw_verify_area();\n")


def test_deeper_tree_and_cpu_column(kt):
    k, root = kt
    graph_on(root)
    run(k, cpu=1)
    assert body(root) == (
        " 1)               |  vfs_read() {\n"
        " 1)               |    rw_verify_area() {\n"
        " 1)   1.234 us    |      security_file_permission();\n"
        " 1)   3.702 us    |    }\n"
        " 1)   1.234 us    |    __fsnotify_parent();\n"
        " 1)   8.638 us    |  }\n")


def test_funcgraph_tail(kt):
    k, root = kt
    graph_on(root)
    write_file(root, "options/funcgraph-tail", "1")
    run(k, ("vfs_read", "rw_verify_area"))
    assert body(root) == (
        " 0)               |  vfs_read() {\n"
        " 0)   1.234 us    |    rw_verify_area();\n"
        " 0)   3.702 us    |  } /* vfs_read */\n")


def test_overhead_marks_and_options(kt):
    k, root = kt
    k.fgraph._now = Steps(40_000)
    graph_on(root)
    run(k, ("vfs_read", "rw_verify_area"))
    assert body(root) == (
        " 0)               |  vfs_read() {\n"
        " 0) + 40.000 us   |    rw_verify_area();\n"
        " 0) ! 120.000 us  |  }\n")
    write_file(root, "options/funcgraph-overhead", "0")
    assert body(root) == (
        " 0)               |  vfs_read() {\n"
        " 0)   40.000 us   |    rw_verify_area();\n"
        " 0)   120.000 us  |  }\n")
    write_file(root, "options/funcgraph-duration", "0")
    write_file(root, "options/funcgraph-cpu", "0")
    assert text(root) == ("# tracer: function_graph\n#\n#               FUNCTION CALLS\n"
                          "#               |   |   |   |\n"
                          "vfs_read() {\n  rw_verify_area();\n}\n")
    write_file(root, "options/funcgraph-overrun", "1")
    assert body(root) == "vfs_read() {\n  rw_verify_area();\n}\n (Overruns: 0)\n"


def test_proc_abstime_and_context_switch_banner(kt):
    k, root = kt
    graph_on(root)
    run(k, "rw_verify_area", 177, "bash")
    run(k, "rw_verify_area", 180, "cat")
    banner = (" ------------------------------------------\n"
              " 0)    bash-177    =>    cat-180    \n"
              " ------------------------------------------\n\n")
    assert body(root) == (" 0)   1.234 us    |  rw_verify_area();\n" + banner
                          + " 0)   1.234 us    |  rw_verify_area();\n")
    write_file(root, "options/funcgraph-proc", "1")
    assert body(root) == (" 0)    bash-177    |   1.234 us    |  rw_verify_area();\n" + banner
                          + " 0)    cat-180     |   1.234 us    |  rw_verify_area();\n")
    write_file(root, "options/funcgraph-proc", "0")
    write_file(root, "options/funcgraph-abstime", "1")
    lines = body(root).splitlines()
    assert len(lines) == 6
    for line in (lines[0], lines[5]):
        assert line[:5].strip().isdigit() and line[5] == "." and line[6:12].isdigit()
        assert line[12:] == " |   0)   1.234 us    |  rw_verify_area();"


def test_latency_format_and_context_info(kt):
    k, root = kt
    graph_on(root)
    write_file(root, "options/latency-format", "1")
    assert text(root) == "# tracer: function_graph\n#\n"  # empty buffer: no header
    run(k, ("vfs_read", "rw_verify_area"))
    t = text(root)
    assert "# function_graph latency trace v1.1.5 on " in t
    assert t.endswith(
        "#      _-----=> irqs-off        \n"
        "#     / _----=> need-resched    \n"
        "#    | / _---=> hardirq/softirq \n"
        "#    || / _--=> preempt-depth   \n"
        "#    ||| /                      \n"
        "# CPU||||     DURATION                  FUNCTION CALLS\n"
        "# |  ||||      |   |                     |   |   |   |\n"
        " 0)  ..... |               |  vfs_read() {\n"
        " 0)  ..... |   1.234 us    |    rw_verify_area();\n"
        " 0)  ..... |   3.702 us    |  }\n")
    write_file(root, "options/latency-format", "0")
    write_file(root, "options/context-info", "0")
    assert text(root) == "# tracer: function_graph\n#\nvfs_read() {\n  rw_verify_area();\n}\n"


def test_trace_marker_is_a_comment_at_the_current_depth(kt):
    k, root = kt
    graph_on(root)
    k.syscall_enter(177, "bash", 0)
    frames = k.workload.sites.enter_chain(("vfs_read", "rw_verify_area"))
    write_file(root, "trace_marker", "hello")
    k.workload.sites.leave_chain(frames)
    write_file(root, "trace_marker", "out")
    k.syscall_exit()
    assert body(root) == (
        " 0)               |  vfs_read() {\n"
        " 0)               |    rw_verify_area() {\n"
        " 0)               |      /* hello */\n"
        " 0)   1.234 us    |    }\n"
        " 0)   3.702 us    |  }\n"
        " 0)               |  /* out */\n")


# ---------------------------------------------------------------------------- filters
def test_max_graph_depth(kt):
    k, root = kt
    graph_on(root)
    write_file(root, "max_graph_depth", "1")
    run(k)
    # the three callees are refused, but each read the clock at entry
    assert body(root) == " 0)   4.936 us    |  vfs_read();\n"
    write_file(root, "trace", "")
    write_file(root, "max_graph_depth", "2")
    run(k)
    assert body(root) == (
        " 0)               |  vfs_read() {\n"
        " 0)   2.468 us    |    rw_verify_area();\n"
        " 0)   1.234 us    |    __fsnotify_parent();\n"
        " 0)   7.404 us    |  }\n")


def test_set_graph_function(kt):
    k, root = kt
    graph_on(root)
    write_file(root, "set_graph_function", "rw_verify_area")
    run(k)
    assert body(root) == (
        " 0)               |  rw_verify_area() {\n"
        " 0)   1.234 us    |    security_file_permission();\n"
        " 0)   3.702 us    |  }\n")


def test_set_graph_notrace(kt):
    k, root = kt
    graph_on(root)
    write_file(root, "set_graph_notrace", "rw_verify_area")
    run(k)
    assert body(root) == (
        " 0)               |  vfs_read() {\n"
        " 0)   1.234 us    |    __fsnotify_parent();\n"
        " 0)   7.404 us    |  }\n")


def test_set_ftrace_filter_and_notrace(kt):
    k, root = kt
    write_file(root, "set_ftrace_notrace", "security_file_permission")
    graph_on(root)
    run(k)
    assert body(root) == (
        " 0)               |  vfs_read() {\n"
        " 0)   1.234 us    |    rw_verify_area();\n"
        " 0)   1.234 us    |    __fsnotify_parent();\n"
        " 0)   6.170 us    |  }\n")
    write_file(root, "set_ftrace_filter", "vfs_read")  # applies while tracing
    write_file(root, "trace", "")
    run(k)
    assert body(root) == " 0)   1.234 us    |  vfs_read();\n"


def test_pid_filter(kt):
    k, root = kt
    graph_on(root)
    write_file(root, "set_ftrace_pid", "180")
    run(k, "rw_verify_area", 177, "bash")
    run(k, "__fsnotify_parent", 180, "cat")
    assert body(root) == " 0)   1.234 us    |  __fsnotify_parent();\n"


def test_tracing_thresh_records_only_slow_returns(kt):
    k, root = kt
    graph_on(root)
    write_file(root, "tracing_thresh", "3")
    run(k)
    assert body(root) == (
        " 0)   3.702 us    |    } /* rw_verify_area */\n"
        " 0)   8.638 us    |  } /* vfs_read */\n")


def test_funcgraph_irqs_off_skips_hardirq(kt):
    k, root = kt
    graph_on(root)
    irq = k.workload.irq

    def timer_irq(base: int) -> None:
        """A timer interrupt whose tick raised TIMER_SOFTIRQ."""
        irq.apic_timer_handler(0, base)
        irq.raise_softirq(0, TIMER_SOFTIRQ)

    write_file(root, "options/funcgraph-irqs", "0")
    irq.interrupt(0, timer_irq)
    out = body(root)
    assert "__sysvec_apic_timer_interrupt" not in out and "irq_exit_rcu() {" in out
    assert out.startswith(" 0)   1.234 us    |  irq_enter_rcu();\n")
    write_file(root, "options/funcgraph-irqs", "1")
    write_file(root, "trace", "")
    irq.interrupt(0, timer_irq)
    # irq_enter_rcu() runs before the idtentry enters hardirq context: shown either way
    assert body(root).startswith(" 0)   1.234 us    |  irq_enter_rcu();\n"
                                 " 0)               |  __sysvec_apic_timer_interrupt() {\n")


# ---------------------------------------------------------------------------- readers
def test_trace_pipe_matches_trace(kt):
    k, root = kt
    graph_on(root)
    run(k, cpu=0)
    run(k, ("vfs_read", "rw_verify_area"), 180, "cat", cpu=1)
    run(k, "rw_verify_area", 181, "ls", cpu=0)
    expected = body(root)
    f = walk(root, "trace_pipe").open(READ_ONLY)
    try:
        got = b""
        while True:
            data = f.read(len(got), 7)
            if not isinstance(data, bytes) or not data:
                break
            got += data
    finally:
        f.release()
    assert got.decode() == expected
    assert "=>     ls-181    \n" in expected


def test_instance_with_its_own_tracer(kt):
    k, root = kt
    walk(root, "instances").mkdir("foo")
    assert "function_graph" in text(root, "instances/foo/available_tracers")
    write_file(root, "instances/foo/set_ftrace_filter", "vfs_read")
    graph_on(root, "instances/foo/")
    run(k)
    assert body(root, "instances/foo/trace") == " 0)   1.234 us    |  vfs_read();\n"
    assert text(root, "trace").startswith("# tracer: nop\n")
    graph_on(root)
    write_file(root, "instances/foo/trace", "")
    run(k, ("vfs_read", "rw_verify_area"))
    assert body(root) == (
        " 0)               |  vfs_read() {\n"
        " 0)   1.234 us    |    rw_verify_area();\n"
        " 0)   3.702 us    |  }\n")
    assert body(root, "instances/foo/trace") == " 0)   3.702 us    |  vfs_read();\n"
    assert k.fgraph.active == 2
    write_file(root, "instances/foo/current_tracer", "nop")
    walk(root, "instances").rmdir("foo")
    write_file(root, "current_tracer", "nop")
    assert k.fgraph.active == 0


def test_graph_events_printed_by_another_tracer(kt):
    k, root = kt
    graph_on(root)
    run(k, ("vfs_read", "rw_verify_area"))
    write_file(root, "snapshot", "1")
    write_file(root, "current_tracer", "nop")
    lines = [line for line in text(root, "snapshot").splitlines() if not line.startswith("#")]
    assert lines[0].startswith("            bash-177     [000] .....     ")
    assert lines[0].endswith(":  0)               |  vfs_read() {")
    assert lines[-1].endswith(":  0)   3.702 us    |  }")
    write_file(root, "options/raw", "1")
    raw = [line for line in text(root, "snapshot").splitlines() if not line.startswith("#")]
    assert [line.split(" ", 3)[3] for line in raw] == ["type: 11", "type: 11", "type: 10", "type: 10"]
