"""The per-CPU LRU batches (mm/swap.c): a new anonymous folio is added to its CPU's
lru_add batch (31 folios, PAGEVEC_SIZE); a full batch, or lru_add_drain(), moves the
folios to the LRU lists, one mm_lru_insertion each.

With the multi-gen LRU on, a folio added in a fault is activated first (lru_gen_in_fault()):
an anonymous folio goes to LRU_ACTIVE_ANON, mapped, anonymous and swap-backed ("Ma b  ").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..defs import D

if TYPE_CHECKING:
    from .. import Workload
    from .calls import Path

PAGEVEC_SIZE = 31
LRU_ACTIVE_ANON = 1
PAGEMAP_MAPPED, PAGEMAP_ANONYMOUS, PAGEMAP_SWAPBACKED = 0x1, 0x2, 0x10
ANON_FLAGS = PAGEMAP_MAPPED | PAGEMAP_ANONYMOUS | PAGEMAP_SWAPBACKED
VMEMMAP_BASE = 0xFFFFEA0000000000
STRUCT_PAGE_SIZE = 64


def folio_of(pfn: int) -> int:
    """pfn_folio(): the struct page of a frame in the vmemmap."""
    return VMEMMAP_BASE + pfn * STRUCT_PAGE_SIZE


class LruBatches:
    def __init__(self, wl: Workload, path: Path) -> None:
        self.wl = wl
        self.path = path
        self.batch: list[list[int]] = [[] for _ in range(wl.k.nr_cpus)]

    def add(self, pfn: int) -> None:
        """folio_add_lru_vma() → folio_add_lru() of a new anonymous folio."""
        path = self.path
        path.enter("folio_add_lru_vma", folio_of(pfn), 0)
        path.enter("folio_add_lru", folio_of(pfn))
        cpu = self.wl.k.sched.cpu
        batch = self.batch[cpu]
        batch.append(pfn)
        if len(batch) >= PAGEVEC_SIZE:
            self._move(batch)
        path.leave("folio_add_lru")
        path.leave("folio_add_lru_vma")

    def drain(self) -> None:
        """lru_add_drain(): this CPU's batch goes to the LRU lists."""
        batch = self.batch[self.wl.k.sched.cpu]
        self.path.enter("lru_add_drain")
        if batch:
            self.path.enter("lru_add_drain_cpu", self.wl.k.sched.cpu)
            self._move(batch)
            self.path.leave("lru_add_drain_cpu")
        self.path.leave("lru_add_drain")

    def forget(self, pfn: int) -> None:
        """A folio freed while still in a batch (its batch reference kept it until the
        drain that precedes every free of mapped pages, so this only tidies up)."""
        for batch in self.batch:
            if pfn in batch:
                batch.remove(pfn)

    def _move(self, batch: list[int]) -> None:
        """folio_batch_move_lru(, lru_add): under the lruvec lock with irqs off, inside
        the batches' local lock (preempt depth 2)."""
        wl = self.wl
        path = self.path
        path.enter("folio_batch_move_lru", 0, 0)
        traced = wl.tp("mm_lru_insertion")
        for pfn in batch:
            path.enter("lru_add", 0, folio_of(pfn))
            if traced:
                wl.emit_ctx(D, 2, "mm_lru_insertion", folio_of(pfn), pfn, LRU_ACTIVE_ANON, ANON_FLAGS)
            path.leave("lru_add")
        batch.clear()
        path.leave("folio_batch_move_lru")
