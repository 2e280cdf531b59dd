"""The page cache of the simulated files (mm/filemap.c, mm/truncate.c): the folios of
each ``address_space`` and the filemap events that follow them.

A folio gets a page frame when ``__filemap_add_folio()`` inserts it (the
``mm_filemap_add_to_page_cache`` event) and keeps it until ``__filemap_remove_folio()``
takes it out again (``mm_filemap_delete_from_page_cache``, under the mapping's
``i_pages`` lock with interrupts off), so one folio shows the same pfn from its insertion
to its removal.  Frames are handed out from a modelled range and reused once freed, as
the buddy allocator reuses a hot page.  Order-0 folios: the 9P root has no large
folio support.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .defs import D

if TYPE_CHECKING:
    from . import Workload

PFN_BASE = 0x10A3C0          # page frames the page cache's folios get (modelled)
PFN_END = 0x13FFFF


@dataclass(slots=True, eq=False)
class AddressSpace:
    """``struct address_space`` of one inode: its folios by index (pgoff -> pfn)."""

    ino: int
    s_dev: int
    folios: dict[int, int] = field(default_factory=dict)


class Filemap:
    """Page frames for cached folios, and the filemap events."""

    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        self.next_pfn = PFN_BASE
        self.free_pfns: list[int] = []

    def _alloc_pfn(self) -> int:
        if self.free_pfns:
            return self.free_pfns.pop()
        pfn = self.next_pfn
        self.next_pfn = pfn + 1 if pfn < PFN_END else PFN_BASE
        return pfn

    def add_folio(self, mapping: AddressSpace, index: int) -> int:
        """filemap_add_folio() of a new folio at ``index``: its pfn."""
        pfn = mapping.folios.get(index)
        if pfn is not None:
            return pfn
        pfn = self._alloc_pfn()
        mapping.folios[index] = pfn
        wl = self.wl
        wl.sites.call(("filemap_add_folio", "__filemap_add_folio"))
        wl.emit("mm_filemap_add_to_page_cache", pfn, mapping.ino, index, mapping.s_dev, 0)
        return pfn

    def truncate(self, mapping: AddressSpace, start: int = 0) -> None:
        """truncate_inode_pages_range(mapping, start, end): every folio from index
        ``start`` on is removed, in index order (its frame freed)."""
        if not mapping.folios:
            return
        wl = self.wl
        for index in sorted(i for i in mapping.folios if i >= start):
            pfn = mapping.folios.pop(index)
            wl.sites.call(("filemap_remove_folio", "__filemap_remove_folio"))
            wl.emit_ctx(D, 1, "mm_filemap_delete_from_page_cache", pfn, mapping.ino, index,
                        mapping.s_dev, 0)
            self.free_pfns.append(pfn)
