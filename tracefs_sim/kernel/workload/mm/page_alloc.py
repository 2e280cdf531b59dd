"""The page allocator of the simulated machine (mm/page_alloc.c): page frames handed out
and taken back through the per-CPU page lists, with the kmem page events.

Frames are numbers from a pool per migratetype; a freed frame goes back on its CPU's
per-CPU list and is the next one that CPU hands out (the lists are LIFO), so a frame's
alloc and free events pair up and a freed frame shows up again.  An empty per-CPU list is
refilled from the buddy lists under the zone lock (rmqueue_bulk(): one
mm_page_alloc_zone_locked per page, percpu_refill=1); a list that grows past its high
mark is drained back (free_pcppages_bulk(): mm_page_pcpu_drain per page).  The sizes are
those of a 2 GiB DMA32 zone: batch 63 (zone_batchsize()), high 4 batches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..defs import GFP_ACCOUNT, GFP_KERNEL, GFP_ZERO, D

if TYPE_CHECKING:
    from .. import Workload
    from .calls import Path

MIGRATE_UNMOVABLE, MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE = 0, 1, 2
GFP_MOVABLE = 0x8            # __GFP_MOVABLE
GFP_RECLAIMABLE = 0x10       # __GFP_RECLAIMABLE
GFP_PGTABLE_USER = GFP_KERNEL | GFP_ZERO | GFP_ACCOUNT     # page tables of user space
PCP_BATCH = 63
PCP_HIGH = 4 * PCP_BATCH
PCP_BATCH_SCALE_MAX = 5      # CONFIG_PCP_BATCH_SCALE_MAX
PCP_START = 24               # pages on each per-CPU list when tracing starts
ZERO_PFN = 0x3E01            # the zero page (empty_zero_page in .bss)
# each migratetype's frames come from its own range (its pageblocks)
POOL_BASE = {MIGRATE_UNMOVABLE: 0x140000, MIGRATE_MOVABLE: 0x160000, MIGRATE_RECLAIMABLE: 0x1C0000}


def gfp_migratetype(gfp: int) -> int:
    """gfp_migratetype()."""
    if gfp & GFP_MOVABLE:
        return MIGRATE_MOVABLE
    if gfp & GFP_RECLAIMABLE:
        return MIGRATE_RECLAIMABLE
    return MIGRATE_UNMOVABLE


class PageAlloc:
    """The zone's buddy lists and each CPU's per-CPU page lists."""

    def __init__(self, wl: Workload, path: Path) -> None:
        self.wl = wl
        self.path = path
        n = wl.k.nr_cpus
        self.next_pfn = dict(POOL_BASE)
        self.buddy: dict[tuple[int, int], list[int]] = {}
        # per CPU: (migratetype, order) -> frames, the head is the list's end
        self.pcp: list[dict[tuple[int, int], list[int]]] = [{} for _ in range(n)]
        self.alloc_factor = [0] * n
        self.free_count = [0] * n
        self.mt_of: dict[int, int] = {}     # allocated frame -> its pageblock's migratetype
        for cpu in range(n):
            for mt in (MIGRATE_UNMOVABLE, MIGRATE_MOVABLE):
                self.pcp[cpu][(mt, 0)] = [self._take(mt, 0) for _ in range(PCP_START)]

    def _take(self, mt: int, order: int) -> int:
        """A free block of 2**order frames from the buddy lists (aligned)."""
        free = self.buddy.get((mt, order))
        if free:
            return free.pop()
        size = 1 << order
        pfn = (self.next_pfn[mt] + size - 1) & ~(size - 1)
        self.next_pfn[mt] = pfn + size
        return pfn

    def preexisting(self, order: int) -> int:
        """A block allocated before tracing started (no event: its allocation is past)."""
        return self._take(MIGRATE_UNMOVABLE, order)

    # ------------------------------------------------------------------ allocation
    def alloc(self, gfp: int, order: int = 0) -> int:
        """__alloc_pages_noprof() → get_page_from_freelist(): a block from the CPU's list
        (refilled first when empty), then mm_page_alloc."""
        wl = self.wl
        path = self.path
        cpu = wl.k.sched.cpu
        mt = gfp_migratetype(gfp)
        path.enter("__alloc_pages_noprof", gfp, order, 0, 0)
        path.enter("get_page_from_freelist", gfp, order, 0, 0)
        lst = self.pcp[cpu].setdefault((mt, order), [])
        if not lst:
            self._refill(cpu, mt, order, lst)
        pfn = lst.pop()
        path.leave("get_page_from_freelist")
        self.mt_of[pfn] = mt
        wl.emit("mm_page_alloc", pfn, order, gfp, mt)
        path.leave("__alloc_pages_noprof")
        return pfn

    def bulk(self, gfp: int, n: int) -> list[int]:
        """alloc_pages_bulk_noprof(): order-0 pages straight off the CPU's list (no
        mm_page_alloc: the bulk allocator has no tracepoint of its own)."""
        cpu = self.wl.k.sched.cpu
        mt = gfp_migratetype(gfp)
        lst = self.pcp[cpu].setdefault((mt, 0), [])
        out = []
        for _ in range(n):
            if not lst:
                self._refill(cpu, mt, 0, lst)
            pfn = lst.pop()
            self.mt_of[pfn] = mt
            out.append(pfn)
        return out

    def _refill(self, cpu: int, mt: int, order: int, lst: list[int]) -> None:
        """rmqueue_bulk() under zone->lock (pcp lock, zone lock: preempt depth 3)."""
        factor = self.alloc_factor[cpu]
        batch = min(PCP_BATCH << factor, PCP_HIGH)
        if factor < PCP_BATCH_SCALE_MAX and batch < PCP_HIGH:
            self.alloc_factor[cpu] = factor + 1
        if order:
            batch = max(batch >> order, 2)
        got = [self._take(mt, order) for _ in range(batch)]
        if self.wl.tp("mm_page_alloc_zone_locked"):
            for pfn in got:
                self.wl.emit_ctx(D, 3, "mm_page_alloc_zone_locked", pfn, order, mt, 1)
        # list_add_tail: the first taken is handed out first
        lst[:0] = reversed(got)

    # ------------------------------------------------------------------ freeing
    def free(self, pfn: int, order: int = 0) -> None:
        """__free_pages() → free_unref_page(): mm_page_free (free_pages_prepare()), then
        the frame goes on the CPU's list."""
        self.path.enter("free_unref_page", pfn, order)
        self.wl.emit("mm_page_free", pfn, order)
        self._commit(pfn, order)
        self.path.leave("free_unref_page")

    def free_batch(self, pfns: list[int]) -> None:
        """free_unref_folios(): each folio's mm_page_free first, then under the pcp lock
        each one's mm_page_free_batched as it goes on the list."""
        if not pfns:
            return
        wl = self.wl
        self.path.enter("free_unref_folios", 0)
        for pfn in pfns:
            wl.emit("mm_page_free", pfn, 0)
        batched = wl.tp("mm_page_free_batched")
        for pfn in pfns:
            if batched:
                wl.emit_ctx(0, 2, "mm_page_free_batched", pfn)
            self._commit(pfn, 0)
        self.path.leave("free_unref_folios")

    def _commit(self, pfn: int, order: int) -> None:
        """free_unref_page_commit(): onto the list; past its high mark a batch of the
        oldest goes back to the buddy lists."""
        cpu = self.wl.k.sched.cpu
        mt = self.mt_of.pop(pfn, MIGRATE_MOVABLE)
        self.alloc_factor[cpu] >>= 1
        lst = self.pcp[cpu].setdefault((mt, order), [])
        lst.append(pfn)
        count = sum(len(x) << o for (_, o), x in self.pcp[cpu].items())
        if count >= PCP_HIGH:
            self._drain(cpu, mt, order, lst)

    def _drain(self, cpu: int, mt: int, order: int, lst: list[int]) -> None:
        """free_pcppages_bulk() under zone->lock."""
        n = min(PCP_BATCH, len(lst))
        gone, lst[:n] = lst[:n], []
        drain = self.wl.tp("mm_page_pcpu_drain")
        self.path.enter("free_pcppages_bulk", 0, n, 0, 0)
        free = self.buddy.setdefault((mt, order), [])
        for pfn in gone:
            if drain:
                self.wl.emit_ctx(D, 3, "mm_page_pcpu_drain", pfn, order, mt)
            free.append(pfn)
        self.path.leave("free_pcppages_bulk")
