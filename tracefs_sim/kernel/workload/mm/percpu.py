"""Dynamic per-CPU allocations (mm/percpu.c) of the mm paths: an mm's RSS counters and
its mm_cid, with percpu_alloc_percpu / percpu_free_percpu.

The allocations come from the first chunk's dynamic area (chunk->base_addr is the base
of the per-CPU areas, so a per-CPU pointer is its offset); a freed area is reused by the
next allocation of its size, as the first-fit bitmap allocator tends to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..defs import PCPU_BASE, D

if TYPE_CHECKING:
    from .. import Workload
    from .calls import Path

PCPU_DYN_START = 0x2C000        # where the first chunk's dynamic area starts
PCPU_MIN_ALLOC_SIZE = 4
OBJ_CGROUP_PTR = 8              # sizeof(struct obj_cgroup *)
GFP_KERNEL_ACCOUNT = 0x400CC0


class Percpu:
    def __init__(self, wl: Workload, path: Path) -> None:
        self.wl = wl
        self.path = path
        self.next = PCPU_DYN_START
        self.free_areas: dict[int, list[int]] = {}    # size -> freed offsets
        self.sizes: dict[int, int] = {}               # live offset -> size

    def _area(self, size: int, align: int) -> int:
        free = self.free_areas.get(size)
        if free:
            off = free.pop()
        else:
            off = (self.next + align - 1) & ~(align - 1)
            self.next = off + size
        self.sizes[off] = size
        return off

    def preexisting(self, size: int, align: int) -> int:
        """An area allocated before tracing started (no event: its allocation is past)."""
        return self._area(size, align)

    def alloc(self, caller: str, size: int, align: int, gfp: int) -> int:
        """pcpu_alloc_noprof() called from ``caller``: the per-CPU pointer."""
        off = self._area(size, align)
        wl = self.wl
        self.path.enter("pcpu_alloc_noprof", size, align, 0, gfp)
        if wl.tp("percpu_alloc_percpu"):
            full = size * wl.k.nr_cpus + size // PCPU_MIN_ALLOC_SIZE * OBJ_CGROUP_PTR
            wl.emit("percpu_alloc_percpu", wl.sites.site(caller), 0, 0, size, align, PCPU_BASE, off,
                    off, full, gfp)
        self.path.leave("pcpu_alloc_noprof")
        return off

    def free(self, ptr: int) -> None:
        """free_percpu()."""
        size = self.sizes.pop(ptr)
        self.free_areas.setdefault(size, []).append(ptr)
        self.path.enter("free_percpu", ptr)
        self.wl.emit_ctx(D, 1, "percpu_free_percpu", PCPU_BASE, ptr, ptr)
        self.path.leave("free_percpu")
