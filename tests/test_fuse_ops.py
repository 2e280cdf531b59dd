"""The adapter's Operations driven directly under trio (no mount): inodes, errors, waits."""

from __future__ import annotations

import errno
import os
from types import SimpleNamespace

import pyfuse3
import pytest
import trio
from adapter_tree import build

from tracefs_sim.fuse import Operations


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
        assert a.st_ino == b.st_ino and ops._lookups[a.st_ino] == 2
        await ops.forget([(a.st_ino, 2)])
        assert a.st_ino not in ops._lookups and a.st_ino not in ops._pinned
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
