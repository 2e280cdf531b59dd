"""``tracefs-sim run`` in the bad cases (issue 15 item 6): a missing command, a command
killed by a signal, many threads, a thousand children, a process killed inside a syscall,
a setuid binary, a command ignoring SIGTERM, Ctrl-C.  Each must end without a hang, leave
no process behind (stopped or not), and the mount must stay usable while CMD runs.

Each test runs ``python -m tracefs_sim run`` (its own namespace, tracer and kernel); a
marker word in CMD's command line finds any process it left.  Needs root and /dev/fuse.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TRACING = "/sys/kernel/tracing"

pytestmark = [
    pytest.mark.mount,
    pytest.mark.skipif(os.geteuid() != 0, reason="tracefs-sim run needs root"),
]


def _cmd(*cmd: str) -> list[str]:
    return [sys.executable, "-m", "tracefs_sim", "run", "--cpus", "2", "--", *cmd]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT))


def run(script: str, tmp: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """``sh -c SCRIPT`` under run; the server's log in tmp/server.log."""
    return subprocess.run([sys.executable, "-m", "tracefs_sim", "run", "--cpus", "2",
                           "--server-log", str(tmp / "server.log"), "--", "sh", "-c", script],
                          env=_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)


def left_behind(marker: str) -> list[str]:
    """Processes whose command line holds ``marker`` (with their state), ``run`` itself
    and its tracer excepted (their command lines hold CMD's)."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if marker in cmdline and " tracefs_sim run " not in cmdline and "tracefs-sim-tracer" not in cmdline:
            out.append(f"{pid} {state} {cmdline}")
    return out


def processes(word: str) -> list[str]:
    """"PID STATE CMDLINE" of the processes whose command line holds ``word``."""
    return left_behind(word)


def no_traceback(tmp: Path) -> None:
    log = (tmp / "server.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]


def test_command_not_found_and_not_executable(tmp_path: Path) -> None:
    r = subprocess.run(_cmd("tracefs-sim-no-such-command"), env=_env(), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 127
    assert "tracefs-sim-no-such-command: command not found" in r.stderr
    plain = tmp_path / "plain"
    plain.write_text("not a program\n")
    plain.chmod(0o644)
    r = subprocess.run(_cmd(str(plain)), env=_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 126, r.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL, signal.SIGSEGV])
def test_killed_by_signal(tmp_path: Path, sig: signal.Signals) -> None:
    r = run(f"kill -{sig.name.removeprefix('SIG')} $$", tmp_path)
    assert r.returncode == 128 + sig, r.stderr


def test_threads_children_and_a_death_inside_a_syscall(tmp_path: Path) -> None:
    """A process of 8 threads making syscalls (every syscall event enabled), 1,000
    children forked at once (fork events), a child killed while it sleeps in nanosleep
    (syscall events again): the mount answers after each, and its trace holds their
    events."""
    marker = "tracefs-sim-test-storm"
    threads = ("import os, threading\n"
               "def work():\n"
               "    for _ in range(200): os.getppid()\n"
               "ts = [threading.Thread(target=work) for _ in range(8)]\n"
               "[t.start() for t in ts]; [t.join() for t in ts]\n")
    r = run(f": {marker}; cd {TRACING} && echo 1 > events/syscalls/sys_enter_getppid/enable"
            f" && {sys.executable} -c \"{threads}\" && echo 0 > events/enable"
            " && grep -c 'sys_getppid()' trace"
            " && echo > trace && echo 1 > events/sched/sched_process_fork/enable"
            " && i=0 && while [ $i -lt 1000 ]; do /bin/true & i=$((i+1)); done; wait;"
            " echo 0 > events/enable; grep -c sched_process_fork trace;"
            " echo 1 > events/syscalls/enable; sleep 100 & pid=$!; sleep 0.3; kill -KILL $pid;"
            " wait $pid; echo killed=$?; echo 0 > events/enable;"
            " grep -c 'sys_nanosleep\\|sys_clock_nanosleep' trace; cat tracing_on",
            tmp_path, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.split()
    assert len(lines) == 5 and lines[2] == "killed=137", r.stdout
    getppids, forks, sleeps, on = map(int, [*lines[:2], *lines[3:]])
    assert getppids >= 1600 and forks >= 1000 and sleeps >= 1 and on == 1, r.stdout
    assert not left_behind(marker)
    no_traceback(tmp_path)


def test_setuid_binary_runs_as_untraced(tmp_path: Path) -> None:
    """A setuid-root program exec'd by an unprivileged user runs as it does untraced:
    the exec under ptrace keeps its privileges because the tracer is root
    (ptracer_capable() lets LSM_UNSAFE_PTRACE pass), as under a root strace."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("no setpriv to drop to an unprivileged user")
    d = Path(tempfile.mkdtemp(prefix="suid-"))   # traversable by nobody (tmp_path is 0700)
    try:
        d.chmod(0o755)
        suid_id = d / "suid-id"
        shutil.copy2("/usr/bin/id", suid_id)
        suid_id.chmod(0o4755)
        plain = subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
                                str(suid_id), "-u"], capture_output=True, text=True)
        if plain.stdout.strip() != "0":
            pytest.skip(f"setuid is not honoured here (nosuid mount?): {plain.stdout!r}")
        r = run(f"{setpriv} --reuid=65534 --regid=65534 --clear-groups {suid_id} -u;"
                f" cat {TRACING}/tracing_on", tmp_path)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["0", "1"], r.stdout
    finally:
        shutil.rmtree(d)


def test_sigterm_to_a_command_that_ignores_it(tmp_path: Path) -> None:
    """run passes SIGTERM on; a CMD ignoring it is killed KILL_GRACE seconds later, with
    its children, and the mount goes."""
    marker = "tracefs-sim-test-ignoreterm"
    p = subprocess.Popen(_cmd("sh", "-c", f"trap '' TERM; : {marker}; sleep 67 & wait"),
                         env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while (not any(x.split()[2:] == ["sleep", "67"] for x in processes("sleep"))
               and time.monotonic() < deadline):
            time.sleep(0.1)
        time.sleep(0.3)
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=20)
        assert rc == 128 + signal.SIGTERM
        assert time.monotonic() - t0 < 10
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    time.sleep(0.2)
    assert not left_behind(marker)


def test_ctrl_c_ends_the_command_and_unmounts(tmp_path: Path) -> None:
    """^C from a terminal: SIGINT to run's whole process group; run and the tracer ignore
    it, CMD dies of it, run unmounts and returns 128+2."""
    marker = "tracefs-sim-test-ctrlc"
    p = subprocess.Popen(_cmd("sh", "-c", f": {marker}; cat {TRACING}/trace_pipe"),
                         env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not any("trace_pipe" in x for x in left_behind(marker)) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        os.killpg(p.pid, signal.SIGINT)
        rc = p.wait(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert rc == 128 + signal.SIGINT
    time.sleep(0.2)
    assert not left_behind(marker)


def test_a_module_loaded_into_the_live_machine_shows_in_proc(tmp_path: Path) -> None:
    """``tracefs-sim insmod`` inside run: /proc/kallsyms lists the module's functions
    (its text laid out at load) and /proc/modules the module; after rmmod neither.  A
    host kernel without /proc/modules (no CONFIG_MODULES) has no file to show it in."""
    example = ROOT / "examples" / "kprobe_example.py"
    counts = ("grep -c '\\[kprobe_example\\]' /proc/kallsyms;"
              " if [ -e /proc/modules ]; then grep -c '^kprobe_example ' /proc/modules; else echo -; fi;")
    r = run(f"{sys.executable} -m tracefs_sim insmod {TRACING} {example} || exit 9; {counts}"
            f" {sys.executable} -m tracefs_sim rmmod {TRACING} kprobe_example || exit 8; {counts}",
            tmp_path)
    assert r.returncode in (0, 1), r.stdout + r.stderr    # grep -c of nothing exits 1
    got = r.stdout.split()
    funcs = sum(1 for line in example.read_text().splitlines() if line.startswith("def "))
    assert got[0::2] == [str(funcs), "0"], r.stdout + r.stderr
    assert got[1::2] in (["1", "0"], ["-", "-"]), r.stdout
