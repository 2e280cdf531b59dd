"""Serving a mount: pyfuse3's session under trio, signals, the idle ticker, clean unmount.

``run()`` mounts a tree and serves it in the foreground until the mount goes away
(``fusermount3 -u``, an aborted connection) or SIGINT/SIGTERM arrives; either way it
unmounts and returns 0, and readers blocked in ``trace_pipe`` get EOF first.  Beside the
FUSE session the nursery runs the signal watcher, the idle ticker (an unseeded kernel's
background workload runs on wall time between requests; the host-process watcher polls
there) and, when asked, the socket that accepts ``syscall_mirror`` listeners.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import resource
import select
import signal
import socket

import pyfuse3
import trio

from .. import syscall_mirror
from ..kernel import Kernel
from ..sysctl_mirror import SysctlMirror
from ..tracefs.node import Dir
from . import control
from .handlers import Operations

log = logging.getLogger("tracefs_sim.fuse")

IDLE_TICK = 0.01
MAX_TASKS = 10000
SIGNAL_DRAIN = 1.0  # seconds cancelled readers get to answer before the session ends


async def _idle_ticker(kernel: Kernel, ops: Operations) -> None:
    while True:
        await trio.sleep(IDLE_TICK)
        try:
            kernel.idle_tick()
            ops.hostprocs.poll(kernel, ops.tasks.lookup)
        except Exception:
            log.exception("idle_tick failed")


async def _signal_watcher(ops: Operations) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("%s: unmounting", signal.Signals(signum).name)
            ops.cancel_waits()
            # let the cancelled readers answer EINTR before the session goes away
            # (otherwise they end with ECONNABORTED when the connection is aborted)
            with trio.move_on_after(SIGNAL_DRAIN):
                while ops.waiting():
                    await trio.sleep(0.005)
            pyfuse3.terminate()
            return


async def _syscall_socket(ops: Operations, path: str, nursery: trio.Nursery) -> None:
    """Accept syscall_mirror launchers: each hands over a seccomp listener."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.setblocking(False)
    srv.bind(path)
    srv.listen(8)
    try:
        while True:
            await trio.lowlevel.wait_readable(srv)
            try:
                conn, _ = srv.accept()
            except BlockingIOError:
                continue
            with conn:
                conn.setblocking(False)
                await trio.lowlevel.wait_readable(conn)
                try:
                    _, fds, _, _ = socket.recv_fds(conn, 16, 4)
                except OSError:
                    continue
                for fd in fds:
                    nursery.start_soon(_mirror_syscalls, ops, syscall_mirror.Listener(fd))
                conn.setblocking(True)
                conn.sendall(syscall_mirror.GO if fds else b"N")
    finally:
        srv.close()
        try:
            os.unlink(path)
        except OSError:
            pass


async def _mirror_syscalls(ops: Operations, lst: syscall_mirror.Listener) -> None:
    """Serve one listener until every process under its filter is gone."""
    poller = select.poll()
    poller.register(lst.fd, select.POLLIN)
    try:
        while True:
            await trio.lowlevel.wait_readable(lst.fd)
            events = dict(poller.poll(0)).get(lst.fd, 0)
            if not events & select.POLLIN:
                if events & (select.POLLHUP | select.POLLERR):
                    return
                continue
            n = lst.receive()
            if n is None:
                continue
            try:
                ops.host_syscall(n)
            except Exception:
                log.exception("mirroring syscall %d of pid %d failed", n.nr, n.pid)
            finally:
                lst.proceed(n)
    finally:
        lst.close()


async def _serve(ops: Operations, syscall_socket: str | None) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_signal_watcher, ops)
        if not ops.kernel.deterministic:
            nursery.start_soon(_idle_ticker, ops.kernel, ops)
        if syscall_socket:
            nursery.start_soon(_syscall_socket, ops, syscall_socket, nursery)
        nursery.start_soon(control.serve, ops)     # tracefs-sim insmod/rmmod/lsmod/dmesg
        await pyfuse3.main(min_tasks=1, max_tasks=MAX_TASKS)
        ops.cancel_waits()
        nursery.cancel_scope.cancel()


def connection_aborted(exc: BaseException) -> bool:
    """True when ``exc`` (possibly a nested exception group) is only the end of the session."""
    if isinstance(exc, BaseExceptionGroup):
        return all(connection_aborted(sub) for sub in exc.exceptions)
    return isinstance(exc, ConnectionAbortedError)


def fuse_options(allow_other: bool, debug: bool) -> set[str]:
    opts = set(pyfuse3.default_options)  # default_permissions
    opts |= {"fsname=tracefs", "subtype=tracefs", "default_permissions"}
    if allow_other:
        opts.add("allow_other")
    if debug:
        opts.add("debug")
    return opts


def run(mountpoint: str, kernel: Kernel, tree: Dir, allow_other: bool = False,
        debug: bool = False, sysctl: SysctlMirror | None = None,
        syscall_socket: str | None = None) -> int:
    """Mount ``tree`` on ``mountpoint`` and serve until unmounted or SIGINT/SIGTERM."""
    faulthandler.enable()
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    ops = Operations(kernel, tree, os.path.abspath(mountpoint), sysctl)
    pyfuse3.init(ops, mountpoint, fuse_options(allow_other, debug))
    log.info("mounted on %s (%d CPUs)", mountpoint, kernel.nr_cpus)
    try:
        trio.run(_serve, ops, syscall_socket)
    except BaseException as e:  # ExceptionGroup from pyfuse3.main: still unmount, then report
        if isinstance(e, KeyboardInterrupt):
            log.info("interrupted")
        elif connection_aborted(e):
            # a lazy unmount (fusermount -u -z) or an abort through
            # /sys/fs/fuse/connections ends the session with ECONNABORTED instead of
            # ENODEV: the mount is gone either way, which is a normal end for us
            log.info("connection aborted: %s", mountpoint)
        else:
            log.exception("FUSE main loop failed")
            return 1
    finally:
        # the loop is over: a late SIGTERM/SIGINT (e.g. from a test teardown racing a
        # fusermount -u) must not kill us half-way through the unmount
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        pyfuse3.close(unmount=True)
        ops.hostprocs.close()
        ru = resource.getrusage(resource.RUSAGE_SELF)
        log.info("unmounted: %.2f s user, %.2f s system, max RSS %d KiB",
                 ru.ru_utime, ru.ru_stime, ru.ru_maxrss)
    return 0
