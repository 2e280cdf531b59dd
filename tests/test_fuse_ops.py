"""The adapter driven directly under trio (no mount): inodes, errors, waits, ownership;
the caller's identity from /proc; the serve loop's end-of-session test."""

from __future__ import annotations

import errno
import os
import subprocess
import time
from types import SimpleNamespace

import pyfuse3
import pytest
import trio
from adapter_tree import build

from tracefs_sim.fuse.caller import TaskInfo, possible_cpus, signal_pending
from tracefs_sim.fuse.handlers import REMOUNT_XATTR, Operations
from tracefs_sim.fuse.serve import connection_aborted
from tracefs_sim.tracefs import build_tree
from tracefs_sim.tracefs.files import write_file


@pytest.fixture
def ops(kernel):
    calls = []
    enter, leave = kernel.syscall_enter, kernel.syscall_exit
    kernel.syscall_enter = lambda *a, **kw: (calls.append(("enter", *a)), enter(*a, **kw))[1]
    kernel.syscall_exit = lambda *a, **kw: (calls.append(("exit",)), leave(*a, **kw))[1]
    o = Operations(kernel, build(kernel))
    o.calls = calls
    return o


CTX = SimpleNamespace(pid=os.getpid(), uid=os.getuid(), gid=os.getgid(), umask=0o22)
ROOT = pyfuse3.ROOT_INODE


def run(fn):
    return trio.run(fn)


def test_inodes_are_stable_counted_and_never_reused(ops):
    async def main():
        a = await ops.lookup(ROOT, b"data", CTX)
        b = await ops.lookup(ROOT, b"data", CTX)
        assert a.st_ino == b.st_ino and ops.inodes.lookups(a.st_ino) == 2
        await ops.forget([(a.st_ino, 2)])
        assert ops.inodes.lookups(a.st_ino) == 0 and a.st_ino not in ops.inodes.held()
        assert (await ops.lookup(ROOT, b"data", CTX)).st_ino == a.st_ino  # same Node, same ino
        inst = (await ops.lookup(ROOT, b"instances", CTX)).st_ino
        first = (await ops.mkdir(inst, b"x", 0o755, CTX)).st_ino
        await ops.rmdir(inst, b"x", CTX)
        await ops.forget([(first, 1)])
        second = (await ops.mkdir(inst, b"x", 0o755, CTX)).st_ino
        assert second != first and second > first
        with pytest.raises(pyfuse3.FUSEError) as e:
            await ops.lookup(ROOT, b"nope", CTX)
        assert e.value.errno == errno.ENOENT
    run(main)


def test_attrs_and_open_flags(ops):
    async def main():
        a = await ops.lookup(ROOT, b"ro", CTX)
        assert oct(a.st_mode) == oct(0o100440) and a.st_nlink == 1 and a.st_size == 0
        assert a.st_uid == os.getuid()
        d = await ops.getattr(ROOT, CTX)
        assert oct(d.st_mode) == oct(0o40700) and d.st_nlink == 3
        p = await ops.lookup(ROOT, b"pipe", CTX)
        fi = await ops.open(p.st_ino, os.O_RDONLY, CTX)
        assert fi.direct_io and not fi.keep_cache and fi.nonseekable
        fi = await ops.open(p.st_ino, os.O_RDONLY | os.O_NONBLOCK, CTX)
        with pytest.raises(pyfuse3.FUSEError) as e:
            await ops.read(fi.fh, 0, 10)
        assert e.value.errno == errno.EAGAIN
        for name, err in ((b"x", errno.EPERM),):
            with pytest.raises(pyfuse3.FUSEError) as e:
                await ops.unlink(ROOT, name, CTX)
            assert e.value.errno == err
        with pytest.raises(pyfuse3.FUSEError) as e:
            await ops.create(ROOT, b"new", 0o644, os.O_WRONLY | os.O_CREAT, CTX)
        assert e.value.errno == errno.EACCES
    run(main)


def test_every_request_runs_in_a_syscall(ops):
    async def main():
        a = await ops.lookup(ROOT, b"data", CTX)
        fi = await ops.open(a.st_ino, os.O_WRONLY | os.O_TRUNC, CTX)
        assert await ops.write(fi.fh, 0, b"abc") == 3
        await ops.flush(fi.fh)
        await ops.release(fi.fh)
    run(main)
    kinds = [c[0] for c in ops.calls]
    # lookup, open, write, flush (the close(2)); RELEASE is asynchronous: no syscall
    assert kinds == ["enter", "exit"] * 4
    assert ops.calls[0][1] == os.getpid()


def test_a_release_after_the_closer_exited_keeps_its_comm(ops):
    """RELEASE is asynchronous and often comes once the closer has exited (``cat``
    closes and exits at once), when /proc no longer names it: the task the kernel knows
    keeps its comm (saved_cmdlines showed "<...>" for such a ``cat``), and a pid the
    kernel no longer knows is not added to its task table."""
    procs = [subprocess.Popen(["sleep", "30"]) for _ in range(2)]
    try:
        deadline = time.monotonic() + 10     # until both have exec'd sleep (a loaded machine)
        while (any(open(f"/proc/{p.pid}/comm").read().strip() != "sleep" for p in procs)
               and time.monotonic() < deadline):
            time.sleep(0.02)

        async def main():
            a = await ops.lookup(ROOT, b"data", CTX)
            fhs = []
            for p in procs:
                ctx = SimpleNamespace(pid=p.pid, uid=os.getuid(), gid=os.getgid(), umask=0o22)
                fi = await ops.open(a.st_ino, os.O_RDONLY, ctx)
                await ops.flush(fi.fh)
                fhs.append(fi.fh)
            assert [ops.kernel.sched.tasks[p.pid].comm for p in procs] == ["sleep", "sleep"]
            for p in procs:
                p.kill()
                p.wait()
                ops.tasks.refresh(p.pid)     # nothing cached: /proc is all it could ask
            del ops.kernel.sched.tasks[procs[1].pid]      # the kernel saw this one go
            for fh in fhs:
                await ops.release(fh)
        run(main)
        assert ops.kernel.sched.tasks[procs[0].pid].comm == "sleep"
        assert procs[1].pid not in ops.kernel.sched.tasks
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_a_read_nobody_can_observe_runs_without_its_syscall(ops):
    """While nothing is attached a READ is not run as a syscall (it attaches nothing and
    its path would leave no mark); once something is attached it is again."""
    tree = build_tree(ops.kernel)

    async def main():
        a = await ops.lookup(ROOT, b"data", CTX)
        fi = await ops.open(a.st_ino, os.O_RDONLY, CTX)
        ops.calls.clear()
        await ops.read(fi.fh, 0, 10)
        assert ops.calls == []
        write_file(tree, "events/sched/sched_switch/enable", b"1")
        await ops.read(fi.fh, 0, 10)
        assert [c[0] for c in ops.calls] == ["enter", "exit"]
        write_file(tree, "events/sched/sched_switch/enable", b"0")
        ops.calls.clear()
        await ops.read(fi.fh, 0, 10)
        assert ops.calls == []
        # a write always runs as its syscall: it may attach something its exit then sees
        fw = await ops.open(a.st_ino, os.O_WRONLY, CTX)
        await ops.write(fw.fh, 0, b"x")
        assert [c[0] for c in ops.calls] == ["enter", "exit", "enter", "exit"]
    run(main)


def test_a_trace_read_returns_its_length_to_the_syscall(kernel):
    """The ``trace`` file answers from a view of its rendered text; the syscall the read
    runs as still returns the byte count (what a return probe of vfs_read sees)."""
    tree = build_tree(kernel)
    ops = Operations(kernel, tree)
    rets: list[int] = []
    leave = kernel.syscall_exit
    kernel.syscall_exit = lambda ret=0: (rets.append(ret), leave(ret))[1]
    write_file(tree, "events/sched/sched_switch/enable", b"1")   # the read is observed

    async def main():
        a = await ops.lookup(ROOT, b"trace", CTX)
        fi = await ops.open(a.st_ino, os.O_RDONLY, CTX)
        rets.clear()
        data = await ops.read(fi.fh, 0, 100)
        assert len(data) == 100 and bytes(data).startswith(b"# tracer: nop")
        assert rets == [100]
    run(main)


def test_blocking_read_is_woken_by_a_write(ops):
    async def main():
        p = (await ops.lookup(ROOT, b"pipe", CTX)).st_ino
        r = await ops.open(p, os.O_RDONLY, CTX)
        w = await ops.open(p, os.O_WRONLY, CTX)
        got = []

        async def reader():
            got.append(await ops.read(r.fh, 0, 100))

        async with trio.open_nursery() as n:
            n.start_soon(reader)
            await trio.sleep(0.12)
            assert not got and ops.waiting() == 1
            assert await ops.poll(p, r.fh, None, CTX) & 0x1 == 0  # not POLLIN
            await ops.write(w.fh, 0, b"data")
        assert got == [b"data"] and ops.waiting() == 0
    run(main)


def test_shutdown_ends_blocked_reads_with_eof(ops):
    async def main():
        p = (await ops.lookup(ROOT, b"pipe", CTX)).st_ino
        r = await ops.open(p, os.O_RDONLY, CTX)
        got = []

        async def reader():
            got.append(await ops.read(r.fh, 0, 100))

        async with trio.open_nursery() as n:
            n.start_soon(reader)
            await trio.sleep(0.01)
            ops.cancel_waits()
        assert got == [b""]
    run(main)


def test_unexpected_exception_is_eio_and_logged(ops, caplog):
    async def main():
        f = (await ops.lookup(ROOT, b"fail", CTX)).st_ino
        fi = await ops.open(f, os.O_RDONLY, CTX)
        with pytest.raises(pyfuse3.FUSEError) as e:
            await ops.read(fi.fh, 0, 100)
        assert e.value.errno == errno.EIO
        await ops.release(fi.fh)
        await ops.release(12345)  # unknown fh: never raises
        await ops.forget([(99999, 1)])
        assert await ops.poll(f, 4242, None, CTX)  # unknown fh still answers a mask
    run(main)
    assert "injected failure" in caplog.text


def test_chown_and_remount_follow_tracefs(ops):
    """chown of an instance directory gives its files its owner; a remount with uid=/gid=
    gives every inode the new owner and drops the chowns (ownership.py has the rules)."""
    def fields(**kw):   # pyfuse3.SetattrFields cannot be built from Python
        return SimpleNamespace(**{"update_size": False, "update_uid": False,
                                  "update_gid": False, **kw})

    async def main():
        me = (os.getuid(), os.getgid())
        inst = (await ops.lookup(ROOT, b"instances", CTX)).st_ino
        foo = (await ops.mkdir(inst, b"foo", 0o755, CTX)).st_ino
        on = (await ops.lookup(foo, b"tracing_on", CTX)).st_ino
        attr = pyfuse3.EntryAttributes()
        attr.st_uid, attr.st_gid = 1234, 99
        a = await ops.setattr(foo, attr, fields(update_uid=True), None, CTX)
        assert (a.st_uid, a.st_gid) == (1234, me[1])
        a = await ops.getattr(on, CTX)
        assert (a.st_uid, a.st_gid) == (1234, me[1])        # the instance's owner
        data = (await ops.lookup(ROOT, b"data", CTX)).st_ino
        a = await ops.getattr(data, CTX)
        assert (a.st_uid, a.st_gid) == me
        await ops.setxattr(ROOT, REMOUNT_XATTR, b"rw,gid=42", CTX)
        assert ((await ops.getattr(on, CTX)).st_uid, (await ops.getattr(on, CTX)).st_gid) == (1234, 42)
        await ops.setxattr(ROOT, REMOUNT_XATTR, b"uid=7", CTX)
        for ino in (ROOT, data, foo, on):
            a = await ops.getattr(ino, CTX)
            assert (a.st_uid, a.st_gid) == (7, 42), ino
        with pytest.raises(pyfuse3.FUSEError) as e:
            await ops.setxattr(data, REMOUNT_XATTR, b"uid=1", CTX)
        assert e.value.errno == errno.ENOTSUP
    run(main)


# ------------------------------------------------------------------ the caller, from /proc
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_signal_pending_and_task_info():
    assert signal_pending(os.getpid()) is False
    assert signal_pending(2**22 + 12345) is None
    info = TaskInfo(2)
    comm, cpu = info.lookup(os.getpid())
    assert comm == open(f"/proc/{os.getpid()}/comm").read().strip() and 0 <= cpu < 2
    child = subprocess.Popen(["taskset", "-c", "1", "sleep", "2"])
    try:
        deadline = time.monotonic() + 10     # until taskset has exec'd sleep (a loaded machine)
        while open(f"/proc/{child.pid}/comm").read().strip() != "sleep" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert info.lookup(child.pid) == ("sleep", 1)
    finally:
        child.kill()
        child.wait()


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_task_info_sees_a_pin_made_right_after_a_request():
    """``taskset -c 1 echo x > trace_marker``: the child opens the file, then taskset pins
    it and echo writes within microseconds: the write's CPU is the pinned one."""
    info = TaskInfo(2)
    child = subprocess.Popen(["sleep", "2"])
    try:
        os.sched_setaffinity(child.pid, {0, 1})
        info.lookup(child.pid)
        os.sched_setaffinity(child.pid, {1})
        assert info.lookup(child.pid)[1] == 1
        os.sched_setaffinity(child.pid, {0})
        assert info.lookup(child.pid)[1] == 0
    finally:
        child.kill()
        child.wait()


def test_task_info_sees_an_exec_right_after_a_lookup():
    """perf's child is looked up when its fork is noticed, then execs the command at
    once: the command's first request names the command, not ``perf-exec``."""
    info = TaskInfo(2)
    child = subprocess.Popen(["bash", "-c", "read x; exec sleep 5"], stdin=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while info.lookup(child.pid)[0] != "bash" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert info.lookup(child.pid)[0] == "bash"
        child.stdin.write(b"\n")
        child.stdin.flush()
        while (open(f"/proc/{child.pid}/comm").read().strip() != "sleep"
               and time.monotonic() < deadline):
            time.sleep(0.001)
        assert info.lookup(child.pid)[0] == "sleep"
    finally:
        child.kill()
        child.wait()
    # gone: the comm last read once, then nothing is known of the pid
    assert info.lookup(child.pid)[0] == "sleep"
    assert info.lookup(child.pid) == ("<...>", 0)
    info.close()


def test_task_info_of_a_task_hidden_from_the_server(monkeypatch):
    """/proc mounted hidepid=1 (or a non-dumpable caller) refuses its comm with EPERM,
    an LSM may refuse its affinity: the request goes on with the comm unknown, as
    for any task /proc does not show, instead of failing."""
    real_open, real_affinity = os.open, os.sched_getaffinity

    def refusing_open(path, *args, **kwargs):
        if str(path).endswith("/comm"):
            raise PermissionError(errno.EPERM, "Operation not permitted")
        return real_open(path, *args, **kwargs)

    def refusing_affinity(pid):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "open", refusing_open)
    monkeypatch.setattr(os, "sched_getaffinity", refusing_affinity)
    info = TaskInfo(2)
    assert info.lookup(os.getpid())[0] == "<...>"
    assert 0 <= info.cpu(os.getpid()) < 2
    monkeypatch.setattr(os, "open", real_open)
    monkeypatch.setattr(os, "sched_getaffinity", real_affinity)
    assert info.lookup(os.getpid())[0] == open(f"/proc/{os.getpid()}/comm").read().strip()
    info.close()


def test_possible_cpus(tmp_path):
    f = tmp_path / "possible"
    f.write_text("0-3\n")
    assert possible_cpus(str(f)) == 4
    f.write_text("0,2-5\n")
    assert possible_cpus(str(f)) == 6
    f.write_text("0\n")
    assert possible_cpus(str(f)) == 1


def test_only_a_connection_abort_counts_as_a_normal_end():
    nested = ExceptionGroup("main", [ExceptionGroup("loop", [ConnectionAbortedError(103, "x")])])
    assert connection_aborted(nested)
    assert not connection_aborted(ExceptionGroup("main", [ConnectionAbortedError(), OSError()]))
    assert not connection_aborted(RuntimeError())
