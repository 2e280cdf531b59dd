"""mm->mmap_lock (include/linux/mmap_lock.h, mm/mmap_lock.c): the mmap_lock events of each
acquire and release, paired, with the mm's memory cgroup path.

The events fire in __mmap_lock_do_trace_*() (traceable functions, called only while the
event is enabled), so a function tracer sees them exactly when the events are on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .. import Workload
    from .calls import Path
    from .mm_types import MmStruct


class MmapLock:
    def __init__(self, wl: Workload, path: Path) -> None:
        self.wl = wl
        self.path = path

    def _trace(self, event: str, fn: str, mm: MmStruct, *values: int) -> None:
        if self.wl.tp(event):
            self.path.enter(fn, mm.addr, *values)
            self.wl.emit(event, mm.addr, mm.memcg, *values)
            self.path.leave(fn)

    def lock(self, mm: MmStruct, write: bool) -> None:
        """mmap_read_lock()/mmap_write_lock(_killable)()/mmap_read_trylock() that got it."""
        self._trace("mmap_lock_start_locking", "__mmap_lock_do_trace_start_locking", mm, int(write))
        self._trace("mmap_lock_acquire_returned", "__mmap_lock_do_trace_acquire_returned", mm,
                    int(write), 1)

    def downgrade(self, mm: MmStruct) -> None:
        """mmap_write_downgrade(): the lock is now held for reading."""
        self._trace("mmap_lock_acquire_returned", "__mmap_lock_do_trace_acquire_returned", mm, 0, 1)

    def unlock(self, mm: MmStruct, write: bool) -> None:
        self._trace("mmap_lock_released", "__mmap_lock_do_trace_released", mm, int(write))
