"""Histogram triggers (trace_events_hist.py): parsing, the hist file, errors, sharing.

Expected texts follow event_hist_trigger_print(), hist_trigger_print_key() and
hist_trigger_print_val() of Linux 6.12; error cases follow trigger-hist-syntax-errors.tc
and trigger-hist-expressions.tc (the caret is err_pos(): the first occurrence of the
offending text in ``hist:PARAM``).
"""

from __future__ import annotations

import errno

import pytest

from tracefs_sim.kernel import Kernel
from tracefs_sim.tracefs import build_tree
from tracefs_sim.tracefs.files import read_file, write_errno

KMALLOC = "events/kmem/kmalloc"


class Env:
    def __init__(self) -> None:
        self.k = Kernel(nr_cpus=2, seed=1)
        self.root = build_tree(self.k)
        self.wl = self.k.workload

    def write(self, path: str, text: str, append: bool = False) -> int:
        return write_errno(self.root, path, text, append)

    def read(self, path: str) -> str:
        return read_file(self.root, path).decode()

    def kmalloc(self, call_site: int, bytes_req: int, bytes_alloc: int) -> None:
        self.wl.emit("kmalloc", call_site, 0xFFFF888000001000, bytes_req, bytes_alloc, 0xCC0, -1)

    def errlog_last(self) -> list[str]:
        return self.read("error_log").splitlines()[-3:]


@pytest.fixture
def env() -> Env:
    return Env()


def _entries(hist: str) -> list[str]:
    return [ln for ln in hist.splitlines() if ln.startswith("{")]


def test_basic_hist_and_trigger_text(env):
    assert env.write(f"{KMALLOC}/trigger", "hist:keys=bytes_req:vals=bytes_alloc") == 0
    assert env.read(f"{KMALLOC}/trigger") == (
        "hist:keys=bytes_req:vals=hitcount,bytes_alloc:sort=hitcount:size=2048 [active]\n")
    for req, alloc in ((100, 128), (100, 128), (30, 32), (100, 128)):
        env.kmalloc(0x1000, req, alloc)
    hist = env.read(f"{KMALLOC}/hist")
    assert hist.startswith("# event histogram\n#\n# trigger info: hist:keys=bytes_req:vals="
                           "hitcount,bytes_alloc:sort=hitcount:size=2048 [active]\n#\n\n")
    # sorted by hitcount ascending
    assert _entries(hist) == [
        "{ bytes_req:         30 } hitcount:          1  bytes_alloc:         32",
        "{ bytes_req:        100 } hitcount:          3  bytes_alloc:        384",
    ]
    assert hist.endswith("\nTotals:\n    Hits: 4\n    Entries: 2\n    Dropped: 0\n")


def test_compound_keys_sort_and_modifiers(env):
    cmd = ("hist:keys=bytes_alloc.hex,bytes_req.log2:vals=bytes_req:"
           "sort=bytes_req.descending,bytes_alloc:size=100")
    # a sort key takes only .ascending/.descending
    assert env.write(f"{KMALLOC}/trigger", cmd.replace(",bytes_alloc:", ",bytes_alloc.hex:")) \
        == errno.EINVAL
    assert env.write(f"{KMALLOC}/trigger", cmd) == 0
    assert env.read(f"{KMALLOC}/trigger") == (
        "hist:keys=bytes_alloc.hex,bytes_req.log2:vals=hitcount,bytes_req:"
        "sort=bytes_req.descending,bytes_alloc.hex:size=128 [active]\n")
    for req, alloc in ((5, 8), (60, 64), (33, 64), (1000, 1024)):
        env.kmalloc(0x1000, req, alloc)
    assert _entries(env.read(f"{KMALLOC}/hist")) == [
        "{ bytes_alloc: 400, bytes_req: ~ 2^10 } hitcount:          1  bytes_req:       1000",
        "{ bytes_alloc: 40, bytes_req: ~ 2^6  } hitcount:          2  bytes_req:         93",
        "{ bytes_alloc: 8, bytes_req: ~ 2^3  } hitcount:          1  bytes_req:          5",
    ]


def test_buckets_percent_graph_and_sym(env):
    site = env.k.kallsyms.addr_of("vfs_read") + 0x10
    assert env.write(f"{KMALLOC}/trigger",
                     "hist:keys=bytes_req.buckets=100:vals=bytes_alloc.percent,bytes_req.graph") == 0
    for req, alloc in ((10, 16), (150, 256), (199, 256)):
        env.kmalloc(site, req, alloc)
    assert _entries(env.read(f"{KMALLOC}/hist")) == [
        "{ bytes_req: ~ 0-99 } hitcount:          1  bytes_alloc (%):   3.03"
        "  bytes_req:                     ",
        "{ bytes_req: ~ 100-199 } hitcount:          2  bytes_alloc (%):  96.96"
        "  bytes_req: ####################",
    ]
    assert env.write(f"{KMALLOC}/trigger", "hist:keys=call_site.sym-offset") == 0
    env.kmalloc(site, 1, 8)
    hist = env.read(f"{KMALLOC}/hist")
    assert f"{{ call_site: [{site:x}] {'vfs_read+0x10/' + hex(env.k.kallsyms.lookup_addr(site)[2]):<55} }}" in hist


def test_execname_and_syscall_keys(env):
    assert env.write("events/raw_syscalls/sys_enter/trigger", "hist:keys=id.syscall") == 0
    assert env.write(f"{KMALLOC}/trigger", "hist:keys=common_pid.execname") == 0
    env.wl.syscalls.syscall("read", (3, 0, 10), count=10)
    env.kmalloc(0x1000, 1, 8)
    comm = env.k.sched.current.comm
    pid = env.k.sched.current.pid
    assert f"{{ common_pid: {comm:<16}[{pid:10d}] }}" in env.read(f"{KMALLOC}/hist")
    assert "{ id: sys_read                      [  0] }" in env.read(
        "events/raw_syscalls/sys_enter/hist")
    # any number the table implements is named by its metadata (stat is sys_newstat);
    # one the kernel does not implement (afs_syscall) has none
    tp = env.wl.tp("sys_enter")
    for nr in (4, 110, 183):
        tp.fire(nr, [0] * 6)
    hist = env.read("events/raw_syscalls/sys_enter/hist")
    assert "{ id: sys_newstat                   [  4] }" in hist, hist
    assert "{ id: sys_getppid                   [110] }" in hist, hist
    assert "{ id: unknown_syscall               [183] }" in hist, hist


@pytest.mark.parametrize("expr,value", [
    ("123", 123), ("16-8-4-2", 2), ("64/8/4/2", 1), ("16-8+4+2", 14), ("4*3/2*2", 12),
    # division by a constant multiplies and shifts: 100/3 is 34 as in the kernel
    ("4+3*2-2", 8), ("4+6/2-2", 5), ("100/3", 34), ("1000/7", 143),
])
def test_constant_expressions_fold(env, expr, value):
    trig = "events/sched/sched_process_fork/trigger"
    assert env.write(trig, f"hist:keys=common_pid:x={expr}") == 0
    assert f":x={value}:" in env.read(trig)


@pytest.mark.parametrize("cmd,kind", [
    ("hist:keys=common_pid:vals=bytes_req:sort=common_pid,^junk", "Sort field must be a key or a val"),
    ("hist:keys=common_pid:vals=bytes_req:^sort=", "Empty assignment"),
    ("hist:keys=common_pid:vals=bytes_req:^sort=common_pid,", "Empty sort field"),
    ("hist:keys=common_pid:vals=bytes_req:sort=common_pid.^junk", "Invalid sort modifier"),
    ("hist:keys=common_pid:vals=bytes_req,bytes_alloc:^sort=common_pid,bytes_req,bytes_alloc",
     "Too many sort fields (Max = 2)"),
    ("hist:keys=common_pid:x=32+^10*3/20-4", "Too many subexpressions (3 max)"),
    ("hist:keys=common_pid:x=^1+2+3+4+5", "Too many subexpressions (3 max)"),
    ("hist:keys=common_pid:x=-(^1)+2", "Unary minus not supported in sub-expressions"),
    ("hist:keys=common_pid:x=3/^0", "Division by zero"),
    ("hist:keys=^nosuch", "Couldn't find field"),
    ("hist:keys=common_pid.^junk", "Invalid field modifier"),
])
def test_errors_with_caret(env, cmd, kind):
    caret = cmd.index("^")
    plain = cmd.replace("^", "")
    before = env.read(f"{KMALLOC}/trigger")
    assert env.write(f"{KMALLOC}/trigger", plain, append=True) in (errno.EINVAL, errno.EDOM)
    assert env.read(f"{KMALLOC}/trigger") == before
    loc, command, pointer = env.errlog_last()
    assert loc.endswith(f"hist:kmem:kmalloc: error: {kind}")
    assert command == f"  Command: {plain}"
    assert pointer == " " * (len("  Command: ") + caret) + "^"


def test_named_histograms_share_one_map(env):
    a, b = "events/sched/sched_process_fork/", "events/sched/sched_process_exit/"
    assert env.write(a + "trigger", "hist:name=test_hist:keys=common_pid") == 0
    assert env.write(b + "trigger", "hist:name=test_hist:keys=common_pid") == 0
    assert env.read(a + "trigger").startswith("hist:name=test_hist:keys=common_pid:")
    env.wl.emit("sched_process_exit", "sh", 77, 120, 0)
    assert env.read(a + "hist") == env.read(b + "hist")
    assert "Hits: 1\n" in env.read(a + "hist")
    # a different definition under the same name is refused
    assert env.write(f"{KMALLOC}/trigger", "hist:name=test_hist:keys=bytes_req") == errno.EINVAL
    assert "Named hist trigger doesn't match existing named trigger" in env.read("error_log")


def test_pause_cont_clear_and_remove(env):
    trig = f"{KMALLOC}/trigger"
    assert env.write(trig, "hist:keys=bytes_req") == 0
    assert env.write(trig, "hist:keys=bytes_req", append=True) == errno.EEXIST
    env.kmalloc(0x1000, 1, 8)
    assert env.write(trig, "hist:keys=bytes_req:pause", append=True) == 0
    assert env.read(trig).endswith(" [paused]\n")
    env.kmalloc(0x1000, 1, 8)
    assert "Hits: 1\n" in env.read(f"{KMALLOC}/hist")
    assert env.write(trig, "hist:keys=bytes_req:cont", append=True) == 0
    env.kmalloc(0x1000, 1, 8)
    assert "Hits: 2\n" in env.read(f"{KMALLOC}/hist")
    assert env.write(trig, "hist:keys=bytes_req:clear", append=True) == 0
    assert "Hits: 0\n    Entries: 0\n" in env.read(f"{KMALLOC}/hist")
    assert env.write(trig, "hist:keys=bytes_alloc:clear", append=True) == errno.ENOENT
    # the display line without its [state] removes the trigger, as reset_trigger_file does
    line = env.read(trig).split("[")[0]
    assert env.write(trig, "!" + line, append=True) == 0
    assert env.read(trig).startswith("# Available triggers:")
    assert env.read(f"{KMALLOC}/hist") == ""


def test_filter_and_trace_marker(env):
    assert env.write(f"{KMALLOC}/trigger", "hist:keys=bytes_req if bytes_req > 50") == 0
    assert env.read(f"{KMALLOC}/trigger").endswith(" if bytes_req > 50 [active]\n")
    for req in (10, 60, 70):
        env.kmalloc(0x1000, req, 128)
    assert len(_entries(env.read(f"{KMALLOC}/hist"))) == 2
    assert env.write("events/ftrace/print/trigger", "hist:keys=common_pid") == 0
    for _ in range(10):
        env.write("trace_marker", "hello\n")
    assert "hitcount:         10\n" in env.read("events/ftrace/print/hist")


def test_variable_reference_needs_the_variable_set(env):
    """A reference to another hist's variable resolves against the element with the same
    key; while it is unset the event does not count (resolve_var_refs())."""
    assert env.write("events/sched/sched_waking/trigger",
                     "hist:keys=pid:ts0=common_timestamp.usecs") == 0
    assert env.write("events/sched/sched_wakeup/trigger",
                     "hist:keys=pid:lat=common_timestamp.usecs-$ts0") == 0
    assert ":lat=common_timestamp.usecs-$ts0:" in env.read("events/sched/sched_wakeup/trigger")
    env.wl.emit("sched_wakeup", "a", 42, 120, 1)           # no ts0 for pid 42 yet
    assert "Hits: 0\n" in env.read("events/sched/sched_wakeup/hist")
    env.wl.emit("sched_waking", "a", 42, 120, 1)
    env.wl.emit("sched_wakeup", "a", 42, 120, 1)
    assert "{ pid:         42 } hitcount:          1" in env.read("events/sched/sched_wakeup/hist")
    # a variable in use cannot be defined twice on one event
    assert env.write("events/sched/sched_waking/trigger",
                     "hist:keys=prio:ts0=common_timestamp", append=True) == errno.EINVAL
    assert "Variable already defined" in env.read("error_log")


def test_onmatch_generates_the_synthetic_event(env):
    """trace-marker-synthetic: start/end markers of one pid → a latency synthetic event."""
    assert env.write("synthetic_events", "latency u64 lat; pid_t pid") == 0
    assert env.write("events/synthetic/latency/enable", "1") == 0
    assert env.write("events/ftrace/print/trigger",
                     'hist:keys=common_pid:ts0=common_timestamp.usecs if buf == "start"') == 0
    act = ('hist:keys=common_pid:lat=common_timestamp.usecs-$ts0:'
           'onmatch(ftrace.print).latency($lat) if buf == "end"')
    # the action's parameter count must match the synthetic event's fields
    assert env.write("events/ftrace/print/trigger", act, append=True) == errno.EINVAL
    assert "Param count doesn't match synthetic event field count" in env.read("error_log")
    # and their types: an unsigned long is no pid_t
    act = act.replace("latency($lat)", "trace(latency,$lat,ip)")
    assert env.write("events/ftrace/print/trigger", act, append=True) == errno.EINVAL
    assert "Param type doesn't match synthetic event field type" in env.read("error_log")
    act = act.replace("trace(latency,$lat,ip)", "trace(latency,$lat,common_pid)")
    assert env.write("events/ftrace/print/trigger", act, append=True) == 0
    assert ":onmatch(ftrace.print).trace(latency,$lat,common_pid) if buf" in env.read(
        "events/ftrace/print/trigger")
    assert env.write("events/synthetic/latency/trigger", "hist:keys=lat") == 0
    env.write("trace_marker", "end")            # no start yet: nothing
    env.write("trace_marker", "start")
    env.write("trace_marker", "end")
    lines = [ln for ln in env.read("trace").splitlines() if "latency:" in ln]
    pid = env.k.sched.current.pid
    assert len(lines) == 1 and lines[0].endswith(f" pid={pid}"), lines
    lat = int(lines[0].split("lat=")[1].split()[0])
    assert f"{{ lat: {lat:10d} }} hitcount:          1" in env.read("events/synthetic/latency/hist")


def test_onmatch_refuses_save_and_snapshot(env):
    trig = "events/sched/sched_waking/trigger"
    assert env.write(trig, "hist:keys=comm:onmatch(sched.sched_wakeup).snapshot()", True) \
        == errno.EINVAL
    loc, command, pointer = env.errlog_last()
    assert loc.endswith("hist:sched:sched_waking: error: Handler doesn't support action")
    assert pointer.index("^") - len("  Command: ") == command.index("snapshot") - len("  Command: ")


def test_onmax_saves_fields_and_prints_the_max(env):
    assert env.write("events/sched/sched_waking/trigger",
                     "hist:keys=pid:ts0=common_timestamp.usecs") == 0
    assert env.write("events/sched/sched_wakeup/trigger",
                     "hist:keys=pid:lat=common_timestamp.usecs-$ts0:onmax($lat).save(comm,prio)") == 0
    for prio in (120, 99):
        env.wl.emit("sched_waking", "pinger", 42, prio, 1)
        env.wl.emit("sched_wakeup", "pinger", 42, prio, 1)
    hist = env.read("events/sched/sched_wakeup/hist")
    assert "\n\tmax: " in hist
    assert "  comm: pinger                            prio:        " in hist


def test_remote_field_variable_hist(env):
    assert env.write("synthetic_events", "wl u64 lat; int prio") == 0
    assert env.write("events/sched/sched_waking/trigger",
                     "hist:keys=pid:ts0=common_timestamp.usecs") == 0
    act = ("hist:keys=pid:lat=common_timestamp.usecs-$ts0:"
           "onmatch(sched.sched_waking).wl($lat,sched.sched_waking.prio)")
    assert env.write("events/sched/sched_wakeup/trigger", act) == 0
    assert "synthetic_prio=prio" in env.read("events/sched/sched_waking/hist")
    assert env.write("events/sched/sched_wakeup/trigger", "!" + act, append=True) == 0
    assert "synthetic_prio=prio" not in env.read("events/sched/sched_waking/hist")


def test_hist_file_polls_for_new_hits(env):
    """event_hist_poll(): readable while hits happened since the last read; POLLPRI once
    per new hit count; the wait queue wakes pollers on a hit."""
    import os
    import select

    from tracefs_sim.tracefs.node import OpenMode, walk

    assert env.write(f"{KMALLOC}/trigger", "hist:keys=bytes_req") == 0
    f = walk(env.root, f"{KMALLOC}/hist").open(OpenMode.from_flags(os.O_RDONLY))
    assert f.poll() == 0
    woken = []
    f.wait_queue.add(lambda: woken.append(1))
    env.kmalloc(0x1000, 1, 8)
    assert woken
    assert f.poll() == select.POLLIN | select.POLLRDNORM | select.POLLPRI
    assert f.poll() == select.POLLIN | select.POLLRDNORM        # PRI once per count
    assert b"Hits: 1\n" in f.read(0, 65536)
    assert f.poll() == 0
