"""Unmodified tracing tools against the simulator through ``tracefs-sim run`` (tracefs_sim/run.py).

Each test runs ``python -m tracefs_sim run --cpus 2 [--seed 1] -- CMD`` (its own private mount
namespace, its own simulated kernel, CMD under the host tracer).  The tools trace real
commands and find what those really did: their syscalls with their arguments and return
values, the kernel functions on the way, their forks and execs.  Needs root and /dev/fuse;
the tools are installed with scripts/setup-tools when missing, and their tests are skipped
when that fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.mount,
    pytest.mark.skipif(os.geteuid() != 0, reason="tracefs-sim run needs root"),
]


def run(cmd: str, cwd: Path, timeout: float = 120, cpus: int = 2,
        seed: int | None = 1) -> subprocess.CompletedProcess:
    """``sh -c CMD`` through the wrapper; stdout and stderr together in ``.stdout``."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    opts = ["--seed", str(seed)] if seed is not None else []
    return subprocess.run([sys.executable, "-m", "tracefs_sim", "run", "--cpus", str(cpus), *opts,
                           "--server-log", str(cwd / "server.log"), "--", "sh", "-c", cmd],
                          cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)


def host_tracing_mounts() -> list[str]:
    """Mounts of the host's tracing paths (others' simulator mounts elsewhere come and go)."""
    with open("/proc/self/mounts") as f:
        return [line for line in f if " /sys/kernel/" in line or " /proc/" in line
                or " /sys/devices/" in line]


@pytest.fixture(scope="module")
def trace_cmd() -> str:
    if shutil.which("trace-cmd") is None:
        r = subprocess.run(["bash", str(ROOT / "scripts/setup-tools"), "trace-cmd"],
                           capture_output=True, text=True, timeout=600)
        if r.returncode or shutil.which("trace-cmd") is None:
            pytest.skip(f"trace-cmd cannot be installed: {r.stderr[-500:]}")
    return "trace-cmd"


# ------------------------------------------------------------------- the wrapper itself

def test_run_namespace(tmp_path: Path) -> None:
    before = host_tracing_mounts()
    r = run("grep -E ' (fuse\\.)?tracefs ' /proc/mounts; cat /sys/devices/system/cpu/possible;"
            " grep -c . /proc/kallsyms; grep -w vfs_read /proc/kallsyms;"
            " echo 1 > /proc/sys/kernel/ftrace_enabled && echo ftrace_enabled-ok;"
            " cat /sys/kernel/tracing/available_tracers /sys/kernel/debug/tracing/tracing_on;"
            " ls -d /sys/kernel/tracing/per_cpu/cpu*; exit 7", tmp_path, cpus=3)
    # (the checks of what tracing code reads besides tracefs: test_run_machine)
    out = r.stdout
    assert r.returncode == 7, out
    lines = out.splitlines()
    # libtracefs' pick (first type "tracefs"), and ftracetest's (first line containing "tracefs")
    assert lines[0] == "nodev /sys/kernel/tracing tracefs rw,relatime 0 0", out
    assert "tracefs /sys/kernel/tracing fuse.tracefs" in out
    assert "tracefs /sys/kernel/debug/tracing fuse.tracefs" in out
    assert "0-2" in lines
    assert any(line.endswith(" T vfs_read") for line in lines), out
    assert "ftrace_enabled-ok" in lines
    assert "function_graph" in out and "function" in out
    assert [x for x in lines if x.startswith("/sys/kernel/tracing/per_cpu/")] == [
        f"/sys/kernel/tracing/per_cpu/cpu{i}" for i in range(3)]
    assert host_tracing_mounts() == before  # nothing leaked to the host namespace


def test_run_machine(tmp_path: Path) -> None:
    """What tracing code reads besides tracefs is the simulated kernel's: /proc/version
    (kprobe_args_symbol.tc compares it with @linux_proc_banner), its sysctls (mirrored
    both ways), debugfs kprobes/list, a tracefs remount with gid= through mount(8), the
    CPUs' online files (private: a CPU taken offline is not the host's)."""
    online = sorted(Path("/sys/devices/system/cpu").glob("cpu[0-9]*/online"))
    host_online = [p.read_text() for p in online]
    r = run("cd /sys/kernel/tracing; cat /proc/version; cat /proc/sys/kernel/stack_tracer_enabled;"
            " echo 1 > /proc/sys/kernel/stack_tracer_enabled; cat /proc/sys/kernel/stack_tracer_enabled;"
            " cat stack_max_size > /dev/null; echo 0 > /proc/sys/debug/kprobes-optimization;"
            " cat /proc/sys/debug/kprobes-optimization; echo 'p:kp vfs_read' > kprobe_events;"
            " echo 1 > events/kprobes/kp/enable; cat /sys/kernel/debug/kprobes/list;"
            " echo 0 > events/kprobes/kp/enable; echo > kprobe_events;"
            " mount -t tracefs -o remount,rw,gid=4 nodev /sys/kernel/tracing && stat -c %g events;"
            " for f in /sys/devices/system/cpu/cpu[0-9]*/online; do echo 0 > $f; done; echo done",
            tmp_path)
    assert r.returncode == 0, r.stdout
    lines = r.stdout.splitlines()
    assert lines[0].startswith("Linux version 6.12."), r.stdout
    assert lines[1:4] == ["0", "1", "0"], r.stdout
    # the probe as the kernel lists it: on the fentry call, an ftrace-based kprobe
    assert re.fullmatch(r"[0-9a-f]{16}  k  vfs_read\+0x4\s+\[FTRACE\]", lines[4]), r.stdout
    assert lines[5:] == ["4", "done"], r.stdout
    assert [p.read_text() for p in online] == host_online


def test_run_exit_status_and_missing_command(tmp_path: Path) -> None:
    assert run("true", tmp_path).returncode == 0
    assert run("kill -TERM $$", tmp_path).returncode == 128 + 15
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "tracefs_sim", "run", "--", "/nonexistent/cmd"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 127, r.stderr


def test_run_traces_the_commands_host_opens(tmp_path: Path) -> None:
    """CMD's opens of host files pass do_sys_openat2 in the simulated kernel as CMD's
    task, with the pathname it passed (read from its memory by the tracer)."""
    (tmp_path / "hostfile").write_text("x\n")
    cmd = ("cd /sys/kernel/tracing"
           " && echo 'p:op do_sys_openat2 path=+0($arg2):ustring' > kprobe_events"
           f" && echo 1 > events/kprobes/op/enable && cat {tmp_path}/hostfile > /dev/null"
           " && echo 0 > events/kprobes/op/enable && grep -o 'cat-.*path=\"[^\"]*\"' trace")
    r = run(cmd, tmp_path)
    assert r.returncode == 0, r.stdout
    assert f'path="{tmp_path}/hostfile"' in r.stdout, r.stdout


# ------------------------------------------------------------------- trace-cmd

def test_trace_cmd_list(tmp_path: Path, trace_cmd: str) -> None:
    r = run("trace-cmd list -t && echo --- && trace-cmd list -e | grep -E '^(sched:sched_switch|ftrace:function)$'"
            " && echo --- && trace-cmd list -f | grep -x vfs_read", tmp_path)
    assert r.returncode == 0, r.stdout
    tracers = r.stdout.split("---")[0].split()
    assert {"function", "function_graph", "nop"} <= set(tracers), r.stdout
    assert "sched:sched_switch" in r.stdout and "vfs_read" in r.stdout


def test_trace_cmd_stat_and_reset(tmp_path: Path, trace_cmd: str) -> None:
    r = run("trace-cmd stat && echo === && trace-cmd reset && echo reset-ok", tmp_path, timeout=180)
    assert r.returncode == 0, r.stdout
    assert "Tracing is enabled" in r.stdout
    assert "All disabled" in r.stdout
    assert "reset-ok" in r.stdout


def test_trace_cmd_record_nosplice_report(tmp_path: Path, trace_cmd: str) -> None:
    r = run("trace-cmd record --nosplice -p function -l vfs_read -- sleep 0.5 && trace-cmd report",
            tmp_path, timeout=180)
    assert r.returncode == 0, r.stdout
    assert (tmp_path / "trace.dat").stat().st_size > 0
    rows = [line for line in r.stdout.splitlines() if "function:" in line]
    assert rows, r.stdout
    # function names resolved from the simulated kallsyms copied into trace.dat, comms from
    # saved_cmdlines ("comm-pid"), never a bare address
    assert all(line.split()[-1] == "vfs_read" for line in rows), rows
    comms = {line.split()[0].rsplit("-", 1)[0] for line in rows}
    assert comms & {"trace-cmd", "sleep"}, comms
    # trace.dat is self-contained: report works again outside the namespace
    again = subprocess.run(["trace-cmd", "report", "-i", str(tmp_path / "trace.dat")],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "vfs_read" in again.stdout, again.stderr


def test_trace_cmd_record_syscalls_of_a_command(tmp_path: Path, trace_cmd: str) -> None:
    """``trace-cmd record -e syscalls -F CMD``: the command's real syscalls with their
    real arguments and return values (cat of a 6-byte file: its open returns a
    descriptor, a read of it returns 6, the write of 6 bytes to fd 1, the read at EOF
    returns 0, exit_group), and nothing of any other process (-F)."""
    six = tmp_path / "six"
    six.write_text("hello\n")
    r = run(f"trace-cmd record --nosplice -e syscalls -F /bin/cat {six} > /dev/null 2>&1;"
            " trace-cmd report 2>/dev/null", tmp_path, timeout=180, seed=None)
    assert r.returncode == 0, r.stdout[-3000:]
    rows = [line for line in r.stdout.splitlines() if ": sys_e" in line]
    assert rows, r.stdout[-3000:]
    assert {line.split()[0].rsplit("-", 1)[0] for line in rows} == {"cat"}, rows[:5]
    events = [line.split(": ", 1)[1].split() for line in rows]
    calls = [(e[0], " ".join(e[1:])) for e in events]
    assert ("sys_exit_execve:", "0x0") in calls, calls[:20]
    reads = [i for i, (name, args) in enumerate(calls)
             if name == "sys_exit_read:" and args == "0x6"]
    assert reads, calls
    i = reads[0]
    write = next(c for c in calls[i:] if c[0] == "sys_enter_write:")
    assert write[1].startswith("fd: 0x00000001,") and write[1].endswith("count: 0x00000006"), write
    assert ("sys_exit_write:", "0x6") in calls[i:], calls[i:]
    assert ("sys_exit_read:", "0x0") in calls[i:], calls[i:]
    assert calls[-1][0] == "sys_enter_exit_group:", calls[-5:]


# a fixed sequence of requests from one shell pinned to CPU 0
SEQUENCE = """cd /sys/kernel/tracing
echo 0 > tracing_on
echo > trace
echo 'sched:sched_switch sched:sched_wakeup' > set_event
echo vfs_read > set_graph_function
echo 3 > max_graph_depth
echo function_graph > current_tracer
echo 1 > tracing_on
for i in 1 2 3 4 5 6; do cat tracing_on > /dev/null; done
echo 0 > tracing_on
"""


def test_trace_cmd_report_of_a_recorded_sequence(tmp_path: Path, trace_cmd: str) -> None:
    """A fixed sequence recorded in the kernel's buffer, then ``trace-cmd extract`` and
    ``report``: function names resolved from the kallsyms copied into trace.dat, the
    comms of the shell's children, function_graph nesting with durations, sched events.

    A seeded kernel alone is reproducible (tests/test_determinism.py); under ``run`` the
    traced programs' real activity and its timing are part of the trace, so the report
    is checked for what it must hold, not byte for byte."""
    (tmp_path / "seq.sh").write_text(SEQUENCE)
    r = run(f"LC_ALL=C LANG=C taskset -c 0 sh {tmp_path}/seq.sh && trace-cmd extract -o {tmp_path}/seq.dat > /dev/null 2>&1"
            f" && trace-cmd report -i {tmp_path}/seq.dat", tmp_path, timeout=180)
    assert r.returncode == 0, r.stdout
    lines = r.stdout.splitlines()
    assert lines[0] == "cpus=2", r.stdout[:2000]
    # every task is named (a RELEASE that came after a cat exited once renamed it "<...>")
    assert not [line for line in lines if line.lstrip().startswith("<...>-")], r.stdout[:4000]
    graph = [line.split() for line in lines if "funcgraph_" in line and line.lstrip().startswith("cat-")]
    # each cat reads tracing_on through vfs_read (and a second read at EOF), on CPU 0
    opened = [g for g in graph if g[-2:] == ["vfs_read()", "{"]]
    assert len(opened) >= 12 and {g[1] for g in opened} == {"[000]"}, r.stdout[:4000]
    assert any(g[-1] == "security_file_permission();" for g in graph), r.stdout[:4000]
    closed = [g for g in graph if g[3] == "funcgraph_exit:" and g[-1] == "}"]
    assert len(closed) >= len(opened) and all(g[-3] == "us" for g in closed), r.stdout[:4000]
    assert any("sched_switch:" in line and "==> cat:" in line for line in lines), r.stdout[:4000]


def test_trace_cmd_start_show_stop(tmp_path: Path, trace_cmd: str) -> None:
    r = run("trace-cmd start -p function -l vfs_read && cat /sys/kernel/tracing/current_tracer"
            " && trace-cmd show | tail -3 && trace-cmd stop && cat /sys/kernel/tracing/tracing_on",
            tmp_path, timeout=180)
    assert r.returncode == 0, r.stdout
    lines = r.stdout.splitlines()
    assert "function" in lines
    assert any(" vfs_read <-" in line for line in lines), r.stdout
    assert lines[-1] == "0"


# a command recorded by trace-cmd starts once its recorders have (see the test below)
LATE = "sh -c 'sleep 1; exec \"$@\"' late"


def test_trace_cmd_options_graph_events_and_fprobe_record(tmp_path: Path, trace_cmd: str) -> None:
    """list -o; start -p function_graph -g; start -e sched; record in the default (splice)
    mode; record --nosplice of an fprobe event and of function_graph.

    Every record checked comes from a request the command itself makes, and is read by a
    mode that cannot lose it.  The seeded kernel has no background activity between
    requests, and a host file's read(2) never reaches it: the function_graph checks trace
    a ``cat`` reading through the mount (``cat /etc/hostname`` recorded a vfs_read only
    when other activity fell in the window), the sched check the requester change of
    ``trace-cmd show`` itself, the fprobe check cat's own open of /etc/hostname (mirrored
    synchronously: cat waits for the server; pinned, so the CPU is always the same).  The
    default mode (splice, which FUSE never hands to the server) is checked for finishing
    with a readable trace.dat; the records are checked through --nosplice.

    The recorded commands start late (``LATE``): trace-cmd forks its per-CPU recorders
    and then the command without waiting for them, and a recorder told to stop before it
    began recording exits without reading its CPU's buffer.  Under load the recorders'
    start-up (each request a FUSE round trip, each syscall a ptrace stop) could outlast
    a bare ``cat``, and cat's records were then never read (one recorder made no read at
    all: the server's log of a failing run)."""
    r = run("trace-cmd list -o | grep -x -e irq-info -e nofuncgraph-proc ; echo ===;"
            " trace-cmd start -p function_graph -g vfs_read && cat /sys/kernel/tracing/tracing_on > /dev/null"
            " && trace-cmd show | grep -m1 'vfs_read() {' ; trace-cmd stop; trace-cmd reset; echo ===;"
            " trace-cmd start -e sched && trace-cmd show | grep -m1 -o 'sched_switch: prev_comm='"
            " ; trace-cmd reset; echo ===;"
            f" trace-cmd record -o {tmp_path}/s.dat -e sched:sched_switch -- cat /etc/hostname > /dev/null 2>&1"
            f" && trace-cmd report -i {tmp_path}/s.dat | head -1 ; echo ===;"
            " echo 'f:myopen do_sys_openat2 path=+0($arg2):ustring' >> /sys/kernel/tracing/dynamic_events"
            f" && trace-cmd record --nosplice -o {tmp_path}/f.dat -e fprobes:myopen -- taskset -c 0 {LATE} cat /etc/hostname"
            f" > /dev/null 2>&1 && trace-cmd report -i {tmp_path}/f.dat | grep -c 'cat-.*myopen:.*path=\"/etc/hostname\"' ; echo ===;"
            f" trace-cmd record --nosplice -o {tmp_path}/g.dat -p function_graph -g vfs_read -- {LATE} cat /sys/kernel/tracing/README"
            f" > /dev/null 2>&1 && trace-cmd report -i {tmp_path}/g.dat | grep -m1 -o 'cat-[0-9]* .*funcgraph_entry:.*vfs_read() {{'",
            tmp_path, timeout=240)
    parts = r.stdout.split("===")
    assert r.returncode == 0 and len(parts) == 6, r.stdout
    assert sorted(parts[0].split()) == ["irq-info", "nofuncgraph-proc"], r.stdout
    assert "vfs_read() {" in parts[1], r.stdout
    assert "sched_switch: prev_comm=" in parts[2], r.stdout
    assert parts[3].split() == ["cpus=2"], r.stdout
    assert parts[4].split() == ["1"], r.stdout           # cat's open, through the mirror
    assert re.search(r"cat-\d+ .*funcgraph_entry:.*vfs_read\(\) \{", parts[5]), r.stdout


# ------------------------------------------------------------------- perf, perf-tools

FTRACE_LOCK = Path("/var/tmp/.ftrace-lock")   # perf-tools' "ftrace in use" lock


def _need(tool: str, package: str) -> None:
    if shutil.which(tool) is None:
        subprocess.run(["bash", str(ROOT / "scripts/setup-tools"), package], capture_output=True, timeout=600)
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} ({package}) cannot be installed")
    if tool.endswith("-perf"):
        _drop_stale_ftrace_lock()


def _drop_stale_ftrace_lock() -> None:
    """A perf-tools script killed by a timeout leaves its lock behind, and every later
    one refuses to start ("ftrace may be in use by PID"): a lock whose PID is gone is
    removed, as a user would after checking that PID."""
    try:
        pid = int(FTRACE_LOCK.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return
    if not Path(f"/proc/{pid}").exists():
        FTRACE_LOCK.unlink(missing_ok=True)


def test_perf_ftrace_functions_of_a_command(tmp_path: Path) -> None:
    """``perf ftrace -- CMD``: the kernel functions of the command's own syscalls (its
    reads of a host file through vfs_read, its write through vfs_write), only the
    command's (perf traces its pid)."""
    _need("perf", "linux-perf")
    six = tmp_path / "six"
    six.write_text("hello\n")
    r = run(f"timeout -s KILL 60 perf ftrace -T vfs_read -T vfs_write -- cat {six}", tmp_path,
            seed=None)
    assert r.returncode == 0, r.stdout
    recs = [line.split() for line in r.stdout.splitlines() if " vfs_" in line and "<-" in line]
    assert {rec[0].rsplit("-", 1)[0] for rec in recs} == {"cat"}, recs
    funcs = {(rec[-2], rec[-1]) for rec in recs}
    assert ("vfs_read", "<-ksys_read") in funcs and ("vfs_write", "<-ksys_write") in funcs, recs


def test_perf_tools_kprobe_sees_a_commands_reads(tmp_path: Path) -> None:
    """perf-tools' kprobe on vfs_read's return, while a command runs beside it: the
    return values of the command's real reads (6 bytes of a 6-byte file, then 0).

    kprobe-perf enables the event, then clears the buffer (``echo > trace``), sleeps for
    its duration and reads ``trace``: the command runs a second after the enable and
    well before the read, so that on a loaded machine neither the clear nor the read is
    likely to race it (as they could on the kernel)."""
    _need("kprobe-perf", "perf-tools-unstable")
    six = tmp_path / "six"
    six.write_text("hello\n")
    enabled = "/sys/kernel/tracing/events/kprobes/vfs_read/enable"
    r = run(f"(until grep -qs 1 {enabled}; do sleep 0.1; done; sleep 1; cat {six} > /dev/null) &"
            " timeout -k 10 60 kprobe-perf -d 6 'r:vfs_read ret=$retval' | grep '^ *cat-'; wait",
            tmp_path, seed=None)
    rets = [line.rsplit("ret=", 1)[1] for line in r.stdout.splitlines()
            if "(ksys_read+" in line and "<- vfs_read)" in line]
    assert "6" in rets and "0" in rets, r.stdout


def test_perf_tools_functrace_tpoint(tmp_path: Path) -> None:
    _need("functrace-perf", "perf-tools-unstable")
    r = run("timeout -k 10 30 functrace-perf -d 1 vfs_read | head -5; echo ===;"
            " timeout -k 10 30 tpoint-perf -d 1 sched:sched_switch | head -5", tmp_path)
    assert r.returncode == 0, r.stdout
    funcs, switches = r.stdout.split("===")
    assert any(line.rstrip().endswith(": vfs_read <-ksys_read") or " vfs_read <-" in line
               for line in funcs.splitlines()), r.stdout
    assert "sched_switch: prev_comm=" in switches, r.stdout


def test_perf_tools_funcgraph_kprobe_and_funccount(tmp_path: Path) -> None:
    """funcgraph and kprobe work; funccount needs function_profile_enabled, which the
    reference kernel does not build (no CONFIG_FUNCTION_PROFILER): creating it fails with
    EACCES and funccount exits 1 with its error, as there."""
    _need("funcgraph-perf", "perf-tools-unstable")
    r = run("timeout -k 10 30 funcgraph-perf -d 1 vfs_read | head -4; echo ===;"
            " timeout -k 10 30 kprobe-perf -d 1 'p:do_sys_openat2 filename=+0(%si):string' | head -4;"
            " echo ===; timeout -k 10 30 funccount-perf -d 1 'vfs_*'; echo rc=$?", tmp_path)
    graph, kprobe, count = r.stdout.split("===")
    assert "vfs_read() {" in graph, r.stdout
    assert re.search(r'do_sys_openat2: \(do_sys_openat2\+0x0/0x\w+\) filename="/', kprobe), r.stdout
    assert "function_profile_enabled: Permission denied" in count, r.stdout
    assert "ERROR: enabling function profiling" in count and "rc=1" in count, r.stdout


def test_perf_ftrace_ends(tmp_path: Path) -> None:
    """perf's drain read after tracing_on=0 is O_NONBLOCK by fcntl: it must not hang."""
    _need("perf", "linux-perf")
    r = run("timeout -s KILL 30 perf ftrace -T vfs_read -- sleep 0.3", tmp_path)
    assert r.returncode == 0, r.stdout
    assert "# tracer: function" in r.stdout
