"""Serving a mount: pyfuse3's session under trio, signals, the idle ticker, clean unmount.

``run()`` mounts a tree and serves it in the foreground until the mount goes away
(``fusermount3 -u``, an aborted connection) or SIGINT/SIGTERM arrives; either way it
unmounts and returns 0, and readers blocked in ``trace_pipe`` get EOF first.  Beside the
FUSE session the nursery runs the signal watcher, the idle ticker (an unseeded kernel's
background workload runs on wall time between requests; the host-process watcher polls
there) and, under ``tracefs-sim run``, the reader of the tracer's records (a traced
program that never touches the mount is traced all the same).
"""

from __future__ import annotations

import faulthandler
import gc
import logging
import os
import resource
import signal

import pyfuse3
import trio

from ..host.feed import TracerFeed
from ..kernel import Kernel
from ..sysctl_mirror import SysctlMirror
from ..tracefs.node import Dir
from . import control
from .fuse_reader import FuseReader, serving_pyfuse3
from .handlers import Operations

log = logging.getLogger("tracefs_sim.fuse")

IDLE_TICK = 0.01
RECORDS_BATCH = 0.001  # seconds the tracer's records gather before the reader drains them
# (a wakeup per batch, not per stop: a request drains what came before it anyway)
MAX_TASKS = 10000
SIGNAL_DRAIN = 1.0  # seconds cancelled readers get to answer before the session ends


async def _idle_ticker(kernel: Kernel, ops: Operations) -> None:
    while True:
        await trio.sleep(IDLE_TICK)
        try:
            kernel.idle_tick()
            ops.hostprocs.poll(kernel, ops.tasks.cpu)
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


async def _tracer_records(ops: Operations, feed: TracerFeed) -> None:
    """Process the tracer's records as they arrive; the tracer's mode follows what is
    attached (a trigger fired by a record may have changed it)."""
    while not feed.eof:
        await trio.lowlevel.wait_readable(feed.fileno())
        await trio.sleep(RECORDS_BATCH)
        if ops.sysctl is not None:
            ops.sysctl.sync()   # a sysctl written meanwhile (stack_tracer_enabled) applies
        feed.drain()
        feed.sync_mode()


async def _serve(ops: Operations, reader: FuseReader) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_signal_watcher, ops)
        if not ops.kernel.deterministic:
            nursery.start_soon(_idle_ticker, ops.kernel, ops)
        nursery.start_soon(control.serve, ops)     # tracefs-sim insmod/rmmod/lsmod/dmesg
        if ops.feed is not None:
            nursery.start_soon(_tracer_records, ops, ops.feed)
        with serving_pyfuse3(reader):
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
        feed: TracerFeed | None = None) -> int:
    """Mount ``tree`` on ``mountpoint`` and serve until unmounted or SIGINT/SIGTERM."""
    faulthandler.enable()
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    ops = Operations(kernel, tree, os.path.abspath(mountpoint), sysctl, feed)
    # The machine built so far (symbols, event formats, the tree: tens of thousands of
    # objects) lives as long as the mount: out of the cyclic GC's generations, a full
    # collection no longer rescans it, which took ~10 ms per pause in the middle of a
    # request (a 4 KiB read costs ~70 us).
    gc.collect()
    gc.freeze()
    pyfuse3.init(ops, mountpoint, fuse_options(allow_other, debug))
    log.info("mounted on %s (%d CPUs)", mountpoint, kernel.nr_cpus)
    if feed is not None:
        feed.start()     # the tracer starts CMD once it has the capture table
    try:
        reader = FuseReader()
        trio.run(_serve, ops, reader, instruments=[reader])
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
        ops.tasks.close()
        ru = resource.getrusage(resource.RUSAGE_SELF)
        log.info("unmounted: %.2f s user, %.2f s system, max RSS %d KiB",
                 ru.ru_utime, ru.ru_stime, ru.ru_maxrss)
    return 0
