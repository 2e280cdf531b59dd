"""Traced host tasks (kernel/workload/traced.py and the syscall families): hand-written
tracer record sequences fed through the ``TracedTasks`` API, and the exact trace lines
Linux 6.12 records for that activity; then one run of a real static program under the
real tracer, every syscalls:* event between its execve and its exit_group.

Times: the records are stamped at microsecond offsets from a base; the lines print the
offset of each event (``   100.0``), so a sleep's switch away and back are checked at
their times.  The background machine's kthreads are off (nothing but the ticks runs).
"""

from __future__ import annotations

import re
import select
import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest

from tracefs_sim.host.build import build
from tracefs_sim.host.channel import spawn_tracer
from tracefs_sim.host.feed import TracerFeed
from tracefs_sim.kernel import Kernel
from tracefs_sim.kernel.workload.traced import NoHost
from tracefs_sim.tracefs import build_tree
from tracefs_sim.tracefs.files import read_file, write_file

TESTS = Path(__file__).resolve().parent
AT_FDCWD = (1 << 64) - 100
A, B = 1000, 2000
NR = {"read": 0, "write": 1, "close": 3, "rt_sigaction": 13, "rt_sigreturn": 15, "nanosleep": 35,
      "getpid": 39, "clone": 56, "fork": 57, "vfork": 58, "execve": 59, "wait4": 61, "kill": 62,
      "getppid": 110, "poll": 7, "restart_syscall": 219, "exit_group": 231, "openat": 257,
      "pipe2": 293}
SYSCALLS = ("syscalls", "raw_syscalls")
SCHED = ("sched/sched_switch", "sched/sched_waking", "sched/sched_wakeup", "sched/sched_wakeup_new",
         "sched/sched_migrate_task")
LIFE = ("sched/sched_process_fork", "sched/sched_process_exit", "sched/sched_process_wait",
        "sched/sched_process_free", "sched/sched_process_exec", "sched/sched_prepare_exec", "task")


class Host(NoHost):
    """The host's answers: CMD's parent is bash, its stdio a terminal; no file is
    known (the 9P root's files are modelled)."""

    def fd_link(self, tgid: int, fd: int) -> tuple[str, str] | None:
        return ("/dev/pts/3", "") if fd in (0, 1, 2) else None

    def parent(self, pid: int) -> tuple[int, str] | None:
        return 900, "bash"

    def comm(self, pid: int) -> str | None:
        return "bash" if pid == 900 else None

    def interp(self, tgid: int, filename: str) -> str | None:
        return None

    def ignored_signals(self, pid: int) -> int:
        return 0

    def memcg(self, pid: int) -> str:
        return "/user.slice"

    def maps(self, tgid: int) -> str | None:
        return None


class Env:
    def __init__(self, *events: str) -> None:
        self.k = Kernel(nr_cpus=2)
        self.root = build_tree(self.k)
        self.k.workload.background.kthreads = False
        self.tr = self.k.workload.traced
        self.tr.host = Host()
        # the ticks fall on jiffies, half a tick after each 4 ms of the base: reproducible lines
        self.t0 = (self.k.boot_clock.ns() // 4_000_000 + 3) * 4_000_000 - 2_000_000
        for e in events:
            write_file(self.root, f"events/{e}/enable", "1")

    def at(self, us: float) -> int:
        return self.t0 + int(us * 1000)

    def write(self, path: str, text: str) -> None:
        write_file(self.root, path, text)

    def lines(self, path: str = "trace", keep: str = "") -> list[str]:
        """The trace's lines as ``offset comm-pid [cpu] flags event`` (the background's
        timer interrupts and the RCU grace-period kthread's runs left out unless ``keep``
        names them)."""
        out = []
        for ln in read_file(self.root, path).decode().splitlines():
            if ln.startswith("#"):
                continue
            m = re.match(r"\s*(\S+)\s+(\(\s*[-\d]+\)\s+)?\[(\d+)\]\s+(\S+)\s+(\d+\.\d+): (.*)", ln)
            assert m, ln
            if ("tick_nohz_handler" in m.group(6) or "rcu_preempt" in ln) and not keep:
                continue
            us = (int(m.group(5).replace(".", "")) * 1000 - self.t0) / 1000
            tgid = f" ({m.group(2).strip()[1:-1].strip()})" if m.group(2) else ""
            out.append(f"{us:8.1f} {m.group(1)}{tgid} [{m.group(3)}] {m.group(4)} {m.group(6)}")
        return out

    def tick(self, us: float) -> None:
        """Let the background run up to ``us`` (RCU callbacks run in its ticks)."""
        self.k.workload.catch_up_to(self.at(us))


def plain(line: str) -> str:
    """A line's event text without what the call sites' addresses decide (a function
    event's parent, a probe's offset in its symbol): the model's paths are checked, the
    address layout is tested elsewhere."""
    text = line.split(None, 4)[4]
    return re.sub(r"\(\w+\+0x[0-9a-f]+/0x[0-9a-f]+\)", "(LOC)", re.sub(r" <-\S+$", "", text))


def without_raw(env: Env, first: str) -> list[str]:
    """The lines from the first that contains ``first`` on, without the raw_syscalls
    events (their syscalls:* twins say the same)."""
    got = [ln for ln in env.lines() if " sys_enter:" not in ln and " sys_exit:" not in ln]
    return got[next(i for i, ln in enumerate(got) if first in ln):]


def args(*a: int) -> tuple[int, ...]:
    return (*a, *(0,) * (6 - len(a)))


def trace_real(tracer: Path, cmd: list[str], *enable: str, buffer_kb: int = 0) -> tuple[str, int]:
    """``cmd`` under the real tracer, fed to a fresh 2-CPU kernel with the events
    ``enable`` names on: the trace's text and the tracer's pid (CMD's parent)."""
    k = Kernel(nr_cpus=2)
    root = build_tree(k)
    if buffer_kb:
        write_file(root, "buffer_size_kb", str(buffer_kb))
    for e in enable:
        write_file(root, f"events/{e}/enable", "1")
    pid = trace_program(k, tracer, cmd)
    return read_file(root, "trace").decode(), pid


@pytest.fixture
def env() -> Env:
    return Env(*SYSCALLS, *SCHED, *LIFE, "signal")


# ------------------------------------------------------------------ syscalls
def test_a_syscall_sequence(env: Env) -> None:
    tr = env.tr
    tr.attached(env.at(0), 1, A, A, "sysprobe")
    tr.sys_enter(env.at(10), 1, A, A, NR["getppid"], args(), {})
    tr.sys_exit(env.at(30), 1, A, A, NR["getppid"], 900, {}, 4000, 0)
    tr.sys_enter(env.at(40), 1, A, A, NR["write"], args(1, 0x402004, 6), {})
    tr.sys_exit(env.at(60), 1, A, A, NR["write"], 6, {}, 4000, 0)
    tr.sys_enter(env.at(70), 1, A, A, NR["pipe2"], args(0x7FFC0010, 0x80000), {})
    tr.sys_exit(env.at(80), 1, A, A, NR["pipe2"], 0, {0: struct.pack("<ii", 3, 4)}, 4000, 0)
    assert env.lines() == [
        "    10.0 <idle>-0 [001] d..2. sched_switch: prev_comm=swapper/1 prev_pid=0 prev_prio=120 "
        "prev_state=R ==> next_comm=sysprobe next_pid=1000 next_prio=120",
        "    10.0 sysprobe-1000 [001] ..... sys_enter: NR 110 (0, 0, 0, 0, 0, 0)",
        "    10.0 sysprobe-1000 [001] ...1. sys_getppid()",
        "    11.0 sysprobe-1000 [001] ...1. sys_getppid -> 0x384",
        "    11.0 sysprobe-1000 [001] ..... sys_exit: NR 110 = 900",
        "    40.0 sysprobe-1000 [001] ..... sys_enter: NR 1 (1, 402004, 6, 0, 0, 0)",
        "    40.0 sysprobe-1000 [001] ...1. sys_write(fd: 1, buf: 402004, count: 6)",
        "    41.0 sysprobe-1000 [001] ...1. sys_write -> 0x6",
        "    41.0 sysprobe-1000 [001] ..... sys_exit: NR 1 = 6",
        "    70.0 sysprobe-1000 [001] ..... sys_enter: NR 293 (7ffc0010, 80000, 0, 0, 0, 0)",
        "    70.0 sysprobe-1000 [001] ...1. sys_pipe2(fildes: 7ffc0010, flags: 80000)",
        "    71.0 sysprobe-1000 [001] ...1. sys_pipe2 -> 0x0",
        "    71.0 sysprobe-1000 [001] ..... sys_exit: NR 293 = 0"]
    files = tr.procs[A].files
    assert (files.get(3).kind, files.get(4).pipe) == ("pipe", files.get(3).pipe)   # the pipe's ends
    assert files.cloexec == {3, 4} and files.get(1).name == "3"     # /dev/pts/3, from the host


def test_a_failing_openat_takes_the_error_path(env: Env) -> None:
    """-ENOENT prints as the kernel prints it; the lookup fails in path_openat: no
    vfs_open; do_sys_openat2's pathname is the caller's pointer, its string the path."""
    env.write("set_ftrace_filter", "do_sys_openat2 path_openat vfs_open do_dentry_open fd_install "
              "put_unused_fd")
    env.write("kprobe_events", "p:po do_sys_openat2 path=+0($arg2):ustring dfd=$arg1:s32")
    env.write("events/kprobes/po/enable", "1")
    env.write("current_tracer", "function")
    tr = env.tr
    tr.attached(env.at(0), 1, A, A, "sysprobe")
    path = b"/nonexistent/tracefs-sim"
    tr.sys_enter(env.at(10), 1, A, A, NR["openat"], args(AT_FDCWD, 0x40200B, 0, 0), {1: path})
    tr.sys_exit(env.at(20), 1, A, A, NR["openat"], -2, {}, 3000, 0)
    tr.sys_enter(env.at(30), 1, A, A, NR["openat"], args(AT_FDCWD, 0x40200B, 0x80000, 0), {1: b"/etc/passwd"})
    tr.sys_exit(env.at(40), 1, A, A, NR["openat"], 3, {}, 3000, 0)
    # the scheduler's lines are the 9P root's requests sleeping (test_fs9p.py checks them)
    got = [plain(ln) for ln in env.lines() if " sched_" not in ln]
    assert got == [
        "sys_enter: NR 257 (ffffffffffffff9c, 40200b, 0, 0, 0, 0)",
        "sys_openat(dfd: ffffffffffffff9c, filename: 40200b, flags: 0, mode: 0)",
        "do_sys_openat2",
        'po: (LOC) path="/nonexistent/tracefs-sim" dfd=-100',
        "path_openat",
        "put_unused_fd",
        "sys_openat -> 0xfffffffffffffffe",
        "sys_exit: NR 257 = -2",
        "sys_enter: NR 257 (ffffffffffffff9c, 40200b, 80000, 0, 0, 0)",
        "sys_openat(dfd: ffffffffffffff9c, filename: 40200b, flags: 80000, mode: 0)",
        "do_sys_openat2",
        'po: (LOC) path="/etc/passwd" dfd=-100',
        "path_openat",
        "vfs_open",
        "do_dentry_open",
        "fd_install",
        "sys_openat -> 0x3",
        "sys_exit: NR 257 = 3"]
    assert env.tr.procs[A].files.get(3).name == "passwd"


def test_vfs_write_sees_the_real_file_and_count(env: Env) -> None:
    env.write("dynamic_events", "f:fw vfs_write count=count name=file->f_path.dentry->d_name.name:string")
    env.write("events/fprobes/fw/enable", "1")
    tr = env.tr
    tr.attached(env.at(0), 1, A, A, "sysprobe")
    tr.sys_enter(env.at(10), 1, A, A, NR["write"], args(1, 0x402004, 6), {})
    tr.sys_exit(env.at(20), 1, A, A, NR["write"], 6, {}, 3000, 0)
    tr.sys_enter(env.at(30), 1, A, A, NR["openat"], args(AT_FDCWD, 0x40200B, 0x241, 0o644), {1: b"/tmp/out.txt"})
    tr.sys_exit(env.at(40), 1, A, A, NR["openat"], 3, {}, 3000, 0)
    tr.sys_enter(env.at(50), 1, A, A, NR["write"], args(3, 0x402004, 4096), {})
    tr.sys_exit(env.at(60), 1, A, A, NR["write"], 4096, {}, 3000, 0)
    probes = [plain(ln) for ln in env.lines() if " fw: " in ln]
    assert probes == ['fw: (LOC) count=6 name="3"', 'fw: (LOC) count=4096 name="out.txt"']


def test_a_sleep_switches_away_and_back_at_the_real_times() -> None:
    env = Env(*SYSCALLS, *SCHED, "timer/hrtimer_init", "timer/hrtimer_start",
              "timer/hrtimer_expire_entry", "timer/hrtimer_expire_exit", "power/cpu_idle")
    tr = env.tr
    tr.attached(env.at(0), 1, A, A, "sleeper")
    tr.sys_enter(env.at(100), 1, A, A, NR["nanosleep"], args(0x403200), {0: struct.pack("<qq", 0, 1_000_000)})
    tr.sys_exit(env.at(1180), 1, A, A, NR["nanosleep"], 0, {}, 1_060_000, 1)
    lines = [re.sub(r"hrtimer=[0-9a-f]+", "hrtimer=H", ln) for ln in env.lines()]
    start = next(i for i, ln in enumerate(lines) if "sys_nanosleep(" in ln)
    armed = re.search(r"expires=(\d+) softexpires=(\d+)", lines[start + 2])
    assert armed, lines[start + 2]
    expires, soft = int(armed.group(1)), int(armed.group(2))
    # the request from the entry's time on, plus the default 50 us timer slack
    assert 0 <= soft - 1_000_000 - env.at(100) < 2_000 and expires == soft + 50_000
    assert lines[start:] == [
        "   100.0 sleeper-1000 [001] ...1. sys_nanosleep(rqtp: 403200, rmtp: 0)",
        "   100.0 sleeper-1000 [001] ..... hrtimer_init: hrtimer=H clockid=CLOCK_MONOTONIC mode=REL",
        f"   100.0 sleeper-1000 [001] d..1. hrtimer_start: hrtimer=H function=hrtimer_wakeup "
        f"expires={expires} softexpires={soft} mode=REL was_armed=0",
        "   102.0 sleeper-1000 [001] d..2. sched_switch: prev_comm=sleeper prev_pid=1000 prev_prio=120 "
        "prev_state=S ==> next_comm=swapper/1 next_pid=0 next_prio=120",
        "   102.0 <idle>-0 [001] d..1. cpu_idle: state=1 cpu_id=1",
        # the sleeper's timer expires in the hrtimer interrupt of its CPU: it wakes there
        f"  1150.0 <idle>-0 [001] d.h1. hrtimer_expire_entry: hrtimer=H function=hrtimer_wakeup "
        f"now={expires}",
        "  1150.0 <idle>-0 [001] d.h3. sched_waking: comm=sleeper pid=1000 prio=120 target_cpu=001",
        "  1150.0 <idle>-0 [001] dNh4. sched_wakeup: comm=sleeper pid=1000 prio=120 target_cpu=001",
        "  1151.0 <idle>-0 [001] d.h1. hrtimer_expire_exit: hrtimer=H",
        "  1151.0 <idle>-0 [001] d..1. cpu_idle: state=4294967295 cpu_id=1",
        "  1152.0 <idle>-0 [001] d..2. sched_switch: prev_comm=swapper/1 prev_pid=0 prev_prio=120 "
        "prev_state=R ==> next_comm=sleeper next_pid=1000 next_prio=120",
        "  1153.0 sleeper-1000 [001] ...1. sys_nanosleep -> 0x0",
        "  1153.0 sleeper-1000 [001] ..... sys_exit: NR 35 = 0"]


# ------------------------------------------------------------------ process life
def test_fork_exit_wait(env: Env) -> None:
    """The parent forks; the child runs on the CPU wake_up_new_task() chose, returns 0
    from fork before its own syscall, exits; its exit signals and wakes the parent asleep
    in wait4 and switches away as a zombie; the parent reaps it; it is freed by an RCU
    callback on a later tick."""
    tr = env.tr
    tr.attached(env.at(0), 1, A, A, "sh")
    tr.sys_enter(env.at(1200), 1, A, A, NR["fork"], args(), {})
    tr.new_task(env.at(1250), 1, A, B, B, 1, 17, "sh", 0)
    tr.sys_exit(env.at(1270), 1, A, A, NR["fork"], B, {}, 100_000, 1)   # the fork's event stop
    tr.sys_enter(env.at(1300), 1, A, A, NR["wait4"], args(B, 0x7FFC0000), {})
    tr.sys_enter(env.at(1320), 0, B, B, NR["exit_group"], args(3), {})
    tr.exit(env.at(1330), 0, B, B, 3 << 8, True)
    tr.signal(env.at(1350), 1, A, A, 17, 0, 1, B, 0)       # SIGCHLD: ignored, nothing shows
    tr.gone(env.at(1360), 0, B, B, 3 << 8)
    tr.sys_exit(env.at(1380), 1, A, A, NR["wait4"], B, {}, 50_000, 1)
    env.tick(20_000)
    assert env.lines()[1:] == [
        "  1200.0 sh-1000 [001] ..... sys_enter: NR 57 (0, 0, 0, 0, 0, 0)",
        "  1200.0 sh-1000 [001] ...1. sys_fork()",
        "  1250.0 sh-1000 [001] ..... task_newtask: pid=2000 comm=sh clone_flags=0 oom_score_adj=0",
        "  1250.0 sh-1000 [001] ..... sched_process_fork: comm=sh pid=1000 child_comm=sh child_pid=2000",
        "  1250.0 sh-1000 [001] d..2. sched_wakeup_new: comm=sh pid=2000 prio=120 target_cpu=000",
        "  1250.0 sh-1000 [001] ...1. sys_fork -> 0x7d0",
        "  1250.0 sh-1000 [001] ..... sys_exit: NR 57 = 2000",
        "  1251.0 <idle>-0 [000] d..2. sched_switch: prev_comm=swapper/0 prev_pid=0 prev_prio=120 "
        "prev_state=R ==> next_comm=sh next_pid=2000 next_prio=120",
        "  1252.0 sh-2000 [000] ...1. sys_fork -> 0x0",
        "  1252.0 sh-2000 [000] ..... sys_exit: NR 57 = 0",
        "  1300.0 sh-1000 [001] ..... sys_enter: NR 61 (7d0, 7ffc0000, 0, 0, 0, 0)",
        "  1300.0 sh-1000 [001] ...1. sys_wait4(upid: 7d0, stat_addr: 7ffc0000, options: 0, ru: 0)",
        "  1300.0 sh-1000 [001] ..... sched_process_wait: comm=sh pid=2000 prio=120",
        "  1302.0 sh-1000 [001] d..2. sched_switch: prev_comm=sh prev_pid=1000 prev_prio=120 "
        "prev_state=S ==> next_comm=swapper/1 next_pid=0 next_prio=120",
        "  1320.0 sh-2000 [000] ..... sys_enter: NR 231 (3, 0, 0, 0, 0, 0)",
        "  1320.0 sh-2000 [000] ...1. sys_exit_group(error_code: 3)",
        "  1330.0 sh-2000 [000] ..... sched_process_exit: comm=sh pid=2000 prio=120",
        "  1330.0 sh-2000 [000] d..2. signal_generate: sig=17 errno=0 code=1 comm=sh pid=1000 grp=1 res=1",
        "  1330.0 sh-2000 [000] d..5. sched_waking: comm=sh pid=1000 prio=120 target_cpu=001",
        "  1330.0 sh-2000 [000] d..2. sched_switch: prev_comm=sh prev_pid=2000 prev_prio=120 "
        "prev_state=Z ==> next_comm=swapper/0 next_pid=0 next_prio=120",
        # the parent's idle CPU activates it in its wake-list IPI
        "  1332.0 <idle>-0 [001] dNh2. sched_wakeup: comm=sh pid=1000 prio=120 target_cpu=001",
        "  1333.0 <idle>-0 [001] d..2. sched_switch: prev_comm=swapper/1 prev_pid=0 prev_prio=120 "
        "prev_state=R ==> next_comm=sh next_pid=1000 next_prio=120",
        "  1334.0 sh-1000 [001] ...1. sys_wait4 -> 0x7d0",
        "  1334.0 sh-1000 [001] ..... sys_exit: NR 61 = 2000",
        # the tick at 2000 on CPU 0 (the child's exit_mmap left RCU callbacks there)
        # asks for a grace period; its fqs timer (1 jiffy, the wheel's bucket one more)
        # ends it at 10000, before CPU 1's tick of that jiffy, whose RCU softirq frees
        " 10000.0 sh-1000 [001] ..s.. sched_process_free: comm=sh pid=2000 prio=120"]


def fork_child(env: Env) -> None:
    """``sh`` (A) forks B."""
    tr = env.tr
    tr.attached(env.at(0), 1, A, A, "sh")
    tr.sys_enter(env.at(10), 1, A, A, NR["fork"], args(), {})
    tr.new_task(env.at(20), 1, A, B, B, 1, 17, "sh", 1)
    tr.sys_exit(env.at(30), 1, A, A, NR["fork"], B, {}, 0, 0)


def child_exits_and_is_reaped(env: Env) -> None:
    """B exits, A's wait4 reaps it, and the RCU callback that frees it has run."""
    tr = env.tr
    tr.sys_enter(env.at(40), 0, B, B, NR["exit_group"], args(0), {})
    tr.exit(env.at(50), 0, B, B, 0, True)
    tr.gone(env.at(60), 0, B, B, 0)
    tr.sys_enter(env.at(70), 1, A, A, NR["wait4"], args(B), {})
    tr.sys_exit(env.at(80), 1, A, A, NR["wait4"], B, {}, 0, 0)
    env.tick(20_000)


def test_pid_lists_follow_forks_and_frees(env: Env) -> None:
    """set_event_pid with event-fork and set_ftrace_pid with function-fork: the hooks of
    sched_process_fork add the child, those of sched_process_free remove it."""
    env.write("options/event-fork", "1")
    env.write("options/function-fork", "1")
    env.write("set_event_pid", str(A))
    env.write("set_ftrace_pid", str(A))
    fork_child(env)
    assert read_file(env.root, "set_event_pid").split() == [b"1000", b"2000"]
    assert read_file(env.root, "set_ftrace_pid").split() == [b"1000", b"2000"]
    child_exits_and_is_reaped(env)
    assert read_file(env.root, "set_event_pid").split() == [b"1000"]
    assert read_file(env.root, "set_ftrace_pid").split() == [b"1000"]
    assert any("sys_exit_group(error_code: 0)" in ln and "-2000 " in ln for ln in env.lines())


def test_without_the_fork_options_a_freed_pid_stays_listed(env: Env) -> None:
    """Only event-fork (function-fork) registers the sched_process_free hook that takes
    a freed task off set_event_pid (set_ftrace_pid): without the options a listed pid
    that exits stays listed."""
    env.write("set_event_pid", f"{A} {B}")
    env.write("set_ftrace_pid", f"{A} {B}")
    fork_child(env)
    child_exits_and_is_reaped(env)
    assert any("sched_process_free: comm=sh pid=2000" in ln for ln in env.lines())
    assert read_file(env.root, "set_event_pid").split() == [b"1000", b"2000"]
    assert read_file(env.root, "set_ftrace_pid").split() == [b"1000", b"2000"]


def test_vfork_parent_sleeps_until_the_child_execs(env: Env) -> None:
    """vfork: the parent waits uninterruptibly (D) from the fork on; the child's exec
    (exec_mmap → complete_vfork_done) wakes it, in the child's context."""
    tr = env.tr
    tr.attached(env.at(0), 1, A, A, "sh")
    tr.sys_enter(env.at(10), 1, A, A, NR["vfork"], args(), {})
    tr.new_task(env.at(20), 1, A, B, B, 2, 0x4111, "sh", 0)
    tr.sys_enter(env.at(30), 0, B, B, NR["execve"], args(0x1000, 0x2000, 0x3000), {0: b"/bin/ls"})
    tr.exec(env.at(50), 0, B, B, B, "ls", "/bin/ls")
    tr.sys_exit(env.at(55), 0, B, B, NR["execve"], 0, {}, 0, 0)
    tr.sys_exit(env.at(60), 1, A, A, NR["vfork"], B, {}, 40_000, 1)
    assert env.lines()[1:] == [
        "    10.0 sh-1000 [001] ..... sys_enter: NR 58 (0, 0, 0, 0, 0, 0)",
        "    10.0 sh-1000 [001] ...1. sys_vfork()",
        "    20.0 sh-1000 [001] ..... task_newtask: pid=2000 comm=sh clone_flags=4100 oom_score_adj=0",
        "    20.0 sh-1000 [001] ..... sched_process_fork: comm=sh pid=1000 child_comm=sh child_pid=2000",
        "    20.0 sh-1000 [001] d..2. sched_wakeup_new: comm=sh pid=2000 prio=120 target_cpu=000",
        "    20.0 sh-1000 [001] d..2. sched_switch: prev_comm=sh prev_pid=1000 prev_prio=120 "
        "prev_state=D ==> next_comm=swapper/1 next_pid=0 next_prio=120",
        "    21.0 <idle>-0 [000] d..2. sched_switch: prev_comm=swapper/0 prev_pid=0 prev_prio=120 "
        "prev_state=R ==> next_comm=sh next_pid=2000 next_prio=120",
        "    22.0 ls-2000 [000] ...1. sys_vfork -> 0x0",
        "    22.0 ls-2000 [000] ..... sys_exit: NR 58 = 0",
        "    30.0 ls-2000 [000] ..... sys_enter: NR 59 (1000, 2000, 3000, 0, 0, 0)",
        "    30.0 ls-2000 [000] ...1. sys_execve(filename: 1000, argv: 2000, envp: 3000)",
        "    50.0 ls-2000 [000] ..... sched_prepare_exec: interp=/bin/ls filename=/bin/ls pid=2000 "
        "comm=sh",
        "    50.0 ls-2000 [000] d..4. sched_waking: comm=sh pid=1000 prio=120 target_cpu=001",
        "    50.0 ls-2000 [000] ...1. task_rename: pid=2000 oldcomm=sh newcomm=ls oom_score_adj=0",
        "    50.0 ls-2000 [000] ..... sched_process_exec: filename=/bin/ls pid=2000 old_pid=2000",
        "    50.0 ls-2000 [000] ...1. sys_execve -> 0x0",
        "    50.0 ls-2000 [000] ..... sys_exit: NR 59 = 0",
        # the parent's idle CPU activates it in its wake-list IPI
        "    52.0 <idle>-0 [001] dNh2. sched_wakeup: comm=sh pid=1000 prio=120 target_cpu=001",
        "    53.0 <idle>-0 [001] d..2. sched_switch: prev_comm=swapper/1 prev_pid=0 prev_prio=120 "
        "prev_state=R ==> next_comm=sh next_pid=1000 next_prio=120",
        "    54.0 sh-1000 [001] ...1. sys_vfork -> 0x7d0",
        "    54.0 sh-1000 [001] ..... sys_exit: NR 58 = 2000"]


def test_threads_and_an_exec_by_a_non_leader(env: Env) -> None:
    """pthread_create's clone: the thread shares the tgid; its exec kills the leader
    (de_thread): the leader's read returns and it exits a zombie, the thread takes over
    the leader's pid (old_pid is its own), the old leader is freed."""
    env.write("options/record-tgid", "1")
    tr = env.tr
    T = 1002
    flags = 0x3D0F00
    tr.attached(env.at(0), 1, A, A, "sh")
    tr.sys_enter(env.at(100), 1, A, A, NR["clone"], args(flags, 0x7F0000, 0x7F1000, 0x7F2000, 0x7F3000), {})
    tr.new_task(env.at(110), 1, A, T, A, 3, flags, "sh", 0)
    tr.sys_exit(env.at(115), 1, A, A, NR["clone"], T, {}, 0, 0)
    tr.sys_enter(env.at(120), 0, T, A, NR["execve"], args(0x1000, 0x2000, 0x3000), {0: b"/bin/true"})
    tr.sys_enter(env.at(121), 1, A, A, NR["read"], args(0, 0x5000, 100), {})
    tr.exit(env.at(130), 1, A, A, 9, True)                 # SIGKILLed by de_thread
    tr.exec(env.at(140), 0, A, T, A, "true", "/bin/true")
    tr.sys_exit(env.at(145), 0, A, A, NR["execve"], 0, {}, 0, 0)
    tr.sys_enter(env.at(150), 0, A, A, NR["exit_group"], args(0), {})
    tr.exit(env.at(160), 0, A, A, 0, True)
    tr.gone(env.at(170), 0, A, A, 0)
    env.tick(20_000)
    assert env.lines()[1:] == [
        "   100.0 true-1000 (1000) [001] ..... sys_enter: NR 56 (3d0f00, 7f0000, 7f1000, 7f2000, 7f3000, "
        "0)",
        "   100.0 true-1000 (1000) [001] ...1. sys_clone(clone_flags: 3d0f00, newsp: 7f0000, "
        "parent_tidptr: 7f1000, child_tidptr: 7f2000, tls: 7f3000)",
        "   110.0 true-1000 (1000) [001] ..... task_newtask: pid=1002 comm=sh clone_flags=3d0f00 "
        "oom_score_adj=0",
        "   110.0 true-1000 (1000) [001] ..... sched_process_fork: comm=sh pid=1000 child_comm=sh "
        "child_pid=1002",
        "   110.0 true-1000 (1000) [001] d..2. sched_wakeup_new: comm=sh pid=1002 prio=120 target_cpu=000",
        "   110.0 true-1000 (1000) [001] ...1. sys_clone -> 0x3ea",
        "   110.0 true-1000 (1000) [001] ..... sys_exit: NR 56 = 1002",
        "   111.0 <idle>-0 (-------) [000] d..2. sched_switch: prev_comm=swapper/0 prev_pid=0 "
        "prev_prio=120 prev_state=R ==> next_comm=sh next_pid=1002 next_prio=120",
        "   112.0 sh-1002 (1000) [000] ...1. sys_clone -> 0x0",
        "   112.0 sh-1002 (1000) [000] ..... sys_exit: NR 56 = 0",
        "   120.0 sh-1002 (1000) [000] ..... sys_enter: NR 59 (1000, 2000, 3000, 0, 0, 0)",
        "   120.0 sh-1002 (1000) [000] ...1. sys_execve(filename: 1000, argv: 2000, envp: 3000)",
        "   121.0 true-1000 (1000) [001] ..... sys_enter: NR 0 (0, 5000, 64, 0, 0, 0)",
        "   121.0 true-1000 (1000) [001] ...1. sys_read(fd: 0, buf: 5000, count: 64)",
        "   122.0 true-1000 (1000) [001] ...1. sys_read -> 0xfffffffffffffe00",
        "   122.0 true-1000 (1000) [001] ..... sys_exit: NR 0 = -512",
        "   130.0 true-1000 (1000) [001] ..... sched_process_exit: comm=sh pid=1000 prio=120",
        "   130.0 true-1000 (1000) [001] d..2. sched_switch: prev_comm=sh prev_pid=1000 prev_prio=120 "
        "prev_state=Z ==> next_comm=swapper/1 next_pid=0 next_prio=120",
        "   140.0 sh-1002 (1000) [000] ..... sched_prepare_exec: interp=/bin/true filename=/bin/true "
        "pid=1002 comm=sh",
        "   140.0 true-1000 (1000) [000] ...1. task_rename: pid=1000 oldcomm=sh newcomm=true "
        "oom_score_adj=0",
        "   140.0 true-1000 (1000) [000] ..... sched_process_exec: filename=/bin/true pid=1000 "
        "old_pid=1002",
        "   140.0 true-1000 (1000) [000] ...1. sys_execve -> 0x0",
        "   140.0 true-1000 (1000) [000] ..... sys_exit: NR 59 = 0",
        "   150.0 true-1000 (1000) [000] ..... sys_enter: NR 231 (0, 0, 0, 0, 0, 0)",
        "   150.0 true-1000 (1000) [000] ...1. sys_exit_group(error_code: 0)",
        "   160.0 true-1000 (1000) [000] ..... sched_process_exit: comm=true pid=1000 prio=120",
        "   160.0 true-1000 (1000) [000] d..2. signal_generate: sig=17 errno=0 code=1 comm=bash pid=900 "
        "grp=1 res=1",
        "   160.0 true-1000 (1000) [000] d..2. sched_switch: prev_comm=true prev_pid=1000 prev_prio=120 "
        "prev_state=Z ==> next_comm=swapper/0 next_pid=0 next_prio=120",
        " 10000.0 <idle>-0 (-------) [001] ..s1. sched_process_free: comm=sh pid=1000 prio=120",
        " 14000.0 <idle>-0 (-------) [000] ..s1. sched_process_free: comm=true pid=1000 prio=120"]


# ------------------------------------------------------------------ signals
def two_processes(env: Env) -> None:
    """A makes a pipe (fds 3, 4) and forks B; B installs a SIGUSR1 handler."""
    tr = env.tr
    tr.attached(env.at(0), 1, A, A, "a")
    tr.sys_enter(env.at(5), 1, A, A, NR["pipe2"], args(0x7FF0), {})
    tr.sys_exit(env.at(8), 1, A, A, NR["pipe2"], 0, {0: struct.pack("<ii", 3, 4)}, 0, 0)
    tr.sys_enter(env.at(10), 1, A, A, NR["fork"], args(), {})
    tr.new_task(env.at(20), 1, A, B, B, 1, 17, "a", 0)
    tr.sys_exit(env.at(25), 1, A, A, NR["fork"], B, {}, 0, 0)
    act = struct.pack("<QQQQ", 0x401000, 0x04000000, 0x401100, 0)    # handler, SA_RESTORER
    tr.sys_enter(env.at(30), 0, B, B, NR["rt_sigaction"], args(10, 0x7FFD00, 0, 8), {1: act})
    tr.sys_exit(env.at(35), 0, B, B, NR["rt_sigaction"], 0, {}, 0, 0)


def pipe_wakeup(env: Env) -> None:
    """B (CPU 0) reads the pipe from A and sleeps; A (CPU 1) writes 5 bytes, which wakes
    B; B's read returns them (two_processes() set the pipe up)."""
    tr = env.tr
    tr.sys_enter(env.at(40), 0, B, B, NR["read"], args(3, 0x7FFE00, 100), {})
    tr.sys_enter(env.at(500), 1, A, A, NR["write"], args(4, 0x7FF100, 5), {})
    tr.sys_exit(env.at(510), 1, A, A, NR["write"], 5, {}, 0, 0)
    tr.sys_exit(env.at(530), 0, B, B, NR["read"], 5, {}, 480_000, 1)


def test_a_pipe_write_wakes_the_reader_and_a_kill_interrupts_it() -> None:
    """B's read of the empty pipe sleeps; A's write wakes it from A's context (the reader's
    CPU is idle: the wakeup is queued to it).  Then A's kill of B: signal_generate in A,
    B woken from A; B's read returns -ERESTARTSYS (printed as the kernel prints it), the
    handler is delivered (signal_deliver with the action B installed), rt_sigreturn."""
    env = Env(*SYSCALLS, *SCHED, "signal")
    two_processes(env)
    tr = env.tr
    pipe_wakeup(env)
    tr.sys_enter(env.at(600), 0, B, B, NR["read"], args(3, 0x7FFE00, 100), {})
    tr.sys_enter(env.at(900), 1, A, A, NR["kill"], args(B, 10), {})
    tr.sys_exit(env.at(910), 1, A, A, NR["kill"], 0, {}, 0, 0)
    tr.sys_exit(env.at(920), 0, B, B, NR["read"], -512, {}, 300_000, 1)
    tr.signal(env.at(925), 0, B, B, 10, 0, 0, A, 0)
    tr.sys_enter(env.at(940), 0, B, B, NR["rt_sigreturn"], args(), {})
    tr.sys_exit(env.at(945), 0, B, B, NR["rt_sigreturn"], -4, {}, 0, 0)
    tr.sys_enter(env.at(950), 1, A, A, NR["kill"], args(900, 10), {})     # an untraced target
    tr.sys_exit(env.at(955), 1, A, A, NR["kill"], 0, {}, 0, 0)
    assert without_raw(env, "sys_read(") == [
        "    40.0 a-2000 [000] ...1. sys_read(fd: 3, buf: 7ffe00, count: 64)",
        "    42.0 a-2000 [000] d..2. sched_switch: prev_comm=a prev_pid=2000 prev_prio=120 prev_state=S "
        "==> next_comm=swapper/0 next_pid=0 next_prio=120",
        "   500.0 a-1000 [001] ...1. sys_write(fd: 4, buf: 7ff100, count: 5)",
        "   500.0 a-1000 [001] d..3. sched_waking: comm=a pid=2000 prio=120 target_cpu=000",
        "   501.0 a-1000 [001] ...1. sys_write -> 0x5",
        "   502.0 <idle>-0 [000] dNh2. sched_wakeup: comm=a pid=2000 prio=120 target_cpu=000",
        "   503.0 <idle>-0 [000] d..2. sched_switch: prev_comm=swapper/0 prev_pid=0 prev_prio=120 "
        "prev_state=R ==> next_comm=a next_pid=2000 next_prio=120",
        "   504.0 a-2000 [000] ...1. sys_read -> 0x5",
        "   600.0 a-2000 [000] ...1. sys_read(fd: 3, buf: 7ffe00, count: 64)",
        "   602.0 a-2000 [000] d..2. sched_switch: prev_comm=a prev_pid=2000 prev_prio=120 prev_state=S "
        "==> next_comm=swapper/0 next_pid=0 next_prio=120",
        "   900.0 a-1000 [001] ...1. sys_kill(pid: 7d0, sig: a)",
        "   900.0 a-1000 [001] d..1. signal_generate: sig=10 errno=0 code=0 comm=a pid=2000 grp=1 res=0",
        "   900.0 a-1000 [001] d..3. sched_waking: comm=a pid=2000 prio=120 target_cpu=000",
        "   901.0 a-1000 [001] ...1. sys_kill -> 0x0",
        "   902.0 <idle>-0 [000] dNh2. sched_wakeup: comm=a pid=2000 prio=120 target_cpu=000",
        "   903.0 <idle>-0 [000] d..2. sched_switch: prev_comm=swapper/0 prev_pid=0 prev_prio=120 "
        "prev_state=R ==> next_comm=a next_pid=2000 next_prio=120",
        "   904.0 a-2000 [000] ...1. sys_read -> 0xfffffffffffffe00",
        "   904.0 a-2000 [000] d..1. signal_deliver: sig=10 errno=0 code=0 sa_handler=401000 "
        "sa_flags=4000000",
        "   940.0 a-2000 [000] ...1. sys_rt_sigreturn()",
        "   941.0 a-2000 [000] ...1. sys_rt_sigreturn -> 0xfffffffffffffffc",
        "   950.0 a-1000 [001] ...1. sys_kill(pid: 384, sig: a)",
        "   950.0 a-1000 [001] d..1. signal_generate: sig=10 errno=0 code=0 comm=bash pid=900 grp=1 res=0",
        "   951.0 a-1000 [001] ...1. sys_kill -> 0x0"]


def test_an_ignored_signal_does_not_interrupt_and_sigpipe_is_sent() -> None:
    """An ignored SIGCHLD interrupts a traced read (ptrace queues ignored signals): the
    read's -ERESTARTSYS and its restart show nothing, the read returns once; a write to
    a pipe nobody reads fails -EPIPE and sends SIGPIPE (delivered: default action)."""
    env = Env(*SYSCALLS, *SCHED, "signal")
    two_processes(env)
    tr = env.tr
    tr.sys_enter(env.at(1000), 0, B, B, NR["read"], args(3, 0x7FFE00, 100), {})
    tr.sys_exit(env.at(1500), 0, B, B, NR["read"], -512, {}, 400_000, 1)
    tr.signal(env.at(1505), 0, B, B, 17, 0, 1, 777, 0)
    tr.sys_enter(env.at(1510), 0, B, B, NR["read"], args(3, 0x7FFE00, 100), {})
    tr.sys_exit(env.at(2500), 0, B, B, NR["read"], 0, {}, 900_000, 1)
    tr.sys_enter(env.at(4200), 1, A, A, NR["write"], args(4, 0x7FF100, 5), {})
    tr.sys_exit(env.at(4210), 1, A, A, NR["write"], -32, {}, 0, 0)
    tr.signal(env.at(4215), 1, A, A, 13, 0, 0, A, 0)
    assert without_raw(env, "sys_read(") == [
        "  1000.0 a-2000 [000] ...1. sys_read(fd: 3, buf: 7ffe00, count: 64)",
        "  1002.0 a-2000 [000] d..2. sched_switch: prev_comm=a prev_pid=2000 prev_prio=120 prev_state=S "
        "==> next_comm=swapper/0 next_pid=0 next_prio=120",
        "  2494.0 <idle>-0 [000] d..3. sched_waking: comm=a pid=2000 prio=120 target_cpu=000",
        "  2494.0 <idle>-0 [000] dN.4. sched_wakeup: comm=a pid=2000 prio=120 target_cpu=000",
        "  2496.0 <idle>-0 [000] d..2. sched_switch: prev_comm=swapper/0 prev_pid=0 prev_prio=120 "
        "prev_state=R ==> next_comm=a next_pid=2000 next_prio=120",
        "  2496.0 a-2000 [000] ...1. sys_read -> 0x0",
        "  4200.0 a-1000 [001] ...1. sys_write(fd: 4, buf: 7ff100, count: 5)",
        "  4200.0 a-1000 [001] d..1. signal_generate: sig=13 errno=0 code=0 comm=a pid=1000 grp=0 res=0",
        "  4201.0 a-1000 [001] ...1. sys_write -> 0xffffffffffffffe0",
        "  4215.0 a-1000 [001] d..1. signal_deliver: sig=13 errno=0 code=0 sa_handler=0 sa_flags=0"]


def test_a_group_stop_and_continue(env: Env) -> None:
    """SIGSTOP: delivered, the task stops (T); A's SIGCONT wakes it from A's context
    (SIGCONT's default action is to ignore it: no delivery)."""
    two_processes(env)
    tr = env.tr
    tr.signal(env.at(100), 0, B, B, 19, 0, 0, A, 0)
    tr.sys_enter(env.at(200), 1, A, A, NR["kill"], args(B, 18), {})
    tr.sys_exit(env.at(210), 1, A, A, NR["kill"], 0, {}, 0, 0)
    tr.signal(env.at(220), 0, B, B, 18, 0, 0, A, 0)
    assert without_raw(env, "sig=19") == [
        "   100.0 a-2000 [000] d..1. signal_deliver: sig=19 errno=0 code=0 sa_handler=0 sa_flags=0",
        "   100.0 a-2000 [000] d..2. sched_switch: prev_comm=a prev_pid=2000 prev_prio=120 prev_state=T "
        "==> next_comm=swapper/0 next_pid=0 next_prio=120",
        "   200.0 a-1000 [001] ...1. sys_kill(pid: 7d0, sig: 12)",
        "   200.0 a-1000 [001] d..3. sched_waking: comm=a pid=2000 prio=120 target_cpu=000",
        "   200.0 a-1000 [001] d..1. signal_generate: sig=18 errno=0 code=0 comm=a pid=2000 grp=1 res=1",
        "   201.0 a-1000 [001] ...1. sys_kill -> 0x0",
        "   202.0 <idle>-0 [000] dNh2. sched_wakeup: comm=a pid=2000 prio=120 target_cpu=000",
        "   203.0 <idle>-0 [000] d..2. sched_switch: prev_comm=swapper/0 prev_pid=0 prev_prio=120 "
        "prev_state=R ==> next_comm=a next_pid=2000 next_prio=120"]


def test_a_rename_shows_inside_the_prctl(env: Env) -> None:
    """prctl(PR_SET_NAME): the tracer notices the new comm at the task's next stop; the
    rename is shown inside the prctl (task_rename before its return)."""
    tr = env.tr
    tr.attached(env.at(0), 1, A, A, "a")
    tr.sys_enter(env.at(10), 1, A, A, 157, args(15, 0x7FFC0100), {})
    tr.sys_exit(env.at(20), 1, A, A, 157, 0, {}, 0, 0)
    tr.comm(env.at(200), 1, A, A, "worker")
    tr.sys_enter(env.at(200), 1, A, A, NR["getpid"], args(), {})
    assert without_raw(env, "sys_prctl(") == [
        "    10.0 worker-1000 [001] ...1. sys_prctl(option: f, arg2: 7ffc0100, arg3: 0, arg4: 0, arg5: 0)",
        "    10.0 worker-1000 [001] ...1. task_rename: pid=1000 oldcomm=a newcomm=worker oom_score_adj=0",
        "    11.0 worker-1000 [001] ...1. sys_prctl -> 0x0",
        "   200.0 worker-1000 [001] ...1. sys_getpid()"]


# ------------------------------------------------------------------ the tracer's own effects
def test_a_mode_switch_mid_syscall_invents_nothing(env: Env) -> None:
    """The switch to syscalls mode PTRACE_INTERRUPTs a task asleep in a nanosleep entered
    before syscalls were reported: it shows only its return, as nanosleep's (not the
    restart_syscall the interrupt made it enter); a syscall the switch found running
    shows its exit alone; a new task's first return is shown once."""
    tr = env.tr
    tr.attached(env.at(0), 1, A, A, "a")
    tr.interrupted(env.at(3000), 1, A, A, NR["nanosleep"], -516)
    tr.sys_enter(env.at(3010), 1, A, A, NR["restart_syscall"], args(), {})
    tr.sys_exit(env.at(4000), 1, A, A, NR["restart_syscall"], 0, {}, 900_000, 1)
    tr.sys_exit(env.at(4100), 1, A, A, NR["poll"], 1, {}, 0, 0xFFFFFFFF)
    tr.new_task(env.at(4200), 1, A, B, B, 1, 17, "a", 0)
    tr.interrupted(env.at(4300), 0, B, B, NR["fork"], 0)
    tr.sys_enter(env.at(4400), 0, B, B, NR["getpid"], args(), {})
    tr.sys_exit(env.at(4410), 0, B, B, NR["getpid"], B, {}, 0, 0)
    assert [ln for ln in env.lines() if "sched_" not in ln] == [
        "  3996.0 a-1000 [001] ...1. sys_nanosleep -> 0x0",
        "  3997.0 a-1000 [001] ..... sys_exit: NR 35 = 0",
        "  4100.0 a-1000 [001] ...1. sys_poll -> 0x1",
        "  4100.0 a-1000 [001] ..... sys_exit: NR 7 = 1",
        "  4200.0 a-1000 [001] ..... task_newtask: pid=2000 comm=a clone_flags=0 oom_score_adj=0",
        "  4202.0 a-2000 [000] ...1. sys_fork -> 0x0",
        "  4202.0 a-2000 [000] ..... sys_exit: NR 57 = 0",
        "  4400.0 a-2000 [000] ..... sys_enter: NR 39 (0, 0, 0, 0, 0, 0)",
        "  4400.0 a-2000 [000] ...1. sys_getpid()",
        "  4401.0 a-2000 [000] ...1. sys_getpid -> 0x7d0",
        "  4401.0 a-2000 [000] ..... sys_exit: NR 39 = 2000"]


def test_a_request_runs_inside_the_pending_syscall(env: Env) -> None:
    """The mount's side: a request of a traced task runs inside the syscall the tracer
    reported (its path run, the task current on the request's CPU), and nothing is
    invented for a task outside a reported syscall."""
    tr = env.tr
    tr.attached(env.at(0), 1, A, A, "cat")
    assert tr.owns(A) and not tr.in_syscall(A) and not tr.owns(4242)
    # outside a reported syscall (lifecycle mode) the task is current all the same: what
    # the request records (a trace_marker write) is the task's
    assert tr.request_enter(A, 1) is None
    assert env.k.sched.curr[1] is tr.thread(A).task
    switched = env.lines()
    assert [ln.split("==> ")[1] for ln in switched] == [
        "next_comm=cat next_pid=1000 next_prio=120"]
    tr.request_exit(A)
    # the mount's scan of host processes leaves traced ones to the tracer
    env.k.workload.hostprocs.host_spawn(A, "cat", 4242, "ls", 0)
    env.k.workload.hostprocs.host_exec(A, "ls")
    assert 4242 not in env.k.sched.tasks and env.lines() == switched
    env.write("set_ftrace_filter", "vfs_read")
    env.write("current_tracer", "function")
    tr.sys_enter(env.k.boot_clock.peek(), 1, A, A, NR["read"], args(0, 0x7FFE00, 4096), {})
    assert tr.in_syscall(A)
    ctx = tr.request_enter(A, 0)
    # it runs on the CPU its syscall entered on (the tracer saw it there)
    assert ctx is not None and ctx.ran and env.k.sched.current is ctx.task and env.k.sched.cpu == 1
    # file, buf, count, pos (a terminal has a position: ksys_read's stack loff_t)
    assert ctx.regs["vfs_read"] == (ctx.regs["security_file_permission"][0], 0x7FFE00, 4096, ctx.frame)
    assert read_file(env.root, "trace").count(b"vfs_read") == 1
    tr.request_exit(A)
    tr.sys_exit(env.k.boot_clock.peek(), 0, A, A, NR["read"], 11, {}, 0, 0)
    got = [plain(ln) for ln in env.lines() if "sched_" not in ln]
    assert got == ["sys_enter: NR 0 (0, 7ffe00, 1000, 0, 0, 0)",
                   "sys_read(fd: 0, buf: 7ffe00, count: 1000)", "vfs_read",
                   "sys_read -> 0xb", "sys_exit: NR 0 = 11"]
    assert not tr.in_syscall(A)


def test_a_served_syscall_does_not_sleep_for_the_fuse_round_trip(env: Env) -> None:
    """The host task waited for the mount's answer (the tracer's schedstat says it was
    switched out once, half a millisecond), but on the kernel the tracefs file's code
    runs inside the read: no switch away, no wakeup.  The same wait in a read the mount
    did not serve is a sleep, and so is a wait beyond the answer's (a poll that blocks
    after its FUSE_POLL: a second switch)."""
    tr = env.tr
    tr.attached(env.at(0), 1, A, A, "cat")
    t0 = env.at(100)
    tr.sys_enter(t0, 1, A, A, NR["read"], args(3, 0x7FFE00, 4096), {})
    assert tr.request_enter(A, 1) is not None
    tr.request_exit(A)
    tr.sys_exit(t0 + 600_000, 1, A, A, NR["read"], 11, {}, 500_000, 1)
    assert not [ln for ln in env.lines() if "prev_comm=cat" in ln or "sched_waking" in ln]
    tr.sys_enter(env.at(1000), 1, A, A, NR["read"], args(0, 0x7FFE00, 4096), {})
    tr.sys_exit(env.at(1600), 1, A, A, NR["read"], 11, {}, 500_000, 1)
    slept = [ln for ln in env.lines() if "prev_comm=cat" in ln]
    assert len(slept) == 1 and "prev_state=S" in slept[0], slept
    tr.sys_enter(env.at(2000), 1, A, A, NR["poll"], args(0x7FFE00, 1, 1000), {})
    assert tr.request_enter(A, 1) is not None
    tr.request_exit(A)
    tr.sys_exit(env.at(3600), 1, A, A, NR["poll"], 1, {}, 1_500_000, 2)
    assert len([ln for ln in env.lines() if "prev_comm=cat" in ln]) == 2


def test_a_long_served_syscall_is_not_taken_as_asleep_by_the_horizon(env: Env) -> None:
    """Another task's record 3 ms into a served read (a long `cat trace` render) does not
    put the reader to sleep: the file's code runs in the syscall the whole time."""
    tr = env.tr
    tr.attached(env.at(0), 1, A, A, "cat")
    tr.attached(env.at(0), 0, B, B, "other")
    tr.sys_enter(env.at(100), 1, A, A, NR["read"], args(3, 0x7FFE00, 131072), {})
    assert tr.request_enter(A, 1) is not None
    tr.sys_enter(env.at(3100), 0, B, B, NR["getpid"], args(), {})
    tr.sys_exit(env.at(3110), 0, B, B, NR["getpid"], B, {}, 0, 0)
    tr.request_exit(A)
    tr.sys_exit(env.at(3200), 1, A, A, NR["read"], 131072, {}, 3_000_000, 1)
    assert not [ln for ln in env.lines() if "prev_comm=cat" in ln or "comm=cat pid" in ln]


# ------------------------------------------------------------------ the real tracer
def trace_program(k: Kernel, tracer: Path, argv: list[str]) -> int:
    """Run ``argv`` under the real tracer, its records fed to ``k`` until it exits (0);
    the tracer's pid (the program's parent)."""
    proc, ch = spawn_tracer(tracer, argv, stdout=subprocess.DEVNULL)
    feed = TracerFeed(k, ch.sock.detach(), proc.pid)
    try:
        feed.start()
        deadline = time.monotonic() + 30
        while not feed.eof:
            assert time.monotonic() < deadline, "the tracer did not finish"
            select.select([feed], [], [], 0.05)
            feed.drain()
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        feed.close()
    return proc.pid


def build_with_tracer(tmp_path_factory: pytest.TempPathFactory, source: str, name: str,
                      *cflags: str) -> tuple[Path, Path]:
    """The tracer and the test program tests/SOURCE built as NAME with ``cflags``."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler (cc) to build the tracer and its test program")
    d = tmp_path_factory.mktemp(name)
    tracer = build(d / "tracefs-sim-tracer")
    prog = d / name
    subprocess.run([cc, *cflags, "-O1", "-o", str(prog), str(TESTS / source)], check=True)
    return tracer, prog


@pytest.fixture(scope="module")
def sysprobe(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tracer and tests/host_tracer_helper.c built static without libc (every syscall
    between its execve and exit_group is one it makes)."""
    return build_with_tracer(tmp_path_factory, "host_tracer_helper.c", "sysprobe", "-static",
                             "-nostdlib", "-ffreestanding", "-fno-stack-protector", "-no-pie")


def test_a_real_program_every_syscall_event(sysprobe: tuple[Path, Path], tmp_path: Path) -> None:
    """The helper's fixed sequence under the real tracer, fed to a kernel with every
    syscalls:* event enabled: between its execve and its exit_group exactly its
    syscalls, with their real arguments and return values, ``...1.``, in order."""
    tracer, helper = sysprobe
    text, tracer_pid = trace_real(tracer, [str(helper), "seq", str(tmp_path)], "syscalls")
    events: dict[int, list[str]] = {}
    for ln in text.splitlines():
        m = re.match(r"\s*\S+-(\d+)\s+\[\d+\]\s+(\S+)\s+\d+\.\d+: (sys_.*)", ln)
        if m:
            events.setdefault(int(m.group(1)), []).append(f"{m.group(2)} {m.group(3)}")
    pid = next(p for p, evs in events.items() if f"...1. sys_kill(pid: {p:x}, sig: 0)" in evs)
    calls = events[pid]
    start = calls.index("...1. sys_execve -> 0x0") + 1
    calls = calls[start:calls.index("...1. sys_exit_group(error_code: 0)") + 1]
    child = next(p for p in events if p != pid)
    X = "[0-9a-f]+"
    expect = [
        "sys_getppid()", f"sys_getppid -> 0x{tracer_pid:x}",
        f"sys_write(fd: 1, buf: {X}, count: 6)", "sys_write -> 0x6",
        f"sys_openat(dfd: ffffffffffffff9c, filename: {X}, flags: 0, mode: 0)",
        "sys_openat -> 0xfffffffffffffffe",
        f"sys_nanosleep(rqtp: {X}, rmtp: 0)", "sys_nanosleep -> 0x0",
        f"sys_mkdir(pathname: {X}, mode: 1ed)", "sys_mkdir -> 0x0",
        f"sys_rmdir(pathname: {X})", "sys_rmdir -> 0x0",
        f"sys_openat(dfd: ffffffffffffff9c, filename: {X}, flags: 10000, mode: 0)", "sys_openat -> 0x3",
        f"sys_getdents64(fd: 3, dirent: {X}, count: 1000)", f"sys_getdents64 -> 0x{X}",
        "sys_close(fd: 3)", "sys_close -> 0x0",
        f"sys_newuname(name: {X})", "sys_newuname -> 0x0",
        "sys_getpid()", f"sys_getpid -> 0x{pid:x}",
        f"sys_kill(pid: {pid:x}, sig: 0)", "sys_kill -> 0x0",
        "sys_fork()", f"sys_fork -> 0x{child:x}",
        f"sys_wait4(upid: {child:x}, stat_addr: {X}, options: 0, ru: 0)", f"sys_wait4 -> 0x{child:x}",
        f"sys_execve(filename: {X}, argv: {X}, envp: {X})", "sys_execve -> 0x0",
        "sys_exit_group(error_code: 0)"]
    assert len(calls) == len(expect), calls
    for got, want in zip(calls, expect, strict=True):
        assert re.fullmatch(r"\.\.\.1\. " + re.escape(want).replace(re.escape(X), X), got), (got, want)
    assert events[child] == ["...1. sys_fork -> 0x0", "...1. sys_exit_group(error_code: 3)"]


def test_user_memory_is_readable_in_the_exit_path(env: Env) -> None:
    """An eprobe on a synthetic event fired from sys_exit_openat (ftracetest's
    trigger-synthetic-eprobe) reads the pathname the call passed: the user memory is
    still the task's while its exit events fire, and no longer after."""
    env.write("synthetic_events", "synth_open unsigned long filename; long ret;")
    env.write("events/syscalls/sys_enter_openat/trigger", "hist:keys=common_pid:__arg__1=filename")
    env.write("events/syscalls/sys_exit_openat/trigger",
              "hist:keys=common_pid:filename=$__arg__1,ret=ret:onmatch(syscalls.sys_enter_openat)"
              ".trace(synth_open,$filename,$ret)")
    write_file(env.root, "dynamic_events",
               "e:eprobe_open synthetic/synth_open file=+0($filename):ustring ret=$ret:s64", append=True)
    env.write("events/eprobes/eprobe_open/enable", "1")
    tr = env.tr
    tr.attached(env.at(0), 1, A, A, "ls")
    tr.sys_enter(env.at(10), 1, A, A, NR["openat"], args(AT_FDCWD, 0x40200B, 0, 0), {1: b"/etc/passwd"})
    tr.sys_exit(env.at(20), 1, A, A, NR["openat"], 3, {}, 3000, 0)
    got = [plain(ln) for ln in env.lines() if "eprobe_open" in ln]
    assert got == ['eprobe_open: (synthetic.synth_open) file="/etc/passwd" ret=3'], got
    assert env.k.mem.read(0x40200B, 4, user=True) is None


def test_the_tracer_mode_follows_what_could_see_a_syscall() -> None:
    """Syscalls mode while anything attached could see a syscall; the lifecycle
    tracepoints alone (the fork, exec and exit paths fire them, in either mode) do not
    need it: ftracetest's histograms on sched_process_fork run in lifecycle mode."""
    k = Kernel(nr_cpus=2, seed=1)
    root = build_tree(k)
    wl = k.workload
    assert wl.quiet() and not wl.syscalls_visible()
    write_file(root, "events/sched/sched_process_fork/trigger", "hist:keys=parent_pid")
    for ev in ("sched_process_exec", "sched_process_exit", "sched_prepare_exec"):
        write_file(root, f"events/sched/{ev}/enable", "1")
    write_file(root, "events/task/task_newtask/enable", "1")
    assert not wl.quiet() and not wl.syscalls_visible()
    # a child is freed when its parent's wait4 reaps it: a syscall
    write_file(root, "events/sched/sched_process_free/enable", "1")
    assert wl.syscalls_visible()
    write_file(root, "events/sched/sched_process_free/enable", "0")
    write_file(root, "events/kmem/kmalloc/trigger", "hist:keys=call_site")
    assert wl.syscalls_visible()
    write_file(root, "events/kmem/kmalloc/trigger", "!hist:keys=call_site")
    assert not wl.syscalls_visible()
    write_file(root, "current_tracer", "function")
    assert wl.syscalls_visible()
    write_file(root, "tracing_on", "0")     # the function tracer can record nothing
    assert not wl.syscalls_visible()
    write_file(root, "tracing_on", "1")
    write_file(root, "current_tracer", "nop")
    write_file(root, "kprobe_events", "p:kp vfs_read")
    assert not wl.syscalls_visible()
    write_file(root, "events/kprobes/kp/enable", "1")
    assert wl.syscalls_visible()


def test_events_enabled_only_where_tracing_is_off_leave_the_machine_quiet() -> None:
    """An event file takes nothing while its instance's tracing_on is 0 and it has no
    trigger (ftracetest's reset greps 1,500 files with tracing off and the last case's
    events still enabled): nothing can see a syscall then.  A trigger, an instance that
    records, or a kprobe event (its hit count grows with tracing off) can."""
    k = Kernel(nr_cpus=2, seed=1)
    root = build_tree(k)
    wl = k.workload
    write_file(root, "events/sched/sched_switch/enable", "1")
    write_file(root, "events/kmem/kmalloc/enable", "1")
    assert not wl.quiet() and wl.syscalls_visible()
    write_file(root, "tracing_on", "0")
    assert wl.quiet() and not wl.syscalls_visible()
    # a filtered file's match is committed to the per-CPU buffered event (task info is
    # saved at the next switch) before the ring buffer refuses it
    write_file(root, "events/sched/sched_switch/filter", "prev_pid >= 0")
    assert not wl.quiet() and wl.syscalls_visible()
    write_file(root, "events/sched/sched_switch/filter", "0")
    assert wl.quiet()
    write_file(root, "events/kmem/kmalloc/trigger", "traceon")     # runs without a record
    assert not wl.quiet() and wl.syscalls_visible()
    write_file(root, "events/kmem/kmalloc/trigger", "!traceon")
    assert wl.quiet()
    root.lookup("instances").mkdir("rec")
    write_file(root, "instances/rec/events/sched/sched_switch/enable", "1")
    assert not wl.quiet() and wl.syscalls_visible()
    write_file(root, "instances/rec/tracing_on", "0")
    assert wl.quiet()
    write_file(root, "dynamic_events", "f:fp vfs_read\n", append=True)
    write_file(root, "events/fprobes/fp/enable", "1")
    assert wl.quiet(), "a trace_fprobe counts no hits"
    write_file(root, "kprobe_events", "p:kp vfs_read")
    write_file(root, "events/kprobes/kp/enable", "1")
    assert not wl.quiet() and wl.syscalls_visible()
    write_file(root, "events/kprobes/kp/enable", "0")
    assert wl.quiet()
    write_file(root, "tracing_on", "1")
    assert not wl.quiet() and wl.syscalls_visible()


def test_a_synthetic_event_named_as_a_static_one_keeps_the_count_right() -> None:
    """synthetic_events accepts a static event's name (only another synthetic event's is
    refused): two tracepoints of one name, each enabled and disabled on its own."""
    k = Kernel(nr_cpus=2, seed=1)
    root = build_tree(k)
    wl = k.workload
    write_file(root, "synthetic_events", "sched_switch u64 lat")
    write_file(root, "events/synthetic/sched_switch/enable", "1")
    write_file(root, "events/sched/sched_switch/enable", "1")
    write_file(root, "events/synthetic/sched_switch/enable", "0")
    assert not wl.quiet() and wl.syscalls_visible()
    write_file(root, "events/synthetic/sched_switch/enable", "1")
    write_file(root, "events/sched/sched_switch/enable", "0")
    write_file(root, "events/synthetic/sched_switch/enable", "0")
    assert wl.quiet()


def test_with_tracing_off_nothing_is_recorded_and_recording_resumes() -> None:
    """While the enabled events take nothing the machine's paths are skipped: no record;
    the hit counts of kprobe events grow all along (they keep the paths running), and
    with tracing on again the same syscall path records."""
    k = Kernel(nr_cpus=2, seed=1)
    root = build_tree(k)
    write_file(root, "kprobe_events", "p:kp vfs_read")
    write_file(root, "events/sched/sched_switch/enable", "1")
    write_file(root, "events/syscalls/sys_enter_read/enable", "1")
    write_file(root, "tracing_on", "0")
    write_file(root, "trace", "")

    def reads(pid: int, comm: str) -> None:
        for _ in range(3):
            k.syscall_enter(pid, comm, 1, op="read", name="tracing_on", count=4096)
            k.syscall_exit(2)

    reads(4242, "quietcat")
    assert read_file(root, "kprobe_profile").split()[1] == b"0"
    write_file(root, "events/kprobes/kp/enable", "1")    # live again: its hits count
    reads(4242, "quietcat")
    assert read_file(root, "kprobe_profile").split()[1] == b"3"
    assert not any(b"sys_read" in ln for ln in read_file(root, "trace").splitlines()
                   if not ln.startswith(b"#"))
    write_file(root, "events/kprobes/kp/enable", "0")
    write_file(root, "tracing_on", "1")
    reads(4343, "loudcat")
    trace = read_file(root, "trace").decode()
    assert "loudcat-4343" in trace and "sys_read(fd:" in trace, trace
    assert "next_comm=loudcat" in trace


def test_a_trigger_on_the_marker_event_leaves_the_machine_quiet() -> None:
    """ftrace/print is written by trace_marker itself, never fired from a code path of
    the workload: its histogram (ftracetest's trace-marker trigger tests) needs neither
    the syscalls mode nor the background, and still counts every marker write."""
    k = Kernel(nr_cpus=2, seed=1)
    root = build_tree(k)
    wl = k.workload
    write_file(root, "events/ftrace/print/trigger", "hist:keys=common_pid")
    assert wl.quiet() and not wl.syscalls_visible()
    for _ in range(3):
        write_file(root, "trace_marker", "hello")
    hist = read_file(root, "events/ftrace/print/hist").decode()
    assert "hitcount:          3" in hist, hist
    write_file(root, "events/sched/sched_switch/enable", "1")
    assert not wl.quiet() and wl.syscalls_visible()


def test_a_wait4_the_mode_switch_interrupted_is_restarted_with_its_arguments() -> None:
    """A shell asleep in wait4 when syscalls mode begins: the interrupt makes it return
    -ERESTARTSYS and enter wait4 again with the same arguments, unseen before; the
    child's exit then wakes it (it waits for that child) and its return is shown."""
    env = Env("sched/sched_process_exit", "sched/sched_waking", "syscalls/sys_exit_wait4")
    tr = env.tr
    tr.attached(env.at(0), 1, A, A, "sh")
    tr.new_task(env.at(100), 1, A, B, B, 1, 17, "sh", 0)
    tr.interrupted(env.at(3000), 1, A, A, NR["wait4"], -512)     # -ERESTARTSYS
    tr.sys_enter(env.at(3010), 1, A, A, NR["wait4"], args(B, 0x7FFC0000), {})
    tr.sys_enter(env.at(3100), 0, B, B, NR["exit_group"], args(0), {})
    tr.exit(env.at(3110), 0, B, B, 0, True)
    tr.gone(env.at(3120), 0, B, B, 0)
    tr.sys_exit(env.at(3200), 1, A, A, NR["wait4"], B, {}, 150_000, 1)
    got = [ln.split(None, 4)[4] for ln in env.lines()]
    assert got == ["sched_process_exit: comm=sh pid=2000 prio=120",
                   "sched_waking: comm=sh pid=1000 prio=120 target_cpu=001",
                   "sys_wait4 -> 0x7d0"]
