"""fprobe, tprobe and eprobe events end to end through the tree (no FUSE).

``dynamic_events`` definitions, the events/GRP/EVENT directories, enabling, the trace
lines the workload's calls produce (entry, return, BTF arguments, tracepoint probes
through ``__probestub_*``, event probes on another event's records), the busy rules and
removal.  Texts follow golden 12-dynamic_events.txt and Documentation/trace/fprobetrace.rst
of 6.12.
"""

from __future__ import annotations

import errno
import re

import pytest

from tracefs_sim.kernel import Kernel
from tracefs_sim.tracefs import build_tree
from tracefs_sim.tracefs.files import read_file, write_errno, write_file
from tracefs_sim.tracefs.node import READ_ONLY, walk

EBUSY, ENOENT, EEXIST, EINVAL = errno.EBUSY, errno.ENOENT, errno.EEXIST, errno.EINVAL
LINE = re.compile(r"^\s*(?P<comm>\S+)-(?P<pid>\d+)\s+\[(?P<cpu>\d{3})\] (?P<flags>.{5})\s+"
                  r"\d+\.\d{6}: (?P<body>.*)$")


class Env:
    def __init__(self) -> None:
        self.k = Kernel(nr_cpus=2, seed=1)
        self.root = build_tree(self.k)

    def write(self, path: str, text: str, append: bool = True) -> int:
        """``echo TEXT >> path`` (``>`` without append): 0 or the errno."""
        return write_errno(self.root, path, text, append)

    def read(self, path: str) -> str:
        return read_file(self.root, path).decode()

    def syscall(self, op: str, name: str, count: int = 0, pid: int = 1234, comm: str = "cat",
                cpu: int = 1) -> None:
        """One request of the mount: the syscall's kernel path runs as ``comm``."""
        self.k.syscall_enter(pid, comm, cpu, op=op, name=name, count=count)
        self.k.syscall_exit(count)

    def ls(self, path: str) -> list[str]:
        return sorted(name for name, _ in walk(self.root, path).entries())

    def lines(self, event: str | None = None) -> list[re.Match]:
        out = []
        for line in self.read("trace").splitlines():
            m = LINE.match(line)
            if m and (event is None or m["body"].startswith(event + ":")):
                out.append(m)
        return out


@pytest.fixture
def env() -> Env:
    return Env()


def test_define_show_and_event_dir(env):
    assert env.write("dynamic_events", "f:myprobe vfs_read count=$arg3\n") == 0
    assert env.write("dynamic_events", "f vfs_read%return $retval\n") == 0
    assert env.write("dynamic_events", "f:grp/ev vfs_write $arg*\n") == 0
    assert env.read("dynamic_events") == (
        "f:fprobes/myprobe vfs_read count=$arg3\n"
        "f:fprobes/vfs_read__exit vfs_read%return arg1=$retval\n"
        "f:grp/ev vfs_write file=file buf=buf count=count pos=pos\n")
    assert env.read("kprobe_events") == ""
    assert env.ls("events/fprobes/myprobe") == ["enable", "filter", "format", "hist", "id", "trigger"]
    assert env.ls("events/fprobes") == \
        ["enable", "filter", "myprobe", "vfs_read__exit"]
    fmt = env.read("events/fprobes/myprobe/format")
    assert "\tfield:unsigned long __probe_ip;\toffset:8;\tsize:8;\tsigned:0;\n" in fmt
    assert "\tfield:u64 count;\toffset:16;\tsize:8;\tsigned:0;\n" in fmt
    assert fmt.endswith('print fmt: "(%lx) count=0x%Lx", REC->__probe_ip, REC->count\n')
    assert env.read("events/fprobes/vfs_read__exit/format").endswith(
        'print fmt: "(%lx <- %lx) arg1=%Ld", REC->__probe_func, REC->__probe_ret_ip, '
        'REC->arg1\n')
    assert env.read("events/grp/ev/format").endswith(
        'print fmt: "(%lx) file=0x%Lx buf=0x%Lx count=%Lu pos=0x%Lx", REC->__probe_ip, '
        'REC->file, REC->buf, REC->count, REC->pos\n')
    ident = int(env.read("events/fprobes/myprobe/id"))
    assert f"ID: {ident}\n" in fmt
    avail = env.read("available_events").splitlines()
    assert {"fprobes:myprobe", "fprobes:vfs_read__exit", "grp:ev"} <= set(avail)


def test_entry_line_as_62_prints_it(env):
    env.write("dynamic_events", "f:myprobe vfs_read count name=file->f_path.dentry->d_name.name:string\n")
    assert env.write("events/fprobes/myprobe/enable", "1") == 0
    env.syscall("read", "hello.txt", 131072)
    (m,) = env.lines("myprobe")
    assert (m["comm"], m["pid"], m["cpu"]) == ("cat", "1234", "001")
    # one fprobe on the site: its own trampoline; the recursion lock's preempt_disable is
    # discounted by trace_event_buffer_reserve()
    assert m["flags"] == "....."
    assert m["body"] == 'myprobe: (vfs_read+0x4/0x370) count=131072 name="hello.txt"'


def test_return_probe_sees_the_syscall_result(env):
    env.write("dynamic_events", "f:myret vfs_read%return $retval count\n")
    env.write("events/fprobes/myret/enable", "1")
    env.syscall("read", "x", 4000)
    (m,) = env.lines("myret")
    assert m["flags"] == "...1."     # rethook handler + recursion lock - reserve
    assert re.fullmatch(r"myret: \(ksys_read\+0x[0-9a-f]+/0xf0 <- vfs_read\) arg1=4000 count=4000",
                        m["body"])


def test_shared_site_goes_through_the_list_func(env):
    env.write("dynamic_events", "f:a vfs_read\n")
    env.write("dynamic_events", "f:b vfs_read\n")
    env.write("events/fprobes/enable", "1")
    assert "vfs_read (2) R          ->arch_ftrace_ops_list_func+0x0/0x1d0\n" in \
        env.read("enabled_functions")
    env.syscall("read", "x", 10)
    assert [m["flags"] for m in env.lines()] == ["...1.", "...1."]


def test_one_fprobe_has_its_trampoline_in_enabled_functions(env):
    env.write("dynamic_events", "f:myprobe vfs_write\n")
    line = env.read("enabled_functions")   # registered (disabled) at creation
    assert re.fullmatch(r"vfs_write \(1\) R         \ttramp: 0x[0-9a-f]+ \(fprobe_handler\+0x0/0x240\)"
                        r" ->fprobe_handler\+0x0/0x240\n", line)


def test_pd_and_pD_print_the_file_name(env):
    env.write("dynamic_events", "f:p1 vfs_read name=$arg1:%pD\n")
    env.write("dynamic_events", "f:p2 dput d=$arg1:%pd\n")
    env.write("events/fprobes/enable", "1")
    env.syscall("read", "notes.txt", 5)
    env.syscall("close", "notes.txt")
    assert env.read("dynamic_events").splitlines()[0] == \
        "f:fprobes/p1 vfs_read name=+0x0(+0x28(+0x48($arg1))):string"
    bodies = [m["body"] for m in env.lines()]
    assert 'p1: (vfs_read+0x4/0x370) name="notes.txt"' in bodies
    assert any(b.startswith("p2: (dput+0x4/") and b.endswith(' d="notes.txt"') for b in bodies)


def test_tprobe_fires_from_the_workload(env):
    assert env.write("dynamic_events", "t:mytp sched_switch prev_pid=prev->pid "
                     "comm=next->comm:string prev_state\n") == 0
    assert env.read("dynamic_events") == \
        "t:tracepoints/mytp sched_switch prev_pid=prev->pid comm=next->comm:string " \
        "prev_state=prev_state\n"
    assert env.read("events/tracepoints/mytp/format").endswith(
        'print fmt: "(%lx) prev_pid=%d comm=\\"%s\\" prev_state=%u", REC->__probe_ip, '
        'REC->prev_pid, __get_str(comm), REC->prev_state\n')
    # the stub is probed from creation on: it shows in enabled_functions
    assert env.read("enabled_functions").startswith("__probestub_sched_switch (1) R ")
    env.write("events/tracepoints/mytp/enable", "1")
    env.syscall("read", "x", 1, pid=4321, comm="probe-me")
    lines = env.lines("mytp")
    assert lines, env.read("trace")
    m = lines[0]
    assert m["flags"] == "d..3."    # sched_switch's call site (2) + the tracepoint
    assert m["body"] == \
        'mytp: (__probestub_sched_switch+0x4/0x10) prev_pid=0 comm="probe-me" prev_state=0'


def test_second_tprobe_on_a_tracepoint_is_eexist_without_log(env):
    assert env.write("dynamic_events", "t:mytp sched_switch\n") == 0
    assert env.write("dynamic_events", "t:mytp2 sched_switch prev_pid=prev->pid\n") == EEXIST
    assert env.read("error_log") == ""
    assert env.write("dynamic_events", "-:tracepoints/mytp\n") == 0
    assert env.write("dynamic_events", "t:mytp2 sched_switch prev_pid=prev->pid\n") == 0


def test_tprobe_args_star_and_stub_regs(env):
    env.write("dynamic_events", "t sched_process_fork $arg*\n")
    assert env.read("dynamic_events") == \
        "t:tracepoints/sched_process_fork sched_process_fork parent=parent child=child\n"
    assert env.write("dynamic_events", "-:tracepoints/sched_process_fork\n") == 0
    assert env.write("dynamic_events", "t:f2 sched_process_fork ppid=parent->pid "
                     "cpid=child->pid\n") == 0
    env.write("events/tracepoints/enable", "1")
    env.write("events/sched/sched_process_fork/enable", "1")
    wl = env.k.workload
    for _ in range(400):
        wl.catch_up()
        if env.lines("f2"):
            break
    forks = env.lines("sched_process_fork")
    f2 = env.lines("f2")
    assert forks and f2
    pids = re.search(r"pid=(\d+) child_comm=\S+ child_pid=(\d+)", forks[0]["body"]).groups()
    assert f2[0]["body"].endswith(f"ppid={pids[0]} cpid={pids[1]}")


def test_busy_rules_and_removal(env):
    env.write("dynamic_events", "f:myprobe vfs_read\n")
    env.write("dynamic_events", "f:other vfs_write\n")
    env.write("events/fprobes/myprobe/enable", "1")
    assert env.read("events/fprobes/enable") == "X\n"
    assert env.write("dynamic_events", "-:myprobe\n") == EBUSY
    assert env.write("dynamic_events", "", append=False) == EBUSY   # O_TRUNC fails the open
    assert env.read("error_log") == ""
    assert env.write("dynamic_events", "-:nosuch\n") == ENOENT
    assert env.write("dynamic_events", "-:fprobes/other vfs_read\n") == ENOENT
    env.write("events/fprobes/myprobe/enable", "0")
    # an open file of the event keeps it (trace_event_dyn_busy)
    f = walk(env.root, "events/fprobes/myprobe/format").open(READ_ONLY)
    assert env.write("dynamic_events", "-:myprobe\n") == EBUSY
    f.release()
    assert env.write("dynamic_events", "-:myprobe\n") == 0
    assert "myprobe" not in env.ls("events/fprobes")
    assert env.write("dynamic_events", "-:fprobes/other vfs_write\n") == 0
    assert env.read("dynamic_events") == ""
    env.write("dynamic_events", "f:x vfs_read\n")
    assert env.write("dynamic_events", "", append=False) == 0
    assert env.read("dynamic_events") == ""
    assert "fprobes" not in env.ls("events")


def test_set_event_and_group_enable(env):
    env.write("dynamic_events", "f:a vfs_read\n")
    env.write("dynamic_events", "t:b sched_switch\n")
    assert env.write("set_event", "fprobes:a\n") == 0
    assert env.read("set_event") == "fprobes:a\n"
    assert env.read("events/fprobes/a/enable") == "1\n"
    assert env.write("events/tracepoints/enable", "1") == 0
    assert sorted(env.read("set_event").split()) == ["fprobes:a", "tracepoints:b"]
    assert env.write("set_event", "", append=False) == 0
    assert env.read("events/fprobes/enable") == "0\n"
    assert env.read("events/tracepoints/b/enable") == "0\n"


def test_filter_trigger_and_pid_filter(env):
    env.write("dynamic_events", "f:myprobe vfs_read count\n")
    assert env.write("events/fprobes/myprobe/filter", "count > 100\n") == 0
    env.write("events/fprobes/myprobe/enable", "1")
    env.syscall("read", "a", 50)
    env.syscall("read", "b", 500)
    assert [m["body"].split()[-1] for m in env.lines("myprobe")] == ["count=500"]
    # a trigger on a disabled event still runs (soft mode)
    env.write("events/fprobes/myprobe/enable", "0")
    assert env.write("events/fprobes/myprobe/trigger", "traceoff if count == 7\n") == 0
    assert env.read("events/fprobes/myprobe/enable") == "0*\n"
    env.syscall("read", "c", 8)
    assert env.read("tracing_on") == "1\n"
    env.syscall("read", "c", 7)
    assert env.read("tracing_on") == "0\n"
    env.write("events/fprobes/myprobe/trigger", "!traceoff\n")
    env.write("tracing_on", "1")
    env.write("events/fprobes/myprobe/filter", "0\n")
    env.write("set_event_pid", "999\n")
    env.write("events/fprobes/myprobe/enable", "1")
    n = len(env.lines("myprobe"))
    env.syscall("read", "d", 9, pid=1234)
    assert len(env.lines("myprobe")) == n
    env.syscall("read", "d", 9, pid=999)
    assert env.lines("myprobe")[-1]["pid"] == "999"


def test_eprobe_on_a_tracepoint_event(env):
    assert env.write("dynamic_events", "e:ep sched.sched_switch prev_pid\n") == EINVAL
    assert env.read("error_log").splitlines()[1:] == [
        "  Command: e:ep sched.sched_switch prev_pid",
        "                                   ^"]
    assert "event_probe: error: BTF is not available or not supported" in env.read("error_log")
    assert env.write("dynamic_events", "e:ep sched.sched_switch $prev_pid\n") == 0
    assert env.write("dynamic_events", "e:ep2 sched/sched_switch comm=$next_comm:string "
                     "pid=$next_pid if next_pid > 0\n") == 0
    assert env.read("dynamic_events") == (
        "e:eprobes/ep sched.sched_switch arg1=$prev_pid\n"
        "e:eprobes/ep2 sched.sched_switch comm=$next_comm:string pid=$next_pid\n")
    assert env.read("events/eprobes/ep/format").endswith(
        "\tfield:u64 arg1;\toffset:8;\tsize:8;\tsigned:0;\n\n"
        'print fmt: " arg1=0x%Lx", REC->arg1\n')
    assert env.write("dynamic_events", "e:ep sched.sched_switch $prev_pid\n") == EEXIST
    env.write("events/eprobes/ep2/enable", "1")
    # the eprobe hangs a trigger the trigger file does not show
    assert env.read("events/sched/sched_switch/trigger").startswith("# Available triggers:")
    assert env.read("events/sched/sched_switch/enable") == "0*\n"
    env.syscall("read", "x", 1, pid=777, comm="epcat")
    bodies = [m["body"] for m in env.lines("ep2")]
    assert 'ep2: (sched.sched_switch) comm="epcat" pid=0x309' in bodies
    # the attached event is referenced; the eprobe is busy while enabled
    assert env.write("dynamic_events", "", append=False) == EBUSY
    env.write("events/eprobes/ep2/enable", "0")
    assert env.read("events/sched/sched_switch/enable") == "0\n"
    assert env.write("dynamic_events", "-:eprobes/ep2 sched/sched_switch\n") == 0
    assert env.write("dynamic_events", "", append=False) == 0


def test_eprobe_on_a_dynamic_event_holds_it(env):
    env.write("dynamic_events", "f:myprobe vfs_read count\n")
    assert env.write("dynamic_events", "e:ep fprobes.myprobe c=$count\n") == 0
    env.write("events/eprobes/ep/enable", "1")
    env.syscall("read", "x", 42)
    assert [m["body"] for m in env.lines("ep")] == ["ep: (fprobes.myprobe) c=0x2a"]
    assert env.write("dynamic_events", "-:fprobes/myprobe\n") == EBUSY
    env.write("events/eprobes/ep/enable", "0")
    assert env.write("dynamic_events", "-:eprobes/ep\n") == 0
    assert env.write("dynamic_events", "-:fprobes/myprobe\n") == 0


def test_a_defined_but_disabled_fprobe_leaves_the_machine_quiet() -> None:
    """trace_fprobe registers its fprobe when the event is defined, disabled: the
    function's site is patched (enabled_functions lists it) but its handler returns at
    once, so nothing can see a syscall until the event is enabled."""
    k = Kernel(nr_cpus=2, seed=1)
    root = build_tree(k)
    write_file(root, "dynamic_events", "f:myprobe vfs_read\n", append=True)
    assert "vfs_read" in read_file(root, "enabled_functions").decode()
    assert k.workload.quiet() and not k.workload.syscalls_visible()
    write_file(root, "events/fprobes/myprobe/enable", "1")
    assert not k.workload.quiet() and k.workload.syscalls_visible()
    write_file(root, "events/fprobes/myprobe/enable", "0")
    assert k.workload.quiet()
