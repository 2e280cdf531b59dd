"""pyfuse3's session loop without a scheduling round per request.

pyfuse3 runs its workers as trio tasks: each request is read by the worker that holds a
read lock and is parked on ``/dev/fuse`` in ``trio.lowlevel.wait_readable``; the lock
then passes to the next idle worker, which parks on the fd in its turn.  Every request
thus costs two task switches and an epoll round through trio's scheduler, about 13 of
the ~60 µs of server CPU a bare pyfuse3 request costs on a small machine (measured with
the bench's floor file system: 63 → 50 µs per request).

pyfuse3 looks its trio functions up through the module attribute ``pyfuse3.trio`` (its
asyncio mode replaces it the same way).  ``serving_pyfuse3()`` puts a facade there whose
``wait_readable`` lets the worker that just served a request read the next one itself:

- while nothing else is runnable and no deadline is due, it blocks in ``poll()`` on
  ``/dev/fuse`` and trio's own epoll fd together (so any I/O, signal or cross-thread
  wake-up trio waits for ends the poll); when ``/dev/fuse`` alone is ready it returns
  without yielding, otherwise it parks in trio as before;
- one worker at a time waits for the fd (the others park here instead of on a lock),
  and a worker whose handler yields mid-request (a blocking ``trace_pipe`` read) hands
  the reader's role on at once: a trio Instrument sees its task step end and wakes a
  parked worker, so a blocked reader never leaves ``/dev/fuse`` unread;
- it returns only when ``poll()`` says the fd is readable, so pyfuse3's blocking read
  that follows never blocks the loop.

It reaches into trio's run loop (its deadlines and epoll object: no public API tells
how long trio would block, or on what); ``FuseReader.before_run`` checks they are there
and fails loudly otherwise (pyproject pins the trio versions it was checked with).
"""

from __future__ import annotations

import math
import os
import select
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager

import pyfuse3
import trio
from trio._core._run import GLOBAL_RUN_CONTEXT, Runner

MAX_POLL_S = 1.0   # the longest single poll() (trio's own epoll fd wakes it earlier)
SPIN_S = 50e-6     # how long a worker polls without blocking while requests come back to back


class FuseReader(trio.abc.Instrument):
    """Which of pyfuse3's workers reads ``/dev/fuse`` next (see the module docstring).

    An Instrument of the whole ``trio.run`` (``trio.run(..., instruments=[reader])``): it
    counts the tasks scheduled and not yet stepped, which includes the rest of the batch
    the scheduler is running (``runq`` alone does not), so "nothing else is runnable" is
    exact."""

    def __init__(self) -> None:
        self.runner: Runner | None = None
        self.epoll_fd = -1
        self.runnable = 0                                # scheduled, not yet stepped
        self.serving: trio.lowlevel.Task | None = None   # read a request, not back yet
        self.on_fd = False                               # a worker is parked on the fd
        self.lot = trio.lowlevel.ParkingLot()            # the other idle workers
        self.closed = False
        self.back_to_back = False                        # the last request came within SPIN_S
        self._polls: dict[int, tuple[select.poll, select.poll]] = {}

    def before_run(self) -> None:
        runner = GLOBAL_RUN_CONTEXT.runner
        for attr in ("deadlines", "current_time", "io_manager", "clock"):
            if not hasattr(runner, attr):
                raise RuntimeError(f"trio {trio.__version__}: no run loop {attr!r} (fuse_reader.py)")
        try:
            epoll = runner.io_manager._epoll
        except AttributeError:
            epoll = None
        if not isinstance(epoll, select.epoll):
            raise RuntimeError(f"trio {trio.__version__}: not the epoll I/O manager (fuse_reader.py)")
        # the poll stands for trio's own wait: a real clock, trio running the host loop
        if getattr(runner, "is_guest", False) or type(runner.clock).__name__ != "SystemClock":
            raise RuntimeError("FuseReader needs trio's own loop and clock")
        self.runner, self.epoll_fd = runner, epoll.fileno()
        # one run's state: the counts start at the first task, the fds are this run's
        self.runnable, self.serving, self.on_fd, self.closed = 0, None, False, False
        self.lot = trio.lowlevel.ParkingLot()
        self._polls.clear()

    def task_scheduled(self, task: trio.lowlevel.Task) -> None:
        self.runnable += 1

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.runnable -= 1

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.serving:
            # its handler yielded mid-request: another worker reads meanwhile
            self.serving = None
            self.lot.unpark()

    def _pollers(self, fd: int) -> tuple[select.poll, select.poll]:
        p = self._polls.get(fd)
        if p is None:
            alone, both = select.poll(), select.poll()
            alone.register(fd, select.POLLIN)
            both.register(fd, select.POLLIN)
            both.register(self.epoll_fd, select.POLLIN)
            p = self._polls[fd] = (alone, both)
        return p

    def _ready_without_trio(self, fd: int, both: select.poll) -> bool:
        """Block where trio would block anyway: True when ``fd`` alone became ready.

        While requests come back to back (the last one came within ``SPIN_S``), it first
        polls without blocking for up to ``SPIN_S``, yielding the CPU between polls: a
        CPU that went idle takes longer to wake (tens of µs in a VM) than the client
        takes to send its next request.  The server's CPU per request goes down, not up
        (no sleep and wake-up in the kernel); after a wait longer than that it blocks at
        once, and a task waiting for the CPU runs first (the yield), so an
        oversubscribed machine loses nothing (measured: a full ftracetest on two CPUs
        with three shards)."""
        if self.runnable:
            return False
        runner = self.runner
        assert runner is not None, "FuseReader: before_run did not run"
        deadline = runner.deadlines.next_deadline()
        timeout = MAX_POLL_S if deadline == math.inf else deadline - runner.current_time()
        if timeout <= 0:
            return False
        start = time.perf_counter()
        if self.back_to_back:
            spin = min(SPIN_S, timeout)      # never past trio's next deadline
            while not (ready := both.poll(0)):
                if time.perf_counter() - start >= spin:
                    break
                os.sched_yield()     # a task waiting for this CPU runs first
            else:
                return len(ready) == 1 and ready[0][0] == fd
            self.back_to_back = False
            timeout -= time.perf_counter() - start
            if timeout <= 0:
                return False
        ready = both.poll(min(timeout, MAX_POLL_S) * 1000)
        alone = len(ready) == 1 and ready[0][0] == fd
        self.back_to_back = alone and time.perf_counter() - start < SPIN_S
        return alone

    async def wait_readable(self, fd: int) -> None:
        task = trio.lowlevel.current_task()
        if self.serving is task:
            self.serving = None      # back without yielding: it keeps the role
        alone, both = self._pollers(fd)
        while True:
            if self.closed:
                raise trio.ClosedResourceError("FUSE fd closed")
            if self.on_fd or self.serving is not None:
                await self.lot.park()
                continue
            if not self._ready_without_trio(fd, both):
                self.on_fd = True
                try:
                    await trio.lowlevel.wait_readable(fd)
                finally:
                    self.on_fd = False
                if not alone.poll(0):
                    continue         # woken, but the request is gone (its caller withdrew it)
            self.serving = task
            return

    def notify_closing(self, fd: int) -> None:
        self.closed = True
        self.lot.unpark_all()
        trio.lowlevel.notify_closing(fd)


class _NoLock:
    """pyfuse3's read lock: the exclusion is ``FuseReader.wait_readable``'s.  pyfuse3
    creates its lock once per process, so a process serves one session this way (a
    later stock ``pyfuse3.main()`` would keep this lock and let two workers wait on the
    fd)."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


@contextmanager
def serving_pyfuse3(reader: FuseReader) -> Iterator[None]:
    """Around ``pyfuse3.main()`` in a ``trio.run`` that has ``reader`` as an Instrument:
    pyfuse3's workers read through it."""
    if reader.runner is None:
        raise RuntimeError("FuseReader is not an instrument of this trio.run")
    facade = types.SimpleNamespace(
        Lock=_NoLock, ClosedResourceError=trio.ClosedResourceError,
        open_nursery=trio.open_nursery, from_thread=trio.from_thread,
        lowlevel=types.SimpleNamespace(
            current_trio_token=trio.lowlevel.current_trio_token,
            current_task=trio.lowlevel.current_task,
            wait_readable=reader.wait_readable, notify_closing=reader.notify_closing))
    saved = pyfuse3.trio     # type: ignore[attr-defined]
    pyfuse3.trio = facade    # type: ignore[attr-defined]
    try:
        yield
    finally:
        pyfuse3.trio = saved     # type: ignore[attr-defined]
