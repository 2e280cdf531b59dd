"""mm/memory.c and what it calls: the page-fault paths below handle_mm_fault(), the
zapping of a range (munmap, exit, MADV_DONTNEED) with its mmu_gather, the copy of page
tables at fork, and the page tables and RSS counters they change.

Which fault path runs follows from the VMA and the page (do_anonymous_page() for a
write to anonymous memory, do_read_fault() with fault-around for a read or an
instruction fetch of a file page, do_cow_fault() for a write to a private file page,
do_wp_page() for a write to a page mapped read-only); the pages, page tables and
counters it touches are the model's, so a page allocated in a fault is the one zapped
and freed at munmap or exit, and rss_stat's sizes add up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ...lib import MASK64
from ...trace_events_fmt import hashed_ptr
from ..defs import GFP_HIGHUSER_MOVABLE, GFP_ZERO
from ..syscalls import PT_REGS_OFF, task_stack
from .mm_types import (
    MM_ANONPAGES,
    MM_FILEPAGES,
    PAGE_SHIFT,
    PMD_SHIFT,
    PTE_SHIFT,
    PUD_SHIFT,
    VM_SHARED,
    VM_WRITE,
    MmStruct,
    Vma,
)
from .page_alloc import GFP_PGTABLE_USER, ZERO_PFN
from .swap import folio_of

if TYPE_CHECKING:
    from . import Mm

GFP_COMP = 0x40000
GFP_NOWAIT = 0x800 | 0x2000          # __GFP_KSWAPD_RECLAIM | __GFP_NOWARN
GFP_ANON = GFP_HIGHUSER_MOVABLE | GFP_ZERO | GFP_COMP
GFP_COW = GFP_HIGHUSER_MOVABLE | GFP_COMP
GFP_CACHE = GFP_HIGHUSER_MOVABLE | 0x10000 | 0x2000   # readahead: | __GFP_NORETRY | __GFP_NOWARN

# x86 page-fault error code bits
X86_PF_PROT, X86_PF_WRITE, X86_PF_USER, X86_PF_INSTR = 0x1, 0x2, 0x4, 0x10
# enum fault_flag
FAULT_FLAG_WRITE, FAULT_FLAG_USER, FAULT_FLAG_INSTRUCTION = 0x1, 0x40, 0x100
FAULT_FLAG_REMOTE, FAULT_FLAG_VMA_LOCK = 0x80, 0x1000
FAULT_FLAG_DEFAULT = 0x4 | 0x10 | 0x200       # ALLOW_RETRY | KILLABLE | INTERRUPTIBLE
FAULT_AROUND_PAGES = 16
PTRS_PER_PTE = 512
MMU_GATHER_BUNDLE = 8                # the pages an mmu_gather holds on the stack
MAX_GATHER_BATCH = (4096 - 16) // 8  # a batch page's pointers
VMF_OFF = 0x3D40                     # struct vm_fault on the faulting task's stack
EXC_REGS_OFF = 0x3C00                # an exception's pt_regs taken in kernel mode
# the tables above a PTE, outermost first: (shift, the function that allocates one)
UPPER_TABLES = ((PUD_SHIFT, "__pud_alloc"), (PMD_SHIFT, "__pmd_alloc"))


@dataclass(slots=True, eq=False)
class Gather:
    """A struct mmu_gather: what a zap cleared, to flush and free at tlb_finish_mmu()."""

    mm: MmStruct
    fullmm: bool = False
    start: int = MASK64
    end: int = 0
    pages: list[int] = field(default_factory=list)     # anon folios to free
    tables: list[int] = field(default_factory=list)    # page-table pages to free (RCU)
    batches: list[int] = field(default_factory=list)   # batch pages allocated
    freed_tables: bool = False


def mm_id(mm: MmStruct) -> int:
    """mm_ptr_to_hash(): the 32-bit hash %p prints for the mm."""
    return int(hashed_ptr(mm.addr), 16)


class Memory:
    def __init__(self, fam: Mm) -> None:
        self.fam = fam
        self.wl = fam.wl
        self.path = fam.path
        self.refs: dict[int, int] = {}        # anon frame -> the PTEs mapping it
        self.cache: dict[tuple[int, int], int] = {}     # (inode, index) -> page-cache frame
        self.cache_pfn = 0x1A0000             # frames cached before tracing started

    # ------------------------------------------------------------------ counters
    def rss(self, mm: MmStruct, member: int, delta: int, curr: bool) -> None:
        """add_mm_counter(): the counter moves, rss_stat shows its sum."""
        if not delta:
            return
        mm.rss[member] += delta
        wl = self.wl
        if wl.tp("rss_stat"):
            wl.emit("rss_stat", mm_id(mm), int(curr), member, max(0, mm.rss[member]) << PAGE_SHIFT)

    # ------------------------------------------------------------------ page tables
    def tables(self, mm: MmStruct, addr: int) -> None:
        """The PUD, PMD and PTE tables covering ``addr``, allocated where missing
        (__pud_alloc(), __pmd_alloc(), __pte_alloc() → pte_alloc_one())."""
        path = self.path
        pages = self.fam.pages
        for shift, fn in UPPER_TABLES:
            key = (shift, addr >> shift)
            if key not in mm.tables:
                path.enter(fn, mm.addr, 0, addr)
                mm.tables[key] = pages.alloc(GFP_PGTABLE_USER)
                path.leave(fn)
        key = (PTE_SHIFT, addr >> PTE_SHIFT)
        if key not in mm.tables:
            path.enter("__pte_alloc", mm.addr, 0)
            path.enter("pte_alloc_one", mm.addr)
            mm.tables[key] = pages.alloc(GFP_PGTABLE_USER)
            path.leave("pte_alloc_one")
            path.leave("__pte_alloc")

    def _vmf(self) -> int:
        return task_stack(self.wl.k.sched.current.pid) + VMF_OFF

    # ------------------------------------------------------------------ faults
    def handle_mm_fault(self, mm: MmStruct, vma: Vma, addr: int, write: bool, instr: bool,
                        user: bool, curr: bool, major: bool = False, gup: bool = False) -> None:
        """handle_mm_fault() → __handle_mm_fault() and the fault path the page needs."""
        path = self.path
        flags = FAULT_FLAG_DEFAULT | (FAULT_FLAG_WRITE if write else 0)
        if user:
            flags |= FAULT_FLAG_USER | FAULT_FLAG_VMA_LOCK
        if instr:
            flags |= FAULT_FLAG_INSTRUCTION
        if gup:
            flags |= FAULT_FLAG_REMOTE
        pid = self.wl.k.sched.current.pid
        regs = 0 if gup else task_stack(pid) + (PT_REGS_OFF if user else EXC_REGS_OFF)
        vpn = addr >> PAGE_SHIFT
        path.enter("handle_mm_fault", vma.addr, addr, flags, regs)
        path.enter("__handle_mm_fault", vma.addr, addr, flags)
        self.tables(mm, addr)
        vmf = self._vmf()
        if vpn in vma.pages:
            if vpn in vma.ro and write:
                self.do_wp_page(mm, vma, addr, curr, user)
        elif vma.file is None and not vma.special:
            self.do_anonymous_page(mm, vma, addr, curr, user, vmf)
        else:
            path.enter("do_fault", vmf)
            if write and not vma.flags & VM_SHARED:
                self.do_cow_fault(mm, vma, addr, curr, user, vmf)
            else:
                self.do_read_fault(mm, vma, addr, curr, vmf, major)
            path.leave("do_fault")
        path.leave("__handle_mm_fault")
        path.leave("handle_mm_fault")

    def anon_prepare(self, mm: MmStruct, vma: Vma, vma_locked: bool) -> None:
        """vmf_anon_prepare(): a VMA without an anon_vma gets one (__anon_vma_prepare());
        under the per-VMA lock that needs mmap_lock, taken with a trylock."""
        if vma.anon_vma:
            return
        fam = self.fam
        if vma_locked:
            fam.lock.lock(mm, False)
        self.path.enter("__anon_vma_prepare", vma.addr)
        slab = self.wl.slab
        slab.cache_alloc("anon_vma_chain", "__anon_vma_prepare")
        vma.anon_vma = slab.cache_alloc("anon_vma", "__anon_vma_prepare")
        self.path.leave("__anon_vma_prepare")
        if vma_locked:
            fam.lock.unlock(mm, False)

    def alloc_folio(self, vma: Vma, addr: int, gfp: int) -> int:
        """vma_alloc_folio_noprof() → alloc_pages_mpol_noprof() → __alloc_pages_noprof(),
        then the memcg charge."""
        path = self.path
        path.enter("vma_alloc_folio_noprof", gfp & ~GFP_COMP, 0, vma.addr, addr)
        path.enter("alloc_pages_mpol_noprof", gfp, 0, 0, 0, 0)
        pfn = self.fam.pages.alloc(gfp)
        path.leave("alloc_pages_mpol_noprof")
        path.leave("vma_alloc_folio_noprof")
        path.call("__mem_cgroup_charge", {"__mem_cgroup_charge": (folio_of(pfn), 0, gfp)})
        return pfn

    def _map_anon(self, mm: MmStruct, vma: Vma, vpn: int, pfn: int, curr: bool, counted: bool = True) -> None:
        """set_pte_at() of a new exclusive anon folio: rmap, LRU, the counter."""
        if counted:
            self.rss(mm, MM_ANONPAGES, 1, curr)
        self.path.call("folio_add_new_anon_rmap", {"folio_add_new_anon_rmap": (folio_of(pfn), vma.addr,
                                                                                vpn << PAGE_SHIFT, 1)})
        self.fam.lru.add(pfn)
        vma.pages[vpn] = pfn
        vma.anon.add(vpn)
        vma.ro.discard(vpn)
        self.refs[pfn] = 1

    def do_anonymous_page(self, mm: MmStruct, vma: Vma, addr: int, curr: bool, user: bool, vmf: int) -> None:
        path = self.path
        path.enter("do_anonymous_page", vmf)
        self.anon_prepare(mm, vma, user)
        pfn = self.alloc_folio(vma, addr, GFP_ANON)
        self._map_anon(mm, vma, addr >> PAGE_SHIFT, pfn, curr)
        path.leave("do_anonymous_page")

    def page_cache(self, vma: Vma, pgoff: int, read: bool = False) -> int | None:
        """The page-cache frame of the file page ``pgoff`` (cached since before tracing
        unless ``read``: then the page is read in now: a new frame)."""
        assert vma.file is not None
        key = (vma.file.ino, pgoff)
        pfn = self.cache.get(key)
        if pfn is None and not read:
            pfn = self.cache[key] = self.cache_pfn
            self.cache_pfn += 1
        return pfn

    def _file_event(self, name: str, vma: Vma, *index: int) -> None:
        f = vma.file
        if f is not None and self.wl.tp(name):
            self.wl.emit(name, f.ino, f.dev, *index)

    def do_read_fault(self, mm: MmStruct, vma: Vma, addr: int, curr: bool, vmf: int, major: bool) -> None:
        """do_read_fault(): do_fault_around() → filemap_map_pages() over up to 16 pages
        around the fault; a page not in the page cache (a major fault) is read in by
        __do_fault() → filemap_fault() and mapped by finish_fault()."""
        path = self.path
        vpn = addr >> PAGE_SHIFT
        vpn0 = vma.start >> PAGE_SHIFT
        if vma.file is None:
            # a special mapping (vdso, vvar): its ->fault
            path.call("__do_fault", {"__do_fault": (vmf,)})
            vma.pages[vpn] = ZERO_PFN
            return
        pgoff = vma.pgoff + (vpn - vpn0)
        pte_off = vpn & (PTRS_PER_PTE - 1)
        vma_off = vpn - vpn0
        from_pte = max(pte_off & ~(FAULT_AROUND_PAGES - 1), pte_off - min(pte_off, vma_off))
        to_pte = min(from_pte + FAULT_AROUND_PAGES, PTRS_PER_PTE, pte_off + vma.npages - vma_off) - 1
        start = pgoff - (pte_off - from_pte)
        end = start + (to_pte - from_pte)
        mapped = 0
        path.enter("filemap_map_pages", vmf, start, end)
        first = vpn - (pgoff - start)
        for i in range(end - start + 1):
            v = first + i
            if v in vma.pages or (major and v == vpn):
                continue
            pfn = self.page_cache(vma, start + i)
            assert pfn is not None
            path.call("next_uptodate_folio")
            path.call(("set_pte_range", "folio_add_file_rmap_ptes"))
            vma.pages[v] = pfn
            if vma.flags & VM_WRITE and not vma.flags & VM_SHARED:
                vma.ro.add(v)           # a write copies it (COW)
            mapped += 1
        self.rss(mm, MM_FILEPAGES, mapped, curr)
        self._file_event("mm_filemap_map_pages", vma, start, end)
        path.leave("filemap_map_pages")
        if vpn in vma.pages:
            return
        # the page is not in the page cache: read it in
        path.enter("__do_fault", vmf)
        path.enter("filemap_fault", vmf)
        self._file_event("mm_filemap_fault", vma, pgoff)
        pfn = self.fam.pages.alloc(GFP_CACHE)
        assert vma.file is not None
        self.cache[(vma.file.ino, pgoff)] = pfn
        if self.wl.tp("mm_filemap_add_to_page_cache"):
            self.wl.emit("mm_filemap_add_to_page_cache", pfn, vma.file.ino, pgoff, vma.file.dev, 0)
        path.leave("filemap_fault")
        path.leave("__do_fault")
        path.enter("finish_fault", vmf)
        path.call(("set_pte_range", "folio_add_file_rmap_ptes"))
        self.rss(mm, MM_FILEPAGES, 1, curr)
        path.leave("finish_fault")
        vma.pages[vpn] = pfn
        if vma.flags & VM_WRITE and not vma.flags & VM_SHARED:
            vma.ro.add(vpn)

    def do_cow_fault(self, mm: MmStruct, vma: Vma, addr: int, curr: bool, user: bool, vmf: int) -> None:
        """do_cow_fault(): a private copy of the file page, mapped writable."""
        path = self.path
        vpn = addr >> PAGE_SHIFT
        self.anon_prepare(mm, vma, user)
        pfn = self.alloc_folio(vma, addr, GFP_COW)
        path.enter("__do_fault", vmf)
        if vma.file is not None:
            path.enter("filemap_fault", vmf)
            pgoff = vma.pgoff + (vpn - (vma.start >> PAGE_SHIFT))
            self.page_cache(vma, pgoff)
            self._file_event("mm_filemap_fault", vma, pgoff)
            path.leave("filemap_fault")
        path.leave("__do_fault")
        path.enter("finish_fault", vmf)
        path.enter("set_pte_range", vmf, folio_of(pfn), 0, 1, addr)
        self._map_anon(mm, vma, vpn, pfn, curr)
        path.leave("set_pte_range")
        path.leave("finish_fault")

    def do_wp_page(self, mm: MmStruct, vma: Vma, addr: int, curr: bool, user: bool) -> None:
        """do_wp_page(): a write to a page mapped read-only: reused when this mapping is
        its only user, else copied (wp_page_copy(): the old PTE cleared and flushed)."""
        path = self.path
        vpn = addr >> PAGE_SHIFT
        old = vma.pages[vpn]
        path.enter("do_wp_page", self._vmf())
        if vpn in vma.anon and self.refs.get(old, 1) <= 1:
            vma.ro.discard(vpn)         # wp_page_reuse()
            path.leave("do_wp_page")
            return
        self.anon_prepare(mm, vma, user)
        zero = old == ZERO_PFN
        pfn = self.alloc_folio(vma, addr, GFP_ANON if zero else GFP_COW)
        if vpn in vma.anon:
            self.refs[old] -= 1         # the other mapping keeps the shared folio
            counted = False
        else:
            if not zero:
                self.rss(mm, MM_FILEPAGES, -1, curr)
            counted = True
        self.fam.tlb.flush_range(mm, addr, addr + 4096)
        self._map_anon(mm, vma, vpn, pfn, curr, counted)
        path.leave("do_wp_page")

    # ------------------------------------------------------------------ zap
    def zap(self, tlb: Gather, vma: Vma, start: int, end: int, curr: bool) -> None:
        """unmap_single_vma() → unmap_page_range(): the PTEs of [start, end) cleared, one
        add_mm_rss_vec() per page table; anon folios gathered for freeing."""
        path = self.path
        mm = tlb.mm
        path.enter("unmap_single_vma", 0, vma.addr, start, end, 0, 0)
        path.enter("unmap_page_range", 0, vma.addr, start, end, 0)
        by_table: dict[int, list[int]] = {}
        lo, hi = start >> PAGE_SHIFT, end >> PAGE_SHIFT
        for vpn in sorted(v for v in vma.pages if lo <= v < hi):
            by_table.setdefault(vpn >> (PTE_SHIFT - PAGE_SHIFT), []).append(vpn)
        for vpns in by_table.values():
            rss = [0, 0]
            for vpn in vpns:
                pfn = vma.pages.pop(vpn)
                vma.ro.discard(vpn)
                if vpn in vma.anon:
                    vma.anon.discard(vpn)
                    rss[MM_ANONPAGES] -= 1
                    n = self.refs.get(pfn, 1) - 1
                    if n <= 0:
                        self.refs.pop(pfn, None)
                        self._gather(tlb, pfn)
                    else:
                        self.refs[pfn] = n
                elif pfn != ZERO_PFN and vma.file is not None:
                    rss[MM_FILEPAGES] -= 1
            tlb.start = min(tlb.start, vpns[0] << PAGE_SHIFT)
            tlb.end = max(tlb.end, (vpns[-1] + 1) << PAGE_SHIFT)
            for member in (MM_FILEPAGES, MM_ANONPAGES):
                self.rss(mm, member, rss[member], curr)
        path.leave("unmap_page_range")
        path.leave("unmap_single_vma")

    def _gather(self, tlb: Gather, pfn: int) -> None:
        """__tlb_remove_folio_pages(): past the on-stack bundle a batch page is taken."""
        n = len(tlb.pages)
        if n >= MMU_GATHER_BUNDLE and (n - MMU_GATHER_BUNDLE) % MAX_GATHER_BATCH == 0:
            tlb.batches.append(self.fam.pages.alloc(GFP_NOWAIT))
        tlb.pages.append(pfn)

    def free_pgtables(self, tlb: Gather, start: int, end: int) -> None:
        """free_pgtables() → free_pgd_range(): the tables no VMA needs any more (all of
        them for a full-mm gather), each handed to tlb_remove_table() (freed after an RCU
        grace period)."""
        mm = tlb.mm
        path = self.path
        path.enter("free_pgd_range", 0, start, end, 0, 0)
        for key in sorted(mm.tables):
            shift, idx = key
            lo, hi = idx << shift, (idx + 1) << shift
            if hi <= start or lo >= end or (not tlb.fullmm and mm.overlapping(lo, hi)):
                continue
            pfn = mm.tables.pop(key)
            path.call("___pte_free_tlb" if shift == PTE_SHIFT else "tlb_remove_table")
            tlb.tables.append(pfn)
            tlb.freed_tables = True
        path.leave("free_pgd_range")

    def release_tables(self, mm: MmStruct, start: int, end: int) -> None:
        """The page tables of [start, end) no VMA uses any more, freed (an mmu_gather of
        their own: relocate_vma_down()'s free_pgd_range())."""
        tlb = Gather(mm)
        self.free_pgtables(tlb, start, end)
        self.tlb_finish(tlb)

    def tlb_finish(self, tlb: Gather) -> None:
        """tlb_finish_mmu(): the flush of what was cleared, the gathered pages freed
        (free_pages_and_swap_cache() drains the LRU batch first), the page tables after
        a grace period, the batch pages."""
        fam = self.fam
        path = self.path
        mm = tlb.mm
        path.enter("tlb_finish_mmu", 0)
        if tlb.end > tlb.start or tlb.freed_tables:
            path.enter("tlb_flush_mmu", 0)
            if tlb.fullmm:
                fam.tlb.flush_range(mm, 0, MASK64, tlb.freed_tables)
            else:
                fam.tlb.flush_range(mm, tlb.start if tlb.end > tlb.start else 0,
                                    tlb.end if tlb.end > tlb.start else MASK64, tlb.freed_tables)
            if tlb.pages:
                path.enter("free_pages_and_swap_cache", 0, len(tlb.pages))
                fam.lru.drain()
                for pfn in tlb.pages:
                    fam.lru.forget(pfn)
                path.enter("folios_put_refs", 0, 0)
                fam.pages.free_batch(tlb.pages)
                path.leave("folios_put_refs")
                path.leave("free_pages_and_swap_cache")
            path.leave("tlb_flush_mmu")
        if tlb.tables:
            tables = list(tlb.tables)
            cpu = self.wl.k.sched.cpu
            self.wl.call_rcu(cpu, lambda: self._free_tables(tables))
        for pfn in tlb.batches:
            fam.pages.free(pfn)
        path.leave("tlb_finish_mmu")

    def _free_tables(self, tables: list[int]) -> None:
        """tlb_remove_table_rcu(): the page tables go back, in the RCU callback."""
        path = self.path
        path.begin(None)
        path.enter("tlb_remove_table_rcu", 0)
        for pfn in tables:
            self.fam.pages.free(pfn)
        path.leave("tlb_remove_table_rcu")
        path.end()

    # ------------------------------------------------------------------ fork
    def copy_page_range(self, dst_mm: MmStruct, dst: Vma, src_mm: MmStruct, src: Vma) -> None:
        """copy_page_range(): the child maps the parent's pages (anon folios shared and
        write-protected in both), per page table one add_mm_rss_vec() in the child."""
        if not src.anon_vma or not src.pages:
            return
        path = self.path
        path.enter("copy_page_range", dst.addr, src.addr)
        cow = bool(src.flags & VM_WRITE) and not src.flags & VM_SHARED
        by_table: dict[int, list[int]] = {}
        for vpn in sorted(src.pages):
            by_table.setdefault(vpn >> (PTE_SHIFT - PAGE_SHIFT), []).append(vpn)
        for vpns in by_table.values():
            self.tables(dst_mm, vpns[0] << PAGE_SHIFT)
            rss = [0, 0]
            for vpn in vpns:
                pfn = src.pages[vpn]
                dst.pages[vpn] = pfn
                if vpn in src.anon:
                    dst.anon.add(vpn)
                    self.refs[pfn] = self.refs.get(pfn, 1) + 1
                    rss[MM_ANONPAGES] += 1
                    if cow:
                        src.ro.add(vpn)
                        dst.ro.add(vpn)
                else:
                    if pfn != ZERO_PFN and src.file is not None:
                        rss[MM_FILEPAGES] += 1
                    if vpn in src.ro:
                        dst.ro.add(vpn)
            for member in (MM_FILEPAGES, MM_ANONPAGES):
                self.rss(dst_mm, member, rss[member], False)
        path.leave("copy_page_range")
