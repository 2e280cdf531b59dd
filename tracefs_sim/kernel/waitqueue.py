"""Wait queues: the only wake-up mechanism of the simulated kernel.

The kernel never sleeps.  A reader that would block registers a callback here
(the FUSE adapter bridges it to a trio event); writers call ``wake_up()`` after
they commit data, exactly where the kernel calls ``wake_up_interruptible``.
"""

from __future__ import annotations

from collections.abc import Callable


class WaitQueue:
    """A set of wake-up callbacks, called (and kept) on every ``wake_up``."""

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: list[Callable[[], None]] = []

    def add(self, cb: Callable[[], None]) -> None:
        self._waiters.append(cb)

    def remove(self, cb: Callable[[], None]) -> None:
        try:
            self._waiters.remove(cb)
        except ValueError:
            pass

    def __bool__(self) -> bool:
        return bool(self._waiters)

    def wake_up(self) -> None:
        if self._waiters:
            for cb in list(self._waiters):
                cb()
