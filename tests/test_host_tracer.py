"""The host tracer (tracefs_sim/host): real programs under tracefs-sim-tracer, their records
checked through the decoder, plus the decoder, capture table and syscall table alone.

The programs are built here: host_tracer_helper.c is static without libc, so every syscall
between its execve and its exit_group is one it makes itself and the test can assert the
whole sequence; host_tracer_threads.c is static with libc and pthreads.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tracefs_sim.host import proto
from tracefs_sim.host.build import build
from tracefs_sim.host.capture import CaptureSpec, capture_table
from tracefs_sim.host.channel import TracerChannel, spawn_tracer
from tracefs_sim.host.proto import CaptureKind
from tracefs_sim.kernel.syscall_table import SyscallTable

TESTS = Path(__file__).resolve().parent
CLONE_VM, CLONE_THREAD, CLONE_VFORK = 0x100, 0x10000, 0x4000
NR = {"read": 0, "write": 1, "close": 3, "nanosleep": 35, "getpid": 39, "fork": 57, "execve": 59,
      "wait4": 61, "kill": 62, "uname": 63, "mkdir": 83, "rmdir": 84, "getppid": 110,
      "getdents64": 217, "restart_syscall": 219, "exit_group": 231, "openat": 257}
AT_FDCWD = (1 << 64) - 100   # the register of a (long)-100


class Programs:
    def __init__(self, tracer: Path, helper: Path, threads: Path) -> None:
        self.tracer, self.helper, self.threads = tracer, helper, threads


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> Programs:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler (cc) to build the tracer and its test programs")
    libc = subprocess.run([cc, "-print-file-name=libc.a"], capture_output=True, text=True).stdout.strip()
    if not os.path.isabs(libc):
        pytest.skip("no static libc (libc.a) for the multi-threaded test program")
    d = tmp_path_factory.mktemp("host-tracer")
    tracer = build(d / "tracefs-sim-tracer")
    helper = d / "sysprobe"     # the comm the example shows
    subprocess.run([cc, "-static", "-nostdlib", "-ffreestanding", "-fno-stack-protector", "-no-pie",
                    "-O1", "-o", str(helper), str(TESTS / "host_tracer_helper.c")], check=True)
    threads = d / "threads"
    subprocess.run([cc, "-static", "-pthread", "-O1", "-o", str(threads),
                    str(TESTS / "host_tracer_threads.c")], check=True)
    return Programs(tracer, helper, threads)


class Run:
    """One traced command: its records, exit status and output."""

    def __init__(self, records: list[proto.Record], status: int, stdout: str, stderr: str,
                 tracer_pid: int) -> None:
        # the memory records (fault counts, an exec's maps) apart: the sequences checked
        # here are of the process's life and syscalls (tests/test_mm_faults.py has them)
        self.memory = [r for r in records if isinstance(r, proto.Faults | proto.Maps)]
        self.records = [r for r in records if not isinstance(r, proto.Faults | proto.Maps)]
        self.status, self.stdout, self.stderr = status, stdout, stderr
        self.tracer_pid = tracer_pid   # CMD's parent: what its getppid() returns

    def of(self, tid: int) -> list[proto.Record]:
        return [r for r in self.records if not isinstance(r, proto.Ack) and r.tid == tid]

    def syscalls(self, tid: int) -> list[proto.SysEnter | proto.SysExit]:
        return [r for r in self.of(tid) if isinstance(r, proto.SysEnter | proto.SysExit)]

    @property
    def root(self) -> int:
        return next(r.tid for r in self.records if isinstance(r, proto.Attached))

    def first(self, kind: type, **fields: object) -> int:
        """Index of the first record of ``kind`` with these field values."""
        return next(i for i, r in enumerate(self.records)
                    if isinstance(r, kind) and all(getattr(r, k) == v for k, v in fields.items()))


SEEN: list[int] = []


@pytest.fixture(autouse=True)
def no_stopped_tracee() -> Iterator[None]:
    """After each test no task the tracer reported is alive and stopped."""
    SEEN.clear()
    yield
    stopped = []
    for tid in SEEN:
        try:
            with open(f"/proc/{tid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            continue
        if state in "tT":
            stopped.append(tid)
            os.kill(tid, signal.SIGKILL)
    assert not stopped, f"stopped tracees left behind: {stopped}"


def trace(programs: Programs, cmd: list[str], mode: int = proto.MODE_SYSCALLS,
          during: Callable[[TracerChannel, subprocess.Popen, list[proto.Record]], None] | None = None,
          tmp: Path | None = None, timeout: float = 15.0) -> Run:
    """Run ``cmd`` under the tracer and collect every record; ``during`` runs after the
    first EXEC record arrived (and may switch modes or send signals)."""
    out = (tmp or Path("/tmp")) / f"out.{os.getpid()}.{time.monotonic_ns()}"
    with open(out, "w+") as fout, open(f"{out}.err", "w+") as ferr:
        proc, ch = spawn_tracer(programs.tracer, cmd, stdout=fout, stderr=ferr)
        records: list[proto.Record] = []
        try:
            if mode != proto.MODE_LIFECYCLE:
                assert ch.set_mode(mode) == []   # CMD has not started
            ch.send_capture(capture_table(SyscallTable.load()))
            deadline = time.monotonic() + timeout
            hook = during
            while not ch.eof:
                assert time.monotonic() < deadline, "the tracer did not finish"
                got = ch.read(0.5)
                records += got
                SEEN.extend(r.tid for r in got if isinstance(r, proto.Attached))
                SEEN.extend(r.child_tid for r in got if isinstance(r, proto.NewTask))
                if hook and any(isinstance(r, proto.Exec) for r in records):
                    hook(ch, proc, records)
                    hook = None
            status = proc.wait(timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            ch.sock.close()
        fout.seek(0)
        ferr.seek(0)
        stdout, stderr = fout.read(), ferr.read()
    os.unlink(out)
    os.unlink(f"{out}.err")
    return Run(records, status, stdout, stderr, proc.pid)


# ------------------------------------------------------------------ the fixed sequence
def _pairs(calls: list[proto.SysEnter | proto.SysExit]) -> list[tuple[str, int]]:
    names = {v: k for k, v in NR.items()}
    return [("enter" if isinstance(c, proto.SysEnter) else "exit", names.get(c.nr, c.nr)) for c in calls]


def test_every_syscall_between_exec_and_exit(programs: Programs, tmp_path: Path) -> None:
    run = trace(programs, [str(programs.helper), "seq", str(tmp_path)], tmp=tmp_path)
    assert run.status == 0, run.stderr
    assert run.stdout == "hello\n"
    root = run.root
    recs = run.of(root)
    execs = [i for i, r in enumerate(recs) if isinstance(r, proto.Exec)]
    assert len(execs) == 2
    first = recs[execs[0]]
    assert (first.tid, first.old_tid, first.tgid) == (root, root, root)
    assert first.filename == str(programs.helper) and first.comm == "sysprobe"
    calls = [r for r in recs[execs[0] + 1:] if isinstance(r, proto.SysEnter | proto.SysExit)]
    seq = ["getppid", "write", "openat", "nanosleep", "mkdir", "rmdir", "openat", "getdents64",
           "close", "uname", "getpid", "kill", "fork", "wait4", "execve"]
    expect = [("exit", "execve")]
    for name in seq:
        expect += [("enter", name), ("exit", name)]
    expect += [("enter", "exit_group")]
    assert _pairs(calls) == expect
    assert all(c.tid == root and c.tgid == root for c in calls)
    # each entry's numbers, captures and return value
    e = [c for c in calls if isinstance(c, proto.SysEnter)]
    rets = [c.ret for c in calls if isinstance(c, proto.SysExit)][1:]
    by = dict(zip(seq, zip(e, rets, strict=False), strict=False))   # the last of a name
    by["openat"] = (e[2], rets[2])
    assert by["getppid"][1] == run.tracer_pid
    assert by["write"][0].args[0] == 1 and by["write"][0].args[2] == 6 and by["write"][1] == 6
    openat, ret = by["openat"]
    assert openat.args[0] == AT_FDCWD and openat.args[2] == 0 and ret == -errno.ENOENT
    assert openat.caps == (proto.Capture(1, CaptureKind.CSTRING, b"/nonexistent/tracefs-sim"),)
    sleep = by["nanosleep"][0]
    assert sleep.caps == (proto.Capture(0, CaptureKind.FIXED, struct.pack("<qq", 0, 1_000_000)),)
    sleep_exit = calls[calls.index(sleep) + 1]
    assert sleep_exit.ts - sleep.ts >= 1_000_000 and sleep_exit.ret == 0
    # the schedstat readings of its two stops: switched back in after a millisecond asleep
    assert sleep_exit.switches >= 1 and sleep_exit.asleep_ns >= 900_000
    assert all(c.switches != proto.SWITCHES_UNKNOWN for c in calls[1:] if isinstance(c, proto.SysExit))
    d = str(tmp_path / "d").encode()
    assert by["mkdir"][0].caps[0].data == d and by["mkdir"][0].args[1] == 0o755 and by["mkdir"][1] == 0
    assert by["rmdir"][0].caps[0].data == d and by["rmdir"][1] == 0
    dirfd, opendir = rets[6], e[6]
    assert opendir.caps[0].data == str(tmp_path).encode() and dirfd >= 3
    assert by["getdents64"][0].args[0] == dirfd and by["getdents64"][1] > 0
    assert by["close"][0].args[0] == dirfd and by["close"][1] == 0
    assert by["uname"][1] == 0
    assert by["getpid"][1] == root
    assert by["kill"][0].args[:2] == (root, 0) and by["kill"][1] == 0
    child = by["fork"][1]
    assert by["wait4"][0].args[0] == child and by["wait4"][1] == child
    assert by["execve"][0].caps[0].data == str(programs.helper).encode()
    assert e[-1].nr == NR["exit_group"] and e[-1].args[0] == 0
    # the second exec, the end
    second = recs[execs[1]]
    assert (second.old_tid, second.filename, second.comm) == (root, str(programs.helper), "sysprobe")
    assert isinstance(recs[-2], proto.Exit) and recs[-2].status == 0 and recs[-2].group
    assert isinstance(recs[-1], proto.Gone) and recs[-1].status == 0
    # the fork: NEW_TASK before anything of the child, which only exits (status 3)
    new = run.records[run.first(proto.NewTask, tid=root)]
    assert (new.child_tid, new.child_tgid, new.event) == (child, child, proto.EVENT_FORK)
    assert new.clone_flags == signal.SIGCHLD and new.comm == "sysprobe"
    assert 0 <= new.child_cpu < (os.cpu_count() or 1)
    kid = run.of(child)
    assert run.records.index(kid[0]) > run.records.index(new)
    assert _pairs(run.syscalls(child)) == [("enter", "exit_group")]
    assert kid[0].args[0] == 3
    assert isinstance(kid[1], proto.Exit) and kid[1].status == 3 << 8 and kid[1].group
    assert isinstance(kid[2], proto.Gone) and kid[2].status == 3 << 8 and len(kid) == 3
    sigs = [r for r in recs if isinstance(r, proto.Signal)]
    assert [(s.signo, s.pid) for s in sigs] == [(signal.SIGCHLD, child)]
    # records come in the order the tracer saw the stops: time never goes backwards
    stamps = [r.ts for r in run.records if not isinstance(r, proto.Ack)]
    assert stamps == sorted(stamps)


def test_lifecycle_mode_reports_no_syscalls(programs: Programs, tmp_path: Path) -> None:
    run = trace(programs, [str(programs.helper), "seq", str(tmp_path)], mode=proto.MODE_LIFECYCLE)
    assert run.status == 0
    root = run.root
    assert not [r for r in run.records if isinstance(r, proto.SysEnter | proto.SysExit)]
    kinds = [type(r).__name__ for r in run.of(root) if not isinstance(r, proto.Signal)]
    assert kinds == ["Attached", "Exec", "NewTask", "Exec", "Exit", "Gone"]
    new = next(r for r in run.records if isinstance(r, proto.NewTask))
    assert [type(r).__name__ for r in run.of(new.child_tid)] == ["Exit", "Gone"]


def test_mode_switch_mid_run(programs: Programs) -> None:
    acks: dict[str, int] = {}

    def switch(ch: TracerChannel, proc: subprocess.Popen, records: list[proto.Record]) -> None:
        time.sleep(0.05)
        records += ch.set_mode(proto.MODE_SYSCALLS)    # what came before the ACK
        acks["syscalls"] = len(records)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.06:
            records += ch.read(0.01)
        records += ch.set_mode(proto.MODE_LIFECYCLE)
        acks["lifecycle"] = len(records)

    run = trace(programs, [str(programs.helper), "tick", "40", "5"], mode=proto.MODE_LIFECYCLE,
                during=switch)
    assert run.status == 0
    before = run.records[:acks["syscalls"]]
    during = run.records[acks["syscalls"]:acks["lifecycle"]]
    after = run.records[acks["lifecycle"]:]
    calls = lambda recs: [r for r in recs if isinstance(r, proto.SysEnter | proto.SysExit)]  # noqa: E731
    assert not calls(before)
    got = calls(during)
    # the first stop after the switch: the sleep in progress restarts (restart_syscall) or
    # the loop's next getppid; then getppid/nanosleep pairs with their real values
    assert got and got[0].nr in (NR["restart_syscall"], NR["getppid"], NR["nanosleep"])
    # a sleep the switch interrupted says so first (its entry was never reported)
    if isinstance(got[0], proto.SysEnter) and got[0].nr == NR["restart_syscall"]:
        stop = [r for r in during if isinstance(r, proto.Interrupted)]
        assert stop and (stop[0].nr, stop[0].ret) == (NR["nanosleep"], -516)
        assert during.index(stop[0]) < during.index(got[0])
    getppid = [r for r in got if isinstance(r, proto.SysExit) and r.nr == NR["getppid"]]
    assert getppid and all(r.ret == run.tracer_pid for r in getppid)
    # back in lifecycle mode: at most the exit of an entry already reported
    late = calls(after)
    assert not [r for r in late if isinstance(r, proto.SysEnter)] and len(late) <= 1


# ------------------------------------------------------------------ threads
def test_output_captures_at_the_exit(programs: Programs) -> None:
    """pipe2's two fds are read at its exit stop (its OUT capture)."""
    sh = shutil.which("sh")
    if sh is None:
        pytest.skip("no sh")
    run = trace(programs, [sh, "-c", "echo hi | cat"])
    assert run.status == 0 and run.stdout == "hi\n"
    pipes = [r for r in run.records if isinstance(r, proto.SysExit) and r.nr in (22, 293) and r.ret == 0]
    assert pipes
    fds = struct.unpack("<ii", pipes[0].caps[0].data)
    assert pipes[0].caps[0].kind == CaptureKind.OUT and 0 <= fds[0] < fds[1] < 1024


def test_threads_are_traced_with_their_tgid(programs: Programs) -> None:
    run = trace(programs, [str(programs.threads), "threads", "2"])
    assert run.status == 0
    root = run.root
    news = [r for r in run.records if isinstance(r, proto.NewTask)]
    assert len(news) == 2
    for new in news:
        assert new.tid == root and new.child_tgid == root and new.event == proto.EVENT_CLONE
        assert new.clone_flags & (CLONE_VM | CLONE_THREAD) == CLONE_VM | CLONE_THREAD
        mine = run.of(new.child_tid)
        assert run.records.index(mine[0]) > run.records.index(new)
        enters = [r for r in mine if isinstance(r, proto.SysEnter)]
        assert NR["getppid"] in [r.nr for r in enters] and all(r.tgid == root for r in enters)
        assert isinstance(mine[-1], proto.Gone)
        ends = [r for r in mine if isinstance(r, proto.Exit)]
        assert len(ends) == 1 and ends[0].tgid == root


def test_exec_from_a_thread(programs: Programs) -> None:
    run = trace(programs, [str(programs.threads), "threadexec"])
    assert run.status == 0, run.stderr
    root = run.root
    thread = next(r.child_tid for r in run.records if isinstance(r, proto.NewTask))
    ex = [r for r in run.records if isinstance(r, proto.Exec)][-1]
    assert (ex.tid, ex.old_tid, ex.tgid) == (root, thread, root)
    # its execve entered as the thread and returns as the leader's tid
    entry = [r for r in run.of(thread) if isinstance(r, proto.SysEnter)][-1]
    assert entry.nr == NR["execve"]
    after = run.records[run.records.index(ex) + 1]
    assert isinstance(after, proto.SysExit) and (after.tid, after.nr, after.ret) == (root, NR["execve"], 0)
    assert not [r for r in run.of(thread) if isinstance(r, proto.Gone)]


def test_exit_in_the_middle_of_a_syscall(programs: Programs) -> None:
    run = trace(programs, [str(programs.threads), "midsyscall"])
    assert run.status == 0
    thread = next(r.child_tid for r in run.records if isinstance(r, proto.NewTask))
    calls = run.syscalls(thread)
    assert isinstance(calls[-1], proto.SysEnter) and calls[-1].nr == NR["read"]
    assert isinstance(run.of(thread)[-1], proto.Gone)


def test_comm_change(programs: Programs) -> None:
    run = trace(programs, [str(programs.threads), "rename", "renamed"])
    comm = [r for r in run.records if isinstance(r, proto.Comm)]
    assert [(r.tid, r.comm) for r in comm] == [(run.root, "renamed")]


# ------------------------------------------------------------------ process life
def test_a_thousand_children(programs: Programs) -> None:
    run = trace(programs, [str(programs.helper), "forkmany", "1000"], mode=proto.MODE_LIFECYCLE)
    assert run.status == 0
    news = {r.child_tid for r in run.records if isinstance(r, proto.NewTask)}
    gone = {r.tid for r in run.records if isinstance(r, proto.Gone)}
    assert len(news) == 1000 and gone == news | {run.root}


def test_group_stop_and_continue(programs: Programs) -> None:
    def stop_and_go(ch: TracerChannel, proc: subprocess.Popen, records: list[proto.Record]) -> None:
        root = next(r.tid for r in records if isinstance(r, proto.Attached))
        os.kill(root, signal.SIGSTOP)
        time.sleep(0.1)
        with open(f"/proc/{root}/stat") as f:
            assert f.read().rsplit(")", 1)[1].split()[0] in "tT"   # stopped, for its parent too
        os.kill(root, signal.SIGCONT)

    run = trace(programs, [str(programs.helper), "tick", "10", "5"], mode=proto.MODE_LIFECYCLE,
                during=stop_and_go)
    assert run.status == 0
    assert [r.signo for r in run.records if isinstance(r, proto.Signal)] == [signal.SIGSTOP, signal.SIGCONT]


@pytest.mark.parametrize(("cmd", "status"), [(["exit", "5"], 5), (["kill", "9"], 128 + 9),
                                            (["kill", "15"], 128 + 15)])
def test_exit_status(programs: Programs, cmd: list[str], status: int) -> None:
    run = trace(programs, [str(programs.helper), *cmd], mode=proto.MODE_LIFECYCLE)
    assert run.status == status
    assert isinstance(run.records[-1], proto.Gone)


def test_command_not_found_or_not_executable(programs: Programs, tmp_path: Path) -> None:
    run = trace(programs, ["tracefs-sim-no-such-command"])
    assert run.status == 127 and "tracefs-sim-no-such-command: command not found" in run.stderr
    assert not [r for r in run.records if not isinstance(r, proto.Ack)]
    plain = tmp_path / "plain"
    plain.write_text("data\n")
    plain.chmod(0o644)
    run = trace(programs, [str(plain)])
    assert run.status == 126 and "Permission denied" in run.stderr


def test_sigterm_is_forwarded_and_sigkill_of_the_tracer_ends_cmd(programs: Programs) -> None:
    pids: list[int] = []

    def term_then_kill(ch: TracerChannel, proc: subprocess.Popen, records: list[proto.Record]) -> None:
        time.sleep(0.05)    # the helper ignores SIGTERM by now
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        while not any(isinstance(r, proto.Signal) for r in records) and time.monotonic() < deadline:
            records += ch.read(0.05)
        pids.append(next(r.tid for r in records if isinstance(r, proto.Attached)))
        time.sleep(0.05)
        assert proc.poll() is None  # CMD ignores SIGTERM: still running
        proc.kill()                 # PTRACE_O_EXITKILL: CMD dies with the tracer

    run = trace(programs, [str(programs.helper), "ignoreterm"], mode=proto.MODE_LIFECYCLE,
                during=term_then_kill)
    assert run.status == -signal.SIGKILL
    assert [r.signo for r in run.records if isinstance(r, proto.Signal)] == [signal.SIGTERM]
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{pids[0]}") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not os.path.exists(f"/proc/{pids[0]}")


# ------------------------------------------------------------------ the pieces alone
def test_stream_decoder_handles_any_split() -> None:
    msgs = (struct.pack("<IHHIIQQ6QII", 88 + 8 + 8, proto.SYS_ENTER, 0, 7, 1, 10, 257,
                        *(1, 2, 3, 4, 5, 6), 7, 1) + struct.pack("<BBHI", 1, 1, 0, 5) + b"/tmp\0\0\0\0"
            + struct.pack("<IHHIIQQqIIQII", 64, proto.SYS_EXIT, 0, 7, 1, 11, 257, -2, 7, 0, 1500, 1, 0)
            + struct.pack("<IHHIIQQqIIQII", 72 + 8, proto.SYS_EXIT, 0, 7, 1, 11, 293, 0, 7, 1, 0, 0, 0)
            + struct.pack("<BBHI", 0, 4, 0, 8) + struct.pack("<ii", 3, 4)
            + struct.pack("<IHHIIQIIQq", 48, proto.INTERRUPTED, 0, 7, 1, 11, 7, 0, 35, -516)
            + struct.pack("<IHHIIQII16sII", 56 + 8, proto.EXEC, 0, 7, 0, 12, 6, 7, b"ls", 7, 0)
            + b"/bin/ls\0")
    whole, used = proto.decode(msgs)
    assert used == len(msgs)
    assert whole == [
        proto.SysEnter(10, 1, 7, 7, 257, (1, 2, 3, 4, 5, 6), (proto.Capture(1, 1, b"/tmp\0"[:5]),)),
        proto.SysExit(11, 1, 7, 7, 257, -2, (), 1500, 1),
        proto.SysExit(11, 1, 7, 7, 293, 0, (proto.Capture(0, 4, struct.pack("<ii", 3, 4)),), 0, 0),
        proto.Interrupted(11, 1, 7, 7, 35, -516),
        proto.Exec(12, 0, 7, 6, 7, "ls", "/bin/ls")]
    for step in (1, 3, 7, 50):
        dec = proto.StreamDecoder()
        got = []
        for i in range(0, len(msgs), step):
            got += dec.feed(msgs[i:i + step])
        assert got == whole and dec.pending == 0
    with pytest.raises(proto.ProtocolError):
        proto.decode(struct.pack("<IHHIIQ", 20, 1, 0, 0, 0, 0))


def test_control_messages() -> None:
    assert proto.encode_mode(proto.MODE_SYSCALLS, 3) == struct.pack("<IHHIIQII", 32, 128, 0, 0, 0, 0, 1, 3)
    msg = proto.encode_capture([(257, 1, 1, 0), (42, 1, 2, 2)])
    assert msg[:32] == struct.pack("<IHHIIQII", 48, 129, 0, 0, 0, 0, 2, 0)
    assert msg[32:] == struct.pack("<HBBIHBBI", 257, 1, 1, 0, 42, 1, 2, 2)


def test_syscall_and_capture_tables() -> None:
    table = SyscallTable.load()
    stat = table.by_nr[4]
    assert (stat.name, stat.entry, stat.event, stat.symbol) == ("stat", "sys_newstat", "newstat",
                                                                "__x64_sys_newstat")
    assert [(a.type, a.name) for a in table.by_name["openat"].args] == [
        ("int", "dfd"), ("const char *", "filename"), ("int", "flags"), ("umode_t", "mode")]
    assert table.by_nr[134].entry is None and table.by_name["exit_group"].noreturn
    specs = {(s.nr, s.argidx): s for s in capture_table(table)}
    n = table.by_name
    assert specs[(n["openat"].nr, 1)] == CaptureSpec(257, 1, CaptureKind.CSTRING, 0)
    assert specs[(n["connect"].nr, 1)].kind == CaptureKind.BUFFER and specs[(n["connect"].nr, 1)].param == 2
    assert specs[(n["sendto"].nr, 4)].param == 5
    assert specs[(n["rt_sigaction"].nr, 1)] == CaptureSpec(13, 1, CaptureKind.FIXED, 32)
    assert specs[(n["clone3"].nr, 0)] == CaptureSpec(435, 0, CaptureKind.BUFFER, 1)
    assert specs[(n["pipe2"].nr, 0)] == CaptureSpec(293, 0, CaptureKind.OUT, 8)
    assert specs[(n["execve"].nr, 0)].kind == CaptureKind.CSTRING
    assert specs[(n["symlinkat"].nr, 0)].kind == specs[(n["symlinkat"].nr, 2)].kind == CaptureKind.CSTRING
    for name in ("read", "write", "getsockopt", "accept"):   # output buffers, data
        assert not [s for s in specs.values() if s.nr == n[name].nr and s.kind != CaptureKind.CSTRING]
    assert (n["write"].nr, 1) not in specs and (n["read"].nr, 1) not in specs


# ------------------------------------------------------------------ tracefs-sim run
@pytest.mark.mount
@pytest.mark.skipif(os.geteuid() != 0, reason="tracefs-sim run needs root")
def test_run_under_the_tracer(programs: Programs, tmp_path: Path) -> None:
    """tracefs-sim run (CMD under the tracer): CMD's status, 127, and $SHELL without CMD."""
    root = TESTS.parent
    build()     # what scripts/setup does: the tracer run uses, rebuilt when tracer.c changed
    env = dict(os.environ, PYTHONPATH=str(root), SHELL="/bin/sh")

    def run(*cmd: str, stdin: str = "") -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "tracefs_sim", "run", "--cpus", "2", *cmd],
                              env=env, input=stdin, capture_output=True, text=True, timeout=60)

    r = run("--", "sh", "-c", "cat /sys/kernel/tracing/tracing_on; exit 7")
    assert (r.returncode, r.stdout) == (7, "1\n"), r.stderr
    r = run("--", "tracefs-sim-no-such-command")
    assert r.returncode == 127 and "command not found" in r.stderr
    r = run(stdin="cat /sys/kernel/debug/tracing/tracing_on; exit 3\n")
    assert (r.returncode, r.stdout) == (3, "1\n"), r.stderr
