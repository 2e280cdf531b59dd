"""Host activity mirrored into the simulated kernel (tracefs_sim/hostprocs.py).

Between requests the idle ticker polls: a host process's voluntary context switches
are sleeps and wakeups of its simulated task; a working directory changed since the
requester's last request is its chdir(2), with the pathname in its user memory.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

from tracefs_sim.hostprocs import HostProcs, exec_filename
from tracefs_sim.kernel import Kernel
from tracefs_sim.tracefs import build_tree
from tracefs_sim.tracefs.files import read_file, write_file


def _host() -> HostProcs:
    hp = HostProcs()
    if not hp.enabled:
        pytest.skip("no /proc/sys/kernel/ns_last_pid")
    return hp


def _cpu_of(pid: int) -> int:
    return 0                       # the adapter's CPU of a host task


def _poll_until(hp: HostProcs, k: Kernel, done, deadline: float) -> None:
    """Poll as the idle ticker does (every 10 ms) until ``done()`` or the deadline."""
    while not done() and time.monotonic() < deadline:
        hp.poll(k, _cpu_of)
        time.sleep(0.01)


def test_a_rename_is_no_exec_and_an_exec_names_its_program():
    """A host process that renames itself (prctl(PR_SET_NAME), as perf's child does
    before its exec) keeps its image: a task_rename, no sched_process_exec.  Its exec
    later is one, with the program /proc names."""
    hp = _host()
    k = Kernel(nr_cpus=2)
    root = build_tree(k)
    for ev in ("sched/sched_process_exec", "task/task_rename"):
        write_file(root, f"events/{ev}/enable", "1")
    # each step waits for a line, written once the poll has seen the step before
    code = ("import ctypes, os, sys\nsys.stdin.readline()\n"
            "ctypes.CDLL(None).prctl(15, b'renamed', 0, 0, 0)\nsys.stdin.readline()\n"
            "os.execvp('sleep', ['sleep', '30'])")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        for step, comm in ((b"", None), (b"\n", "renamed"), (b"\n", "sleep")):
            proc.stdin.write(step)
            proc.stdin.flush()
            if comm is None:
                _poll_until(hp, k, lambda: proc.pid in hp.known, deadline)
                assert proc.pid in hp.known
            else:
                _poll_until(hp, k, lambda c=comm: hp.known.get(proc.pid) == c, deadline)
                assert hp.known.get(proc.pid) == comm
        sleep_exe = os.readlink(f"/proc/{proc.pid}/exe")
    finally:
        proc.kill()
        proc.wait(timeout=10)
    text = read_file(root, "trace").decode()
    mine = [ln for ln in text.splitlines() if f"pid={proc.pid} " in ln]
    assert any("task_rename:" in ln and "newcomm=renamed" in ln for ln in mine), mine
    assert any(f"sched_process_exec: filename={sleep_exe} pid={proc.pid} " in ln for ln in mine), mine
    assert not any("renamed" in ln for ln in mine if "sched_process_exec" in ln), mine


def test_the_exec_filename_is_named_as_the_comm():
    """sched_process_exec prints the path execve() was given, whose last part is the
    comm: /proc's exe is the program a link led to (sh runs dash)."""
    assert exec_filename("sleep", ("/usr/bin/sleep", "7ffd0")) == "/usr/bin/sleep"
    assert exec_filename("sh", ("/usr/bin/dash", "7ffd0")) == "/usr/bin/sh"
    assert exec_filename("a-very-long-pro", ("/opt/x/a-very-long-program", "1")) == \
        "/opt/x/a-very-long-program"     # the comm is the name's first 15 bytes
    assert exec_filename("cat", None) is None


def test_a_sleeping_host_process_wakes_up_in_the_trace():
    hp = _host()
    k = Kernel(nr_cpus=2)          # unseeded: host activity is mirrored
    root = build_tree(k)
    write_file(root, "set_event", "sched:sched_waking sched:sched_wakeup sched:sched_switch")
    proc = subprocess.Popen([sys.executable, "-c",
                             "import time\nfor _ in range(40): time.sleep(0.02)"])
    try:
        deadline = time.monotonic() + 5
        _poll_until(hp, k, lambda: proc.pid in hp.known, deadline)
        assert proc.pid in hp.known
        # poll while it runs (several polls: a loaded machine may run it late)
        comm = hp.known[proc.pid][:15]
        while proc.poll() is None and time.monotonic() < deadline + 5:
            time.sleep(0.05)
            comm = hp.known.get(proc.pid, comm)[:15]
            hp.poll(k, _cpu_of)
    finally:
        proc.wait(timeout=10)
    text = read_file(root, "trace").decode()
    assert f"sched_waking: comm={comm} pid={proc.pid} " in text
    assert f"sched_wakeup: comm={comm} pid={proc.pid} " in text
    assert f"next_comm={comm} next_pid={proc.pid} " in text
    assert f"prev_comm={comm} prev_pid={proc.pid} prev_prio=120 prev_state=S" in text
    # exits are noticed too
    hp.poll(k, _cpu_of)
    assert proc.pid not in hp.known


def test_a_changed_working_directory_is_a_chdir(tmp_path):
    hp = _host()
    k = Kernel(nr_cpus=2)
    root = build_tree(k)
    write_file(root, "dynamic_events", "e:ech syscalls/sys_enter_chdir file=+0($filename):ustring")
    write_file(root, "events/eprobes/ech/enable", "1")
    me = os.getpid()

    def request() -> None:
        k.syscall_enter(me, "pytest", 0, before=lambda: hp.chdir(k, me))
        k.syscall_exit(0)

    old = os.getcwd()
    try:
        request()                       # remembers the working directory
        os.chdir(tmp_path)
        request()                       # the change is a chdir(2) before this request
        request()                       # no further change: nothing
    finally:
        os.chdir(old)
    lines = [ln for ln in read_file(root, "trace").decode().splitlines() if " ech: " in ln]
    assert len(lines) == 1, lines
    assert lines[0].endswith(f'file="{tmp_path}"')


def test_an_exec_is_seen_by_a_hist_trigger_without_sched_events():
    """Only a hist trigger on sched_process_exec is attached (no sched_switch/wakeup
    event): a host process seen at its fork that execs later still passes the exec
    tracepoint (trigger-synthetic-event-dynstring.tc's ping)."""
    hp = _host()
    k = Kernel(nr_cpus=2)
    root = build_tree(k)
    write_file(root, "events/sched/sched_process_exec/trigger", "hist:key=pid")
    proc = subprocess.Popen([sys.executable, "-c",
                             "import os, time\ntime.sleep(0.3)\nos.execvp('sleep', ['sleep', '0.3'])"])
    try:
        deadline = time.monotonic() + 5
        _poll_until(hp, k, lambda: proc.pid in hp.known, deadline)
        assert proc.pid in hp.known
        _poll_until(hp, k, lambda: hp.known.get(proc.pid) == "sleep", deadline)
    finally:
        proc.wait(timeout=10)
    # the exec to sleep passed the tracepoint (python's own exec after the fork may too,
    # when the fork was seen late: one or two hits)
    hist = read_file(root, "events/sched/sched_process_exec/hist").decode()
    assert re.search(rf"\{{ pid:\s+{proc.pid} \}} hitcount:\s+[12]$", hist, re.M), hist
    assert hp.known.get(proc.pid, "sleep") == "sleep"
