"""Slab and page allocations of the simulated code paths (mm/slub.c, mm/page_alloc.c):
the kmem events with addresses from a simple bump allocator over the direct map."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .defs import CACHES, GFP_KERNEL

if TYPE_CHECKING:
    from . import Workload

HEAP_START = 0xFFFF888104000000
HEAP_END = 0xFFFF888140000000


class Slab:
    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        self.obj = HEAP_START              # slab objects handed out

    def alloc_obj(self, size: int) -> int:
        self.obj += (size + 63) & ~63
        if self.obj > HEAP_END:
            self.obj = HEAP_START
        return self.obj

    def cache_alloc(self, cache: str, caller: str, ptr: int = 0) -> int:
        """kmem_cache_alloc(cachep) called from ``caller``: the object's address."""
        size, slab, gfp, acct = CACHES[cache]
        ptr = ptr or self.alloc_obj(slab)
        wl = self.wl
        wl.emit("kmem_cache_alloc", wl.sites.site(caller), ptr, size, slab, gfp, -1, acct)
        return ptr

    def cache_free(self, cache: str, caller: str, ptr: int) -> None:
        self.wl.emit("kmem_cache_free", self.wl.sites.site(caller), ptr, cache)

    def kmalloc(self, caller: str, size: int, gfp: int = GFP_KERNEL) -> int:
        alloc = max(8, 1 << (size - 1).bit_length())
        ptr = self.alloc_obj(alloc)
        self.wl.emit("kmalloc", self.wl.sites.site(caller), ptr, size, alloc, gfp, -1)
        return ptr

    def kfree(self, caller: str, ptr: int) -> None:
        self.wl.emit("kfree", self.wl.sites.site(caller), ptr)

    def page_alloc(self, gfp: int) -> None:
        """A page of the simulated tasks' code paths, from the page allocator."""
        if self.wl.tp("mm_page_alloc"):
            self.wl.mm.pages.alloc(gfp)
