"""FuseReader (fuse/fuse_reader.py) driven the way pyfuse3's workers drive it, with a
pipe standing in for /dev/fuse: one byte per request, read non-blocking so that a
worker let through without a request fails instead of hanging."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Awaitable, Callable

import pyfuse3
import trio

from tracefs_sim.fuse import fuse_reader
from tracefs_sim.fuse.fuse_reader import FuseReader, serving_pyfuse3


class Requests:
    """The pipe and what the workers did with its bytes."""

    def __init__(self) -> None:
        self.rfd, self.wfd = os.pipe()
        os.set_blocking(self.rfd, False)
        self.served: list[tuple[str, bytes]] = []
        self.blocked = trio.Event()      # set when the yielding request started
        self.release = trio.Event()      # lets it finish

    def send(self, data: bytes) -> None:
        os.write(self.wfd, data)

    def close(self) -> None:
        os.close(self.rfd)
        os.close(self.wfd)


async def _worker(name: str, req: Requests) -> None:
    """pyfuse3's _session_loop: the lock, wait_readable, one request, its handler."""
    fake = pyfuse3.trio     # the facade serving_pyfuse3 installed
    while True:
        try:
            async with fake.Lock():
                await fake.lowlevel.wait_readable(req.rfd)
        except fake.ClosedResourceError:
            return
        byte = os.read(req.rfd, 1)      # BlockingIOError: let through without a request
        req.served.append((name, byte))
        if byte == b"B":                 # a handler that sleeps (a blocking trace_pipe read)
            req.blocked.set()
            await req.release.wait()


def _serve(req: Requests, body: Callable[[], Awaitable[None]], workers: str = "ab") -> None:
    """Run ``body`` beside pyfuse3-like workers reading ``req`` through a FuseReader,
    then close the fd as pyfuse3.terminate() does (every worker must end)."""
    reader = FuseReader()

    async def main() -> None:
        with serving_pyfuse3(reader):
            async with trio.open_nursery() as n:
                for name in workers:
                    n.start_soon(_worker, name, req)
                await body()
                reader.notify_closing(req.rfd)

    try:
        trio.run(main, instruments=[reader])
    finally:
        req.close()


def test_requests_are_served_in_order_by_the_worker_that_comes_back() -> None:
    req = Requests()

    async def body() -> None:
        for _ in range(50):
            req.send(b"x")
            await trio.sleep(0.001)
        await trio.sleep(0.05)

    _serve(req, body)
    assert [b for _, b in req.served] == [b"x"] * 50


def test_a_worker_whose_handler_yields_hands_the_fd_on() -> None:
    """While one request sleeps in its handler, the next ones are still read."""
    req = Requests()

    async def body() -> None:
        req.send(b"B")
        await req.blocked.wait()
        sleeper = next(name for name, b in req.served if b == b"B")
        for _ in range(5):
            req.send(b"x")
        with trio.fail_after(5):
            while len(req.served) < 6:
                await trio.sleep(0.01)
        assert {name for name, b in req.served if b == b"x"} == {"a", "b"} - {sleeper}
        req.release.set()
        await trio.sleep(0.01)

    _serve(req, body)
    assert [b for _, b in req.served] == [b"B"] + [b"x"] * 5


def test_a_timer_runs_while_the_workers_wait() -> None:
    """The poll ends at trio's next deadline: a sleeping task wakes on time."""
    req = Requests()

    async def body() -> None:
        t0 = trio.current_time()
        await trio.sleep(0.05)
        assert trio.current_time() - t0 < 0.5

    _serve(req, body, workers="a")
    assert req.served == []


def test_an_fd_trio_watches_wakes_the_waiting_worker(monkeypatch) -> None:
    """With no deadline at all, only trio's own epoll fd can end the worker's poll when
    another fd trio waits on becomes ready (a signal, the tracer's records, a thread's
    run_sync_soon).  A watchdog thread sends a request after 5 s if it does not."""
    monkeypatch.setattr(fuse_reader, "MAX_POLL_S", 60.0)
    req = Requests()
    other_r, other_w = os.pipe()
    seen: list[bytes] = []
    done = threading.Event()

    def poke() -> None:
        time.sleep(0.05)
        os.write(other_w, b"w")
        if not done.wait(5):
            os.write(req.wfd, b"!")      # unsticks a worker the poke did not reach

    async def body() -> None:
        # parked before "a" first runs: "a" finds nothing runnable and polls
        await trio.lowlevel.wait_readable(other_r)
        seen.append(os.read(other_r, 1))

    thread = threading.Thread(target=poke)
    thread.start()
    try:
        _serve(req, body, workers="a")
    finally:
        done.set()
        thread.join()
        os.close(other_r)
        os.close(other_w)
    assert seen == [b"w"]
    assert req.served == []


def test_the_facade_is_removed_after_the_session() -> None:
    before = pyfuse3.trio
    inside: list[object] = []

    async def body() -> None:
        inside.append(pyfuse3.trio)

    _serve(Requests(), body, workers="")
    assert inside and inside[0] is not before
    assert pyfuse3.trio is before


def test_a_worker_polls_without_blocking_while_requests_come_back_to_back(monkeypatch) -> None:
    """A request that was there at once makes the next wait poll without blocking first
    (a CPU that idles wakes late); one that took long makes the next wait block at once."""
    polls: list[tuple[float, bool]] = []     # (timeout, ready) of each poll of fd + trio's fd

    class Recorder:
        def __init__(self, p: object) -> None:
            self.p = p

        def poll(self, timeout: float = -1) -> list[tuple[int, int]]:
            got = self.p.poll(timeout)
            polls.append((timeout, bool(got)))
            return got

    pollers = FuseReader._pollers

    def recording(self: FuseReader, fd: int) -> tuple[object, object]:
        alone, both = pollers(self, fd)
        return alone, Recorder(both)

    monkeypatch.setattr(FuseReader, "_pollers", recording)
    # "back to back" within 5 ms: a loaded machine's delays between two polls stay below
    monkeypatch.setattr(fuse_reader, "SPIN_S", 0.005)
    req = Requests()
    marks: list[int] = []

    async def body() -> None:
        await trio.sleep(0.02)
        marks.append(len(polls))
        req.send(b"xxx")            # three at once: the later two are there at once
        with trio.fail_after(5):
            while len(req.served) < 3:
                await trio.sleep(0.001)
        await trio.sleep(0.02)      # the spin after the third finds nothing: it waits
        marks.append(len(polls))
        req.send(b"y")
        with trio.fail_after(5):
            while len(req.served) < 4:
                await trio.sleep(0.001)
        await trio.sleep(0.02)
        marks.append(len(polls))

    _serve(req, body, workers="a")
    first, second, third = (polls[:marks[0]], polls[marks[0]:marks[1]], polls[marks[1]:marks[2]])
    assert first and all(t > 0 for t, _ in first)
    # a request that was there at once: the next one is found without blocking
    assert (0, True) in second, second
    # the request after a long wait: the wait that follows it blocks at once
    assert third and all(t > 0 for t, _ in third), third
