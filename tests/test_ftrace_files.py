"""tracefs/ftrace_files.py over a booted kernel: golden transcripts 09, 11 and 26."""

from __future__ import annotations

import errno
import re

import pytest

from tracefs_sim.kernel.core import Kernel
from tracefs_sim.kernel.errors import KernelError
from tracefs_sim.tracefs import build_tree
from tracefs_sim.tracefs.files import read_file
from tracefs_sim.tracefs.node import WRITE_APPEND, WRITE_TRUNC, OpenMode, walk


class Shell:
    """``echo TEXT > FILE`` / ``>>`` / ``cat`` against the tree, as bash + FUSE do:
    open, FLUSH, write (again after a short write), FLUSH, release."""

    def __init__(self, kernel: Kernel) -> None:
        self.k = kernel
        self.root = build_tree(kernel)

    def echo(self, path: str, text: str, append: bool = False) -> int:
        f = walk(self.root, path).open(WRITE_APPEND if append else WRITE_TRUNC)
        data = (text + "\n").encode()
        try:
            f.flush()
            done = 0
            while done < len(data):
                try:
                    done += f.write(0, data[done:])
                except KernelError as e:
                    return e.errno
            f.flush()
            return 0
        finally:
            f.release()

    def ok(self, path: str, text: str, append: bool = False) -> None:
        assert self.echo(path, text, append) == 0, (path, text)

    def cat(self, path: str) -> str:
        return read_file(self.root, path).decode()


@pytest.fixture
def sh():
    return Shell(Kernel(nr_cpus=2, seed=1))


ALL = "#### all functions enabled ####\n"


def test_filter_basics_golden_09(sh):
    assert sh.cat("set_ftrace_filter") == ALL
    assert sh.cat("set_ftrace_notrace") == "#### no functions disabled ####\n"
    sh.ok("set_ftrace_filter", "vfs_read")
    assert sh.cat("set_ftrace_filter") == "vfs_read\n"
    sh.ok("set_ftrace_filter", "vfs_write", append=True)
    assert sh.cat("set_ftrace_filter") == "vfs_read\nvfs_write\n"
    sh.ok("set_ftrace_filter", "vfs_readv vfs_writev", append=True)
    assert sh.cat("set_ftrace_filter") == "vfs_readv\nvfs_writev\nvfs_read\nvfs_write\n"
    sh.ok("set_ftrace_filter", "!vfs_write", append=True)
    assert sh.cat("set_ftrace_filter") == "vfs_readv\nvfs_writev\nvfs_read\n"
    sh.ok("set_ftrace_filter", "")
    assert sh.cat("set_ftrace_filter") == ALL


def test_commands_golden_09(sh):
    sh.ok("set_ftrace_filter", "vfs_read vfs_write vfs_readv vfs_writev")
    sh.ok("set_ftrace_filter", "vfs_read:traceoff", append=True)
    assert sh.cat("set_ftrace_filter").endswith("vfs_write\nvfs_read:traceoff:unlimited\n")
    sh.ok("set_ftrace_filter", "schedule:stacktrace:3", append=True)
    sh.ok("set_ftrace_filter", "vfs_write:traceon:5", append=True)
    sh.ok("set_ftrace_filter", "do_sys_openat2:snapshot:1", append=True)
    sh.ok("set_ftrace_filter", "do_sys_openat2:dump", append=True)
    sh.ok("set_ftrace_filter", "ksys_read:cpudump", append=True)
    assert sh.cat("set_ftrace_filter") == (
        "vfs_readv\nvfs_writev\nvfs_read\nvfs_write\n"
        "ksys_read:cpudump:unlimited\n"
        "do_sys_openat2:dump:count=1\n"
        "do_sys_openat2:snapshot:count=1\n"
        "vfs_write:traceon:count=5\n"
        "schedule:stacktrace:count=3\n"
        "vfs_read:traceoff:unlimited\n")
    assert sh.echo("set_ftrace_filter", "vfs_read:nosuchcmd", append=True) == errno.EINVAL
    assert sh.echo("set_ftrace_filter", "nosuchfunc:traceoff", append=True) == errno.EINVAL
    # removal picks the probe_ops by the presence of a parameter
    sh.ok("set_ftrace_filter", "!vfs_read:traceoff", append=True)
    sh.ok("set_ftrace_filter", "!schedule:stacktrace:0", append=True)
    assert sh.echo("set_ftrace_filter", "!vfs_write:traceon", append=True) == errno.ENODEV
    # truncation clears the functions, not the commands
    sh.ok("set_ftrace_filter", "")
    assert sh.cat("set_ftrace_filter") == (
        ALL + "ksys_read:cpudump:unlimited\ndo_sys_openat2:dump:count=1\n"
        "do_sys_openat2:snapshot:count=1\nvfs_write:traceon:count=5\n")
    assert sh.echo("set_ftrace_filter", "!do_sys_openat2:snapshot", append=True) == errno.ENODEV
    sh.ok("set_ftrace_filter", "!do_sys_openat2:dump", append=True)
    sh.ok("set_ftrace_filter", "!ksys_read:cpudump", append=True)
    assert sh.cat("set_ftrace_filter") == (
        ALL + "do_sys_openat2:snapshot:count=1\nvfs_write:traceon:count=5\n")
    # the probes are their own ftrace_ops
    enabled = sh.cat("enabled_functions")
    assert re.search(r"^do_sys_openat2 \(1\) .*function_trace_probe_call", enabled, re.M)
    assert re.search(r"^vfs_write \(1\) ", enabled, re.M)


def test_traceon_count_probe_fires(sh):
    k = sh.k
    ft = k.ftrace
    gt = k.trace.global_trace
    sh.ok("set_ftrace_filter", "vfs_write:traceon:2")
    k.trace.tracer_tracing_off(gt)
    i = k.kallsyms.index_of("vfs_write")
    ft.func_entry(i, 0)
    assert gt.is_on()
    assert "vfs_write:traceon:count=1\n" in sh.cat("set_ftrace_filter")
    ft.func_entry(i, 0)  # already on: the count stays
    assert "vfs_write:traceon:count=1\n" in sh.cat("set_ftrace_filter")
    sh.ok("set_ftrace_filter", "vfs_write:traceoff", append=True)
    ft.func_entry(i, 0)  # newest probe first: traceoff, then traceon:1 turns it back on
    assert gt.is_on()
    assert "vfs_write:traceon:count=0\n" in sh.cat("set_ftrace_filter")
    ft.func_entry(i, 0)
    assert not gt.is_on()
    k.trace.tracer_tracing_on(gt)


def test_glob_probe_removal_like_func_set_ftrace_file(sh):
    ft = sh.k.ftrace
    expected = sorted({n for n in ft.names if "lock" in n})
    sh.ok("set_ftrace_filter", "*lock*:traceoff")

    def actual() -> list[str]:
        return sorted({line.split(":")[0].split()[0] for line in sh.cat("set_ftrace_filter").splitlines()
                       if not line.startswith("#")})

    assert actual() == expected
    sh.ok("set_ftrace_filter", "!*try*lock:traceoff", append=True)
    expected = [n for n in expected if not re.fullmatch(r".*try.*lock", n)]
    assert actual() == expected
    sh.ok("set_ftrace_filter", "!*:traceoff", append=True)
    assert sh.cat("set_ftrace_filter") == ALL


def test_errors_keep_truncation(sh):
    sh.ok("set_ftrace_filter", "vfs_rea[dx]")
    assert sh.cat("set_ftrace_filter") == "vfs_read\n"
    assert sh.echo("set_ftrace_filter", "nosuchfunc") == errno.EINVAL
    assert sh.cat("set_ftrace_filter") == ALL  # the O_TRUNC'ed copy was still committed
    sh.ok("set_ftrace_filter", "vfs_read")
    assert sh.echo("set_ftrace_filter", "nosuch*", append=True) == errno.EINVAL
    assert sh.cat("set_ftrace_filter") == "vfs_read\n"
    # a second word failing after the first was accepted: the first stays
    assert sh.echo("set_ftrace_filter", "vfs_write nosuchfunc", append=True) == errno.EINVAL
    assert sh.cat("set_ftrace_filter") == "vfs_read\nvfs_write\n"


def test_index_and_mod_golden_09(sh):
    head = sh.cat("available_filter_functions").splitlines()
    assert (head[0], head[1], head[99]) == ("__traceiter_initcall_level",
                                            "__probestub_initcall_level", "max_precise_show")
    sh.ok("set_ftrace_filter", "1")
    sh.ok("set_ftrace_filter", "100", append=True)
    assert sh.cat("set_ftrace_filter") == "__traceiter_initcall_level\nmax_precise_show\n"
    assert sh.echo("set_ftrace_filter", "99999999") == errno.EINVAL
    assert sh.echo("set_ftrace_filter", ":mod:9pnet_virtio") == errno.EINVAL
    sh.ok("set_ftrace_filter", "*:mod:nosuchmod", append=True)
    # a pending :mod: makes the filter "not empty": no "all functions" line
    assert sh.cat("set_ftrace_filter") == "*:mod:nosuchmod\n"
    sh.ok("set_ftrace_filter", "vfs_read:mod:nosuchmod2", append=True)
    assert sh.cat("set_ftrace_filter") == "vfs_read:mod:nosuchmod2\n*:mod:nosuchmod\n"
    sh.ok("set_ftrace_filter", "*write*:mod:!*")
    text = sh.cat("set_ftrace_filter")
    assert len(text.splitlines()) == 937 and "[" not in text and ":mod:" not in text
    sh.ok("set_ftrace_filter", "")
    sh.ok("set_ftrace_filter", "!*:mod:*", append=True)
    assert sh.cat("set_ftrace_filter") == ALL


def test_instance_filter_is_separate(sh):
    sh.ok("set_ftrace_filter", "schedule")
    walk(sh.root, "instances").mkdir("foo")
    assert sh.cat("instances/foo/set_ftrace_filter") == ALL
    sh.ok("instances/foo/set_ftrace_filter", "vfs_read")
    assert sh.cat("instances/foo/set_ftrace_filter") == "vfs_read\n"
    assert sh.cat("set_ftrace_filter") == "schedule\n"


def test_parser_word_across_writes(sh):
    f = walk(sh.root, "set_ftrace_filter").open(WRITE_TRUNC)
    assert f.write(0, b"vfs_re") == 6
    assert f.write(0, b"ad sched") == 3     # one word per write(2): "ad " ends vfs_read
    assert f.write(0, b"sched") == 5
    assert f.write(0, b"ule") == 3
    f.release()  # the last word is processed at release
    assert sh.cat("set_ftrace_filter") == "vfs_read\nschedule\n"


def test_commit_at_first_flush_after_write(sh):
    f = walk(sh.root, "set_ftrace_filter").open(WRITE_TRUNC)
    f.flush()  # bash's flush before the write: nothing committed
    assert sh.cat("set_ftrace_filter") == ALL
    f.write(0, b"vfs_read\n")
    assert sh.cat("set_ftrace_filter") == ALL
    f.flush()
    assert sh.cat("set_ftrace_filter") == "vfs_read\n"
    f.write(0, b"vfs_write\n")  # a dup'ed fd writing after the commit
    f.release()
    assert sh.cat("set_ftrace_filter") == "vfs_read\nvfs_write\n"


def test_read_write_open_shows_its_copy(sh):
    sh.ok("set_ftrace_filter", "vfs_read")
    f = walk(sh.root, "set_ftrace_filter").open(OpenMode(True, True, False, False, False))
    f.write(0, b"schedule\n")
    assert f.read(0, 4096) == b"vfs_read\nschedule\n"
    f.release()


def test_enabled_and_touched_golden_11(sh):
    k = sh.k
    assert sh.cat("enabled_functions") == "" and sh.cat("touched_functions") == ""
    sh.ok("set_ftrace_filter", "vfs_read")
    k.trace.set_tracer(k.trace.global_trace, "function")
    line = (r"vfs_read \(1\)           \ttramp: 0x[0-9a-f]+ \(function_trace_call\+0x0/0x110\) "
            r"->function_trace_call\+0x0/0x110\n")
    assert re.fullmatch(line, sh.cat("enabled_functions"))
    k.trace.set_tracer(k.trace.global_trace, "nop")
    assert sh.cat("enabled_functions") == ""
    assert sh.cat("touched_functions") == "vfs_read (0)            ->ftrace_stub+0x0/0x20\n"


def test_graph_files(sh):
    assert sh.cat("set_graph_function") == ALL
    assert sh.cat("set_graph_notrace") == "#### no functions disabled ####\n"
    sh.ok("set_graph_function", "vfs_read")
    assert sh.cat("set_graph_function") == "vfs_read\n"
    assert sh.echo("set_graph_function", "vfs_read:traceoff", append=True) == errno.EINVAL
    assert sh.echo("set_graph_function", "!schedule", append=True) == errno.EINVAL
    sh.ok("set_graph_function", "!vfs_read", append=True)
    assert sh.cat("set_graph_function") == ALL
    sh.ok("set_graph_notrace", "schedule")
    assert sh.cat("set_graph_notrace") == "schedule\n"
    assert sh.cat("max_graph_depth") == "0\n"
    sh.ok("max_graph_depth", "3")
    assert sh.cat("max_graph_depth") == "3\n"
    assert sh.echo("max_graph_depth", "x") == errno.EINVAL
    sh.ok("max_graph_depth", "4294967295")
    assert sh.cat("max_graph_depth") == "-1\n"


def test_pid_files(sh):
    assert sh.cat("set_ftrace_pid") == "no pid\n"
    sh.ok("set_ftrace_pid", "12 7")
    assert sh.cat("set_ftrace_pid") == "7\n12\n"
    sh.ok("set_ftrace_pid", "3", append=True)
    assert sh.cat("set_ftrace_pid") == "3\n7\n12\n"
    assert sh.echo("set_ftrace_pid", "abc", append=True) == errno.EINVAL
    assert sh.cat("set_ftrace_pid") == "3\n7\n12\n"
    sh.ok("set_ftrace_pid", "")
    assert sh.cat("set_ftrace_pid") == "no pid\n"
    assert sh.cat("set_ftrace_notrace_pid") == "no pid\n"


def test_available_filter_functions_golden_26(sh):
    text = sh.cat("available_filter_functions")
    lines = text.splitlines()
    assert len(lines) == 43280
    assert lines[:3] == ["__traceiter_initcall_level", "__probestub_initcall_level",
                         "__traceiter_initcall_start"]
    assert lines[-1] == "v9fs_acl_mode [9p]"
    assert sum(1 for s in lines if "[" in s) == 418
    assert [n for n, s in enumerate(lines, 1) if s in ("vfs_read", "vfs_write", "schedule", "kfree",
                                                       "kernel_clone")] == [3126, 12349, 13930, 13934, 42725]
    addrs = sh.cat("available_filter_functions_addrs").splitlines()
    assert len(addrs) == 43280
    assert re.fullmatch(r"ffffffff[0-9a-f]{8} __traceiter_initcall_level", addrs[0])
    assert sh.cat("dyn_ftrace_total_info").startswith("43280 pages:")
    for name in ("available_filter_functions", "available_filter_functions_addrs",
                 "enabled_functions", "touched_functions", "dyn_ftrace_total_info"):
        assert walk(sh.root, name).mode == 0o440
    for name in ("set_ftrace_filter", "set_ftrace_notrace", "set_graph_function",
                 "set_graph_notrace", "max_graph_depth", "set_ftrace_pid"):
        assert walk(sh.root, name).mode == 0o640


def test_event_commands_golden_09(sh):
    k = sh.k
    sh.ok("set_ftrace_filter", "vfs_readv:enable_event:sched:sched_switch:2", append=True)
    sh.ok("set_ftrace_filter", "vfs_writev:disable_event:sched:sched_wakeup", append=True)
    assert sh.cat("set_ftrace_filter") == (
        ALL + "vfs_writev:disable_event:sched:sched_wakeup:unlimited\n"
        "vfs_readv:enable_event:sched:sched_switch:count=2\n")
    assert sh.echo("set_ftrace_filter", "vfs_read:enable_event:nosuch:event", append=True) == errno.EINVAL
    assert sh.echo("set_ftrace_filter", "vfs_read:enable_event:sched", append=True) == errno.EINVAL
    # the soft-mode event is armed but soft-disabled until the function runs
    assert sh.cat("events/sched/sched_switch/enable") == "0*\n"
    k.ftrace.func_entry(k.kallsyms.index_of("vfs_readv"), 0)
    assert sh.cat("events/sched/sched_switch/enable") == "1*\n"
    assert "vfs_readv:enable_event:sched:sched_switch:count=1\n" in sh.cat("set_ftrace_filter")
    assert sh.echo("set_ftrace_filter", "!vfs_readv:enable_event:sched:sched_switch",
                   append=True) == errno.ENODEV
    sh.ok("set_ftrace_filter", "!vfs_readv:enable_event:sched:sched_switch:0", append=True)
    sh.ok("set_ftrace_filter", "!vfs_writev:disable_event:sched:sched_wakeup", append=True)
    assert sh.cat("set_ftrace_filter") == ALL
    # leaving soft mode keeps an event that the probe had enabled (kernel behaviour)
    assert sh.cat("events/sched/sched_switch/enable") == "1\n"


def test_function_tracer_records(sh):
    k = sh.k
    sh.ok("set_ftrace_filter", "vfs_read")
    sh.ok("current_tracer", "function")
    k.syscall_enter(300, "cat", 1, op="read")
    k.syscall_exit()
    sh.ok("tracing_on", "0")
    lines = [s for s in sh.cat("trace").splitlines() if not s.startswith("#")]
    assert lines and all(s.endswith("vfs_read <-ksys_read") for s in lines)
    sh.ok("current_tracer", "nop")
    assert sh.cat("enabled_functions") == ""
