"""An mm's life (kernel/fork.c, kernel/exit.c): mm_alloc() and mm_init() (the mm_struct,
its PGD, the per-CPU mm_cid and RSS counters), dup_mm() at fork (every VMA duplicated,
the pages shared copy-on-write, the parent's TLB flushed), mmput() → exit_mmap() when the
last user leaves (at exit or at exec), and __mmdrop() when the last reference goes (the
lazy-TLB reference of a CPU that last ran it, dropped at its next switch to another mm).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...lib import MASK64
from ..defs import GFP_KERNEL
from .maple_tree import MapleTree
from .memory import Gather
from .mm_types import ULONG_MAX, MmStruct
from .page_alloc import GFP_PGTABLE_USER
from .percpu import GFP_KERNEL_ACCOUNT

if TYPE_CHECKING:
    from . import Mm

PGD_ALLOCATION_ORDER = 1          # PTI: a kernel and a user PGD
MM_MT_OFF = 64                    # offsetof(struct mm_struct, mm_mt)
NR_MM_COUNTERS = 4
MM_CID_SIZE = 16                  # sizeof(struct mm_cid)
RSS_SIZE = NR_MM_COUNTERS * 4     # the per-CPU s32 of each RSS counter


class MmLife:
    def __init__(self, fam: Mm) -> None:
        self.fam = fam
        self.wl = fam.wl
        self.path = fam.path

    # ------------------------------------------------------------------ birth
    def mm_alloc(self, memcg: str, caller: str = "mm_alloc") -> MmStruct:
        """mm_alloc() (or dup_mm()'s allocate_mm()) and mm_init()."""
        wl = self.wl
        path = self.path
        fam = self.fam
        addr = wl.slab.cache_alloc("mm_struct", caller)
        path.enter("mm_init", addr, wl.k.sched.current.pid, 0)
        path.enter("pgd_alloc", addr)
        pgd = fam.pages.alloc(GFP_PGTABLE_USER, PGD_ALLOCATION_ORDER)
        path.leave("pgd_alloc")
        cid = fam.percpu.alloc("mm_init", MM_CID_SIZE, 8, GFP_KERNEL)
        rss = fam.percpu.alloc("__percpu_counter_init_many", RSS_SIZE, 4, GFP_KERNEL_ACCOUNT)
        path.leave("mm_init")
        return MmStruct(addr, pgd, rss, cid, memcg, MapleTree(wl, addr + MM_MT_OFF))

    def dup_mm(self, old: MmStruct) -> MmStruct:
        """dup_mm() → dup_mmap(): both mms write-locked, the tree duplicated, each VMA
        copied (its anon_vma forked, its pages shared), the parent's TLB flushed."""
        fam = self.fam
        path = self.path
        slab = self.wl.slab
        mm = self.mm_alloc(old.memcg, "dup_mm")
        mm.mmap_base, mm.start_brk, mm.brk, mm.start_stack = old.mmap_base, old.start_brk, old.brk, old.start_stack
        fam.lock.lock(old, True)
        path.call("uprobe_dup_mmap", {"uprobe_dup_mmap": (old.addr, mm.addr)})
        fam.lock.lock(mm, True)
        mm.tree.dup(old.tree)
        for v in old.vmas:
            new = fam.vma.new(mm, v.start, v.end, v.flags, v.pgoff, v.file, v.name, "vm_area_dup")
            new.budget = v.budget
            if v.anon_vma:
                path.enter("anon_vma_fork", new.addr, v.addr)
                path.call("anon_vma_clone")
                slab.cache_alloc("anon_vma_chain", "anon_vma_clone")
                new.anon_vma = slab.cache_alloc("anon_vma", "anon_vma_fork")
                slab.cache_alloc("anon_vma_chain", "anon_vma_fork")
                path.leave("anon_vma_fork")
            mm.insert(new)
            mm.tree.bulk_store(new.start, new.end - 1, new.addr)
            fam.memory.copy_page_range(mm, new, old, v)
        fam.lock.unlock(mm, True)
        fam.tlb.flush_range(old, 0, MASK64, True)
        fam.lock.unlock(old, True)
        return mm

    # ------------------------------------------------------------------ death
    def mmput(self, mm: MmStruct) -> None:
        """mmput(): the last user gone, __mmput() → exit_mmap(), then mmdrop()."""
        mm.users -= 1
        if mm.users > 0:
            return
        path = self.path
        path.enter("mmput", mm.addr)
        self.exit_mmap(mm)
        self.mmdrop(mm)
        path.leave("mmput")

    def exit_mmap(self, mm: MmStruct) -> None:
        """exit_mmap(): every page zapped (a full-mm gather), the page tables freed, each
        VMA removed, trace_exit_mmap, the tree destroyed."""
        fam = self.fam
        path = self.path
        wl = self.wl
        path.enter("exit_mmap", mm.addr)
        fam.lock.lock(mm, False)
        if mm.vmas:
            fam.lru.drain()
            tlb = Gather(mm, fullmm=True)
            path.call("tlb_gather_mmu_fullmm")
            path.enter("unmap_vmas", 0, 0, mm.vmas[0].addr, 0, ULONG_MAX, ULONG_MAX, 0)
            for v in mm.vmas:
                fam.memory.zap(tlb, v, v.start, v.end, False)
            path.leave("unmap_vmas")
            fam.lock.unlock(mm, False)
            fam.lock.lock(mm, True)
            path.enter("free_pgtables", 0, 0, mm.vmas[0].addr, 0, 0, 1)
            for v in mm.vmas:
                path.call("unlink_anon_vmas" if v.anon_vma else "unlink_file_vma")
            fam.memory.free_pgtables(tlb, 0, 1 << 48)
            path.leave("free_pgtables")
            fam.memory.tlb_finish(tlb)
            for v in list(mm.vmas):
                path.call("remove_vma")
                fam.vma.free(v, rcu=False)
            mm.vmas.clear()
            mm.starts.clear()
            if wl.tp("exit_mmap"):
                wl.emit("exit_mmap", mm.addr, mm.tree.addr)
        else:
            fam.lock.unlock(mm, False)
            fam.lock.lock(mm, True)
        mm.tree.destroy()
        mm.dead = True
        fam.lock.unlock(mm, True)
        path.leave("exit_mmap")

    def mmdrop(self, mm: MmStruct) -> None:
        """mmdrop(): the last reference gone, __mmdrop() frees the mm."""
        mm.count -= 1
        if mm.count > 0:
            return
        fam = self.fam
        path = self.path
        path.enter("__mmdrop", mm.addr)
        fam.tlb.forget(mm)
        path.enter("pgd_free", mm.addr, 0)
        fam.pages.free(mm.pgd, PGD_ALLOCATION_ORDER)
        path.leave("pgd_free")
        fam.percpu.free(mm.cid_pcpu)
        fam.percpu.free(mm.rss_pcpu)
        self.wl.slab.cache_free("mm_struct", "__mmdrop", mm.addr)
        path.leave("__mmdrop")
