"""Trace events: formats, ids, set_event, enable files, filters, triggers, printers."""

from __future__ import annotations

import errno
import gzip
import re
import struct
from pathlib import Path

import pytest

from tracefs_sim.kernel import Kernel
from tracefs_sim.kernel.errors import KernelError
from tracefs_sim.kernel.trace_events import split_formats
from tracefs_sim.tracefs import trace_files
from tracefs_sim.tracefs.files import read_file, write_file
from tracefs_sim.tracefs.node import READ_ONLY, WRITE_TRUNC, walk

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tracefs_sim" / "data"


@pytest.fixture
def k() -> Kernel:
    return Kernel(nr_cpus=2, seed=1)


@pytest.fixture
def root(k: Kernel):
    return trace_files.build_top_level(k)


def rd(root, path: str) -> str:
    return read_file(root, path).decode()


def wr(root, path: str, data: str, append: bool = False) -> None:
    write_file(root, path, data, append=append)


def err_of(fn) -> int:
    with pytest.raises(KernelError) as ei:
        fn()
    return ei.value.args[0]


# ------------------------------------------------------------------ formats and ids
def test_every_format_file_is_byte_identical(root) -> None:
    blob = gzip.decompress((DATA / "events.txt.gz").read_bytes())
    recs = split_formats(blob)
    assert len(recs) == 1527
    for system, name, type_id, text in recs:
        assert read_file(root, f"events/{system}/{name}/format") == text, f"{system}/{name}"
        assert rd(root, f"events/{system}/{name}/id") == f"{type_id}\n"


def test_available_events_and_headers(root) -> None:
    assert read_file(root, "available_events") == (DATA / "available_events.txt").read_bytes()
    assert read_file(root, "events/header_page") == (DATA / "header_page").read_bytes()
    assert read_file(root, "events/header_event") == (DATA / "header_event").read_bytes()
    assert rd(root, "events/enable") == "0\n"


def test_tree_modes_and_nlink(root) -> None:
    ev = walk(root, "events")
    assert ev.mode == 0o755 and ev.nlink() == 1
    names = [n for n, _ in ev.entries()]
    assert names[:3] == ["enable", "header_page", "header_event"] and "sched" in names
    sched = walk(root, "events/sched")
    assert sched.nlink() == 1
    assert {n: node.mode for n, node in walk(root, "events/sched/sched_switch").entries()} == {
        "enable": 0o640, "filter": 0o640, "trigger": 0o640, "format": 0o440, "id": 0o440,
        "hist": 0o440}
    assert [n for n, _ in walk(root, "events/ftrace/function").entries()] == ["format", "id", "hist"]
    assert "trigger" in dict(walk(root, "events/ftrace/print").entries())
    assert "enable" not in dict(walk(root, "events/ftrace").entries())
    assert walk(root, "events/sched/enable").mode == 0o640
    assert err_of(lambda: ev.mkdir("foo")) == errno.EPERM


# ------------------------------------------------------------------ set_event (golden 23)
def test_set_event_golden(root) -> None:
    assert rd(root, "set_event") == ""
    wr(root, "set_event", "sched:sched_switch\n")
    assert rd(root, "set_event") == "sched:sched_switch\n"
    assert rd(root, "events/sched/sched_switch/enable") == "1\n"
    assert rd(root, "events/sched/enable") == "X\n"
    assert rd(root, "events/enable") == "X\n"
    wr(root, "set_event", "sched:sched_wakeup\n", append=True)
    wr(root, "set_event", "!sched:sched_switch\n", append=True)
    assert rd(root, "set_event") == "sched:sched_wakeup\n"
    wr(root, "set_event", "irq:*\n", append=True)
    wr(root, "set_event", "sched_process_fork\n", append=True)
    assert rd(root, "set_event").splitlines() == [
        "irq:tasklet_exit", "irq:tasklet_entry", "irq:softirq_raise", "irq:softirq_exit",
        "irq:softirq_entry", "irq:irq_handler_exit", "irq:irq_handler_entry",
        "sched:sched_process_fork", "sched:sched_wakeup"]
    wr(root, "set_event", "\n")
    assert rd(root, "set_event") == ""
    wr(root, "set_event", "*:sched_switch\n")
    wr(root, "set_event", "timer\n", append=True)
    assert len(rd(root, "set_event").splitlines()) == 15
    wr(root, "set_event", "!timer:*\n", append=True)
    assert rd(root, "set_event") == "sched:sched_switch\n"
    wr(root, "set_event", "sched:sched_switch sched:sched_wakeup\n")
    assert rd(root, "set_event") == "sched:sched_switch\nsched:sched_wakeup\n"
    for bad in ("nosuch:event", "sched:nosuchevent", "nosuchevent"):
        assert err_of(lambda b=bad: wr(root, "set_event", b + "\n", append=True)) == errno.EINVAL
    assert rd(root, "error_log") == ""


def test_enable_files_golden(root) -> None:
    wr(root, "events/sched/enable", "1\n")
    assert rd(root, "events/sched/enable") == "1\n"
    assert len(rd(root, "set_event").splitlines()) == 29
    wr(root, "events/sched/sched_switch/enable", "0\n")
    assert rd(root, "events/sched/enable") == "X\n"
    assert err_of(lambda: wr(root, "events/sched/sched_switch/enable", "2\n")) == errno.EINVAL
    assert err_of(lambda: wr(root, "events/sched/enable", "X\n")) == errno.EINVAL
    wr(root, "events/enable", "0\n")
    assert rd(root, "events/enable") == "0\n"
    assert rd(root, "events/sched/sched_switch/enable") == "0\n"


def test_set_event_pid_golden(root) -> None:
    assert rd(root, "set_event_pid") == ""
    wr(root, "set_event_pid", "1\n")
    wr(root, "set_event_pid", "2\n", append=True)
    assert rd(root, "set_event_pid") == "1\n2\n"
    assert err_of(lambda: wr(root, "set_event_pid", "abc\n")) == errno.EINVAL
    wr(root, "set_event_pid", "\n")
    assert rd(root, "set_event_pid") == ""
    assert rd(root, "set_event_notrace_pid") == ""


def test_instance_has_own_event_state(k: Kernel, root) -> None:
    walk(root, "instances").mkdir("foo")
    wr(root, "instances/foo/events/sched/sched_switch/enable", "1\n")
    assert rd(root, "instances/foo/set_event") == "sched:sched_switch\n"
    assert rd(root, "set_event") == ""
    assert k.events.tracepoint("sched_switch").enabled
    walk(root, "instances").rmdir("foo")
    assert not k.events.tracepoint("sched_switch").enabled


@pytest.mark.parametrize("path", ["events/sched/sched_switch/enable", "events/sched/enable",
                                  "events/enable", "events/sched/sched_switch/hist", "trace",
                                  "set_ftrace_filter", "options/overwrite",
                                  "per_cpu/cpu1/trace_pipe_raw", "trace_marker",
                                  "tracing_max_latency"])
def test_an_open_file_keeps_its_instance(k: Kernel, root, path: str) -> None:
    """trace_array_get() at open: rmdir is EBUSY until the last such file is released,
    and a write through a descriptor kept past the rmdir cannot reach the freed
    instance (a file of it opened later gets ENODEV)."""
    inst = walk(root, "instances")
    inst.mkdir("foo")
    node = walk(root, f"instances/foo/{path}")
    of = node.open(READ_ONLY)
    assert err_of(lambda: inst.rmdir("foo")) == errno.EBUSY
    assert walk(root, "instances").lookup("foo") is not None
    of.release()
    of.release()        # a second release does not drop a second reference
    enable = walk(root, "instances/foo/events/sched/sched_switch/enable")
    inst.rmdir("foo")
    assert err_of(lambda: enable.open(WRITE_TRUNC)) == errno.ENODEV
    assert not k.events.tracepoint("sched_switch").files


def test_files_whose_open_takes_no_instance_reference(root) -> None:
    inst = walk(root, "instances")
    inst.mkdir("foo")
    held = [walk(root, f"instances/foo/{p}").open(READ_ONLY)
            for p in ("events/sched/sched_switch/format",
                      "events/sched/sched_switch/id", "events/sched/sched_switch/trigger",
                      "events/header_page")]
    inst.rmdir("foo")
    for of in held:
        of.release()


# ------------------------------------------------------------------ filters
FILTER = "events/sched/sched_switch/filter"


@pytest.mark.parametrize(("text", "code", "caret", "msg"), [
    ("foo == 1", errno.EINVAL, 4, "Field not found"),
    ("prev_pid = 1", errno.EINVAL, 10, "Invalid operator"),
    ("prev_comm == 1", errno.EINVAL, 14, "Expecting string field"),
    ("prev_pid == \"x\"", errno.EINVAL, 13, "Expecting numeric field"),
    ("(prev_pid == 1", errno.ENOENT, 0, "Too many '('"),
    ("prev_pid == 1)", errno.EPERM, 13, "Too few '('"),
    ("prev_pid == 1 &&", errno.EINVAL, 16, "Meaningless filter expression"),
    ("prev_pid == abc", errno.EINVAL, 13, "Invalid value (did you forget quotes)?"),
    ("prev_comm == \"bash", errno.ESRCH, 13, "Missing matching quote"),
])
def test_filter_errors(root, text: str, code: int, caret: int, msg: str) -> None:
    assert err_of(lambda: wr(root, FILTER, text + "\n")) == code
    assert rd(root, FILTER) == f"{text}\n{' ' * caret}^\nparse_error: {msg}\n\n"
    log = rd(root, "error_log")
    assert f"event filter parse error: error: {msg}\n  Command: {text}\n" in log


@pytest.mark.parametrize("base", ["common_pid == 1", "common_pid == 1 || common_pid == 2",
                                  "common_pid == 1 && common_pid == 2",
                                  "!(common_pid == 1 || common_pid == 2)"])
def test_filter_incomplete_rejected(root, base: str) -> None:
    wr(root, FILTER, base)
    for tail in ("&&", "||", "&& !", "|| !", "&& !! ", "|| !! "):
        with pytest.raises(KernelError):
            wr(root, FILTER, f"{base} {tail}")


def test_filter_accept_and_clear(root) -> None:
    assert rd(root, FILTER) == "none\n"
    wr(root, FILTER, "prev_comm ~ \"ba*\" && next_pid > 0 || CPU == 1\n")
    assert rd(root, FILTER) == "prev_comm ~ \"ba*\" && next_pid > 0 || CPU == 1\n"
    wr(root, FILTER, "0\n")
    assert rd(root, FILTER) == "none\n"
    assert rd(root, "events/sched/filter").startswith("### global filter ###\n")


def _switch_rec(k: Kernel, prev_pid: int, next_pid: int, comm: str = "bash") -> bytearray:
    call = k.events.find_event("sched", "sched_switch")
    return call.packer.pack((comm, prev_pid, 120, 1, "swapper/0", next_pid, 120))


@pytest.mark.parametrize(("text", "expect"), [
    ("prev_pid == 5", [True, False]),
    ("prev_pid != 5", [False, True]),
    ("prev_pid > 5 && next_pid < 3", [False, True]),
    ("!(prev_pid == 5) || next_pid == 0", [True, True]),
    ("prev_comm == \"bash\"", [True, False]),
    ("prev_comm ~ \"b*\"", [True, False]),
    ("prev_comm ~ \"*as*\"", [True, False]),
    ("prev_state & 1", [True, True]),
    ("prev_pid & CPUS{5}", [True, False]),
])
def test_filter_predicates(k: Kernel, text: str, expect: list[bool]) -> None:
    from tracefs_sim.kernel.trace_events_filter import compile_filter

    call = k.events.find_event("sched", "sched_switch")
    pred = compile_filter(call, text, k)
    recs = [_switch_rec(k, 5, 0, "bash"), _switch_rec(k, 7, 1, "cat")]
    assert [pred(r, 0) for r in recs] == expect


def test_filter_applies_to_recorded_events(k: Kernel, root) -> None:
    wr(root, "events/sched/sched_switch/enable", "1\n")
    wr(root, FILTER, "next_pid == 0\n")
    # a seeded kernel lets a jiffy pass every fourth call; a kernel thread's timer wakes
    # it within two seconds: switched to, then back to idle (only that switch passes)
    lines: list[str] = []
    for _ in range(8 * 250):
        k.workload.catch_up()
        lines = [ln for ln in rd(root, "trace").splitlines() if "sched_switch:" in ln]
        if lines:
            break
    assert lines and all("next_pid=0 " in ln for ln in lines)


# ------------------------------------------------------------------ triggers
TRIG = "events/sched/sched_switch/trigger"


def test_trigger_file(k: Kernel, root) -> None:
    avail = ("# Available triggers:\n# traceon traceoff snapshot stacktrace enable_event "
             "disable_event enable_hist disable_hist hist\n")
    assert rd(root, TRIG) == avail
    wr(root, TRIG, "traceoff:3 if prev_pid == 0\n")
    assert rd(root, TRIG) == "traceoff:count=3 if prev_pid == 0\n"
    assert rd(root, "events/sched/sched_switch/enable") == "0*\n"
    assert err_of(lambda: wr(root, TRIG, "traceoff\n", append=True)) == errno.EEXIST
    wr(root, TRIG, "enable_event:sched:sched_wakeup\n", append=True)
    assert rd(root, "events/sched/sched_wakeup/enable") == "0*\n"
    assert rd(root, TRIG).splitlines() == ["enable_event:sched:sched_wakeup:unlimited",
                                           "traceoff:count=3 if prev_pid == 0"]
    assert err_of(lambda: wr(root, TRIG, "nosuch\n", append=True)) == errno.EINVAL
    wr(root, TRIG, "!traceoff\n", append=True)
    wr(root, TRIG, "!enable_event:sched:sched_wakeup\n", append=True)
    assert rd(root, TRIG) == avail
    assert rd(root, "events/sched/sched_wakeup/enable") == "0\n"


def test_traceoff_trigger_fires(k: Kernel, root) -> None:
    wr(root, TRIG, "traceoff\n")
    assert k.trace.global_trace.is_on()
    for _ in range(8 * 250):    # until a kernel thread's timer wakes it (seeded: 2 s)
        k.workload.catch_up()
        if not k.trace.global_trace.is_on():
            break
    assert not k.trace.global_trace.is_on()
    assert rd(root, "set_event") == ""


# ------------------------------------------------------------------ printing
def _line(k: Kernel, system: str, name: str, values: tuple) -> str:
    call = k.events.find_event(system, name)
    rec = call.packer.pack(values)
    struct.pack_into("<H", rec, 0, call.type_id)
    return call.format_line(rec, 0, len(rec), k)


def test_printers(k: Kernel) -> None:
    assert _line(k, "sched", "sched_switch", ("bash", 178, 120, 0x20, "swapper/0", 0, 120)) == (
        "sched_switch: prev_comm=bash prev_pid=178 prev_prio=120 prev_state=Z ==> "
        "next_comm=swapper/0 next_pid=0 next_prio=120")
    assert _line(k, "sched", "sched_switch", ("sh", 170, 120, 0, "x", 1, 120)).count("prev_state=R ")
    assert _line(k, "sched", "sched_switch", ("sh", 170, 120, 0x100, "x", 1, 120)).count("prev_state=R+")
    assert _line(k, "sched", "sched_wakeup", ("cat", 5, 120, 1)) == (
        "sched_wakeup: comm=cat pid=5 prio=120 target_cpu=001")
    assert _line(k, "irq", "softirq_entry", (9,)) == "softirq_entry: vec=9 [action=RCU]"
    assert _line(k, "irq", "irq_handler_entry", (24, "virtio0")) == (
        "irq_handler_entry: irq=24 name=virtio0")
    assert _line(k, "raw_syscalls", "sys_enter", (0, [3, 0x7FFC, 4096, 0, 0, 0])) == (
        "sys_enter: NR 0 (3, 7ffc, 1000, 0, 0, 0)")
    addr = k.kallsyms.addr_of("vfs_read")
    kmalloc = _line(k, "kmem", "kmalloc", (addr + 5, 0xFFFF888000001000, 64, 64, 0xCC0, -1))
    assert kmalloc.startswith("kmalloc: call_site=vfs_read+0x5/")
    assert "bytes_req=64 bytes_alloc=64 gfp_flags=GFP_KERNEL node=-1" in kmalloc
    expire = _line(k, "timer", "timer_expire_entry", (0xFFFF888000002000, 4294937296, addr, 4294937295))
    assert expire.startswith("timer_expire_entry: timer=")
    assert "function=vfs_read now=4294937296 baseclk=4294937295" in expire


def test_syscall_printers(k: Kernel, root) -> None:
    wr(root, "set_event", "syscalls:sys_enter_openat syscalls:sys_exit_openat\n")
    k.events.tracepoint("sys_enter_openat").fire(257, -100, 0x7FFC, 0, 0)
    k.events.tracepoint("sys_exit_openat").fire(257, 3)
    text = rd(root, "trace")
    assert "sys_openat(dfd: ffffffffffffff9c, filename: 7ffc, flags: 0, mode: 0)\n" in text
    assert "sys_openat -> 0x3\n" in text


def test_marker_line(root) -> None:
    wr(root, "trace_marker", "hello")
    assert re.search(r": tracing_mark_write: hello\n", rd(root, "trace"))


# ------------------------------------------------------------------ dynamic events
def test_add_remove_event_call(k: Kernel, root) -> None:
    from tracefs_sim.kernel.trace_events import EventCall
    from tracefs_sim.kernel.trace_events_h import Field

    regs: list[int] = []

    def reg(call, type_, file) -> int:
        regs.append(type_)
        return 0

    ext = EventCall("mygrp", "myev", flags=0, reg=reg)
    ext.set_format([Field("unsigned long", "__probe_ip", 8, 8, False), Field("int", "x", 16, 4, True)],
                   '"(%lx) x=%d", REC->__probe_ip, REC->x')
    assert k.events.add_event_call(ext) == 0
    assert ext.type_id == 1529
    assert k.events.add_event_call(ext) == -errno.EEXIST
    assert rd(root, "available_events").startswith("mygrp:myev\n")
    fmt = rd(root, "events/mygrp/myev/format")
    assert fmt.startswith("name: myev\nID: 1529\nformat:\n")
    assert "\tfield:int x;\toffset:16;\tsize:4;\tsigned:1;\n\nprint fmt: \"(%lx) x=%d\"" in fmt
    wr(root, "events/mygrp/myev/enable", "1\n")
    assert regs == [0]
    assert k.events.remove_event_call(ext) == -errno.EBUSY
    f = walk(root, "events/mygrp/myev/id").open(READ_ONLY)
    wr(root, "events/mygrp/myev/enable", "0\n")
    assert k.events.remove_event_call(ext) == -errno.EBUSY   # file open
    f.release()
    assert k.events.remove_event_call(ext) == 0
    assert k.trace.global_trace.clear_trace
    assert walk(root, "events").lookup("mygrp") is None
    assert k.events.alloc_id() == 1529


def test_set_event_trunc_clears(root) -> None:
    wr(root, "set_event", "sched:sched_switch\n")
    walk(root, "set_event").open(WRITE_TRUNC).release()
    assert rd(root, "set_event") == ""
