"""The VMA operations of mm/vma.c, mm/mmap.c and mm/mprotect.c the traced syscalls run:
mapping a range (get_unmapped_area, mmap_region: a merge with a neighbour or a new VMA,
what it overlaps unmapped first), unmapping one (splits at its ends, zap, page tables,
the VMAs freed after a grace period), changing its protection (splits, merges, a TLB
flush for the mapped pages) and moving the heap's end.

Each change of the VMA list is stored into the mm's maple tree with the range and the
vm_area_struct 6.12 stores (one write per new or grown VMA, a NULL store over an
unmapped range).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...lib import PAGE_SIZE
from .memory import Gather
from .mm_types import (
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_SHARED,
    PAGE_SHIFT,
    PMD_SIZE,
    VM_ACCOUNT,
    VM_DATA_DEFAULT,
    VM_EXEC,
    VM_READ,
    VM_SOFTDIRTY,
    VM_WRITE,
    MappedFile,
    MmStruct,
    Vma,
)

if TYPE_CHECKING:
    from . import Mm

VM_UNMAPPED_AREA_TOPDOWN = 1


class VmaOps:
    def __init__(self, fam: Mm) -> None:
        self.fam = fam
        self.wl = fam.wl
        self.path = fam.path

    # ------------------------------------------------------------------ objects
    def new(self, mm: MmStruct, start: int, end: int, flags: int, pgoff: int,
            file: MappedFile | None, name: str = "", caller: str = "vm_area_alloc") -> Vma:
        """vm_area_alloc() (or vm_area_dup()): the vm_area_struct and its vma_lock."""
        slab = self.wl.slab
        path = self.path
        path.enter(caller, mm.addr)
        addr = slab.cache_alloc("vm_area_struct", caller)
        lock = slab.cache_alloc("vma_lock", caller)
        path.leave(caller)
        mm.mapped += 1
        vma = Vma(start, end, flags, pgoff, file, addr, lock, name, born=mm.mapped)
        vma.budget = self.fam.access.budget(vma)
        return vma

    def free(self, vma: Vma, rcu: bool) -> None:
        """vm_area_free(): directly (exit) or after a grace period (the VMA may still be
        found by a lockless fault)."""
        if rcu:
            cpu = self.wl.k.sched.cpu
            self.wl.call_rcu(cpu, lambda: self._free_now(vma, "vm_area_free_rcu_cb"))
        else:
            self._free_now(vma, "__vm_area_free")

    def _free_now(self, vma: Vma, fn: str) -> None:
        path = self.path
        slab = self.wl.slab
        path.begin(None)
        path.enter(fn, vma.addr)
        slab.cache_free("vma_lock", fn, vma.lock)
        slab.cache_free("vm_area_struct", fn, vma.addr)
        path.leave(fn)
        path.end()

    def store(self, mm: MmStruct, start: int, end: int, entry: int, fn: str = "mas_store_prealloc") -> None:
        mm.tree.store(start, end - 1, entry, mm.boundaries(), fn)

    def split(self, mm: MmStruct, vma: Vma, addr: int) -> Vma:
        """__split_vma(): ``vma`` ends at ``addr``, a copy takes [addr, end)."""
        path = self.path
        path.enter("__split_vma", 0, vma.addr, addr, 0)
        new = self.new(mm, addr, vma.end, vma.flags, vma.pgoff + ((addr - vma.start) >> PAGE_SHIFT),
                       vma.file, vma.name, "vm_area_dup")
        new.anon_vma = vma.anon_vma
        if vma.anon_vma:
            path.call("anon_vma_clone")
            self.wl.slab.cache_alloc("anon_vma_chain", "anon_vma_clone")
        lo = addr >> PAGE_SHIFT
        for vpn in [v for v in vma.pages if v >= lo]:
            new.pages[vpn] = vma.pages.pop(vpn)
        new.anon = {v for v in vma.anon if v >= lo}
        vma.anon -= new.anon
        new.ro = {v for v in vma.ro if v >= lo}
        vma.ro -= new.ro
        new.budget = vma.budget // 2
        vma.end = addr
        mm.insert(new)
        path.call(("vma_prepare",))
        self.store(mm, new.start, new.end, new.addr)
        path.call("vma_complete")
        path.leave("__split_vma")
        return new

    # ------------------------------------------------------------------ mmap
    def get_unmapped_area(self, mm: MmStruct, hint: int, length: int, pgoff: int, flags: int,
                          file: MappedFile | None, result: int) -> None:
        """__get_unmapped_area() → arch_get_unmapped_area_topdown(): a MAP_FIXED or a
        free hint is taken as it is; else vm_unmapped_area() searched (top down below
        mmap_base) and found ``result`` (what the syscall returned)."""
        path = self.path
        wl = self.wl
        path.enter("__get_unmapped_area", 0, hint, length, pgoff, flags, 0)
        fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)
        thp = file is None and not hint and not flags & MAP_SHARED and length % PMD_SIZE == 0
        if not fixed:
            path.enter("thp_get_unmapped_area" if thp else "mm_get_unmapped_area_vmflags", 0, hint, length, pgoff,
                       flags, 0)
            path.enter("arch_get_unmapped_area_topdown", 0, hint, length, pgoff, flags, 0)
            if hint:
                path.enter("find_vma", mm.addr, hint)
                mm.tree.read("mt_find", hint)
                path.leave("find_vma")
            if not hint or result != hint:
                path.enter("vm_unmapped_area", 0)
                if wl.tp("vm_unmapped_area"):
                    wl.emit("vm_unmapped_area", result, mm.total_vm, VM_UNMAPPED_AREA_TOPDOWN,
                            length + (PMD_SIZE if thp else 0), PAGE_SIZE, mm.mmap_base, 0,
                            (pgoff << PAGE_SHIFT) & ((1 << 64) - 1))
                path.leave("vm_unmapped_area")
            path.leave("arch_get_unmapped_area_topdown")
            path.leave("thp_get_unmapped_area" if thp else "mm_get_unmapped_area_vmflags")
        path.leave("__get_unmapped_area")

    def mmap_region(self, mm: MmStruct, addr: int, length: int, vm_flags: int, pgoff: int,
                    file: MappedFile | None, curr: bool, name: str = "") -> Vma:
        """mmap_region(): what [addr, addr+length) overlaps is unmapped, then the range
        joins a compatible neighbour (vma_merge_new_range()) or becomes a new VMA."""
        path = self.path
        end = addr + length
        path.enter("mmap_region", 0, addr, length, vm_flags, pgoff, 0)
        if mm.overlapping(addr, end):
            self._unmap(mm, addr, end, curr, rcu=True, clear=False)
        path.call("may_expand_vm")
        probe = Vma(addr, end, vm_flags, pgoff, file, 0, 0, name)
        vma = self._merge(mm, probe)
        if vma is None:
            vma = self.new(mm, addr, end, vm_flags, pgoff, file, name)
            mm.insert(vma)
            self.store(mm, addr, end, vma.addr)
            if file is not None:
                path.call("vma_link_file")
        path.call("perf_event_mmap")
        path.call("vm_stat_account")
        path.call("vma_set_page_prot")
        vma.flags |= VM_SOFTDIRTY
        path.leave("mmap_region")
        return vma

    def _merge(self, mm: MmStruct, probe: Vma) -> Vma | None:
        """vma_merge_new_range(): the new range extends the VMA before it (and absorbs
        the one after it) when they are compatible: one store of the grown range."""
        i = mm.overlapping(probe.start - 1, probe.start)
        prev = i[0] if i and i[0].end == probe.start else None
        after = mm.overlapping(probe.end, probe.end + 1)
        nxt = after[0] if after and after[0].start == probe.end else None
        path = self.path
        path.enter("vma_merge_new_range", 0)
        merged: Vma | None = None
        if prev is not None and prev.mergeable_with(probe):
            merged = prev
            path.enter("vma_expand", 0)
            prev.end = probe.end
            if nxt is not None and probe.mergeable_with(nxt) and (not prev.anon_vma or not nxt.anon_vma
                                                                  or prev.anon_vma == nxt.anon_vma):
                self._absorb(mm, prev, nxt)
            path.call("commit_merge")
            self.store(mm, prev.start, prev.end, prev.addr)
            path.leave("vma_expand")
        elif nxt is not None and probe.mergeable_with(nxt):
            merged = nxt
            nxt.start = probe.start
            nxt.pgoff = probe.pgoff
            mm.resort()
            path.call("commit_merge")
            self.store(mm, nxt.start, nxt.end, nxt.addr)
        path.leave("vma_merge_new_range")
        if merged is not None:
            merged.budget += self.fam.access.budget(probe)
            mm.mapped += 1
            merged.born = mm.mapped
        return merged

    def _absorb(self, mm: MmStruct, vma: Vma, nxt: Vma) -> None:
        vma.end = nxt.end
        vma.pages.update(nxt.pages)
        vma.anon |= nxt.anon
        vma.ro |= nxt.ro
        vma.anon_vma = vma.anon_vma or nxt.anon_vma
        mm.remove(nxt)
        self.free(nxt, rcu=True)

    # ------------------------------------------------------------------ munmap
    def unmap(self, mm: MmStruct, start: int, end: int, curr: bool, downgrade: bool) -> None:
        """do_vmi_align_munmap(): split, detach, then (mmap_lock downgraded to read when
        the caller allows it) zap, free the page tables, flush, free the VMAs."""
        if not mm.overlapping(start, end):
            return
        path = self.path
        path.enter("do_vmi_align_munmap", 0, 0, 0, start, end, 0)
        self._unmap(mm, start, end, curr, rcu=True, clear=True, downgrade=downgrade)
        path.leave("do_vmi_align_munmap")

    def _unmap(self, mm: MmStruct, start: int, end: int, curr: bool, rcu: bool, clear: bool,
               downgrade: bool = False) -> None:
        fam = self.fam
        path = self.path
        path.enter("vms_gather_munmap_vmas", 0, 0)
        for v in list(mm.overlapping(start, end)):
            if v.start < start:
                self.split(mm, v, start)
        for v in list(mm.overlapping(start, end)):
            if v.end > end:
                self.split(mm, v, end)
        gone = mm.overlapping(start, end)
        path.leave("vms_gather_munmap_vmas")
        for v in gone:
            mm.remove(v)
        if clear:
            self.store(mm, start, end, 0, fn="")
        path.enter("vms_complete_munmap_vmas", 0, 0)
        if downgrade:
            fam.lock.downgrade(mm)
        tlb = Gather(mm)
        path.call("tlb_gather_mmu")
        path.enter("unmap_vmas", 0, 0, 0, start, end, end, 0)
        for v in gone:
            fam.memory.zap(tlb, v, v.start, v.end, curr)
        path.leave("unmap_vmas")
        path.enter("free_pgtables", 0, 0, 0, 0, 0, 0)
        for v in gone:
            path.call("unlink_anon_vmas" if v.anon_vma else "unlink_file_vma")
        fam.memory.free_pgtables(tlb, start, end)
        path.leave("free_pgtables")
        fam.memory.tlb_finish(tlb)
        for v in gone:
            path.call("remove_vma")
            self.free(v, rcu)
        path.leave("vms_complete_munmap_vmas")

    # ------------------------------------------------------------------ mprotect
    def mprotect(self, mm: MmStruct, start: int, end: int, prot: int, curr: bool) -> None:
        """do_mprotect_pkey(): each VMA in the range gets the new protection
        (mprotect_fixup(): split at the range's ends or merged with a neighbour now
        alike, change_protection() and a flush for the mapped pages)."""
        path = self.path
        for v in list(mm.overlapping(start, end)):
            newflags = (v.flags & ~(VM_READ | VM_WRITE | VM_EXEC)) | (prot & (VM_READ | VM_WRITE | VM_EXEC))
            path.enter("mprotect_fixup", 0, 0, v.addr, 0, max(start, v.start), min(end, v.end), newflags)
            if newflags == v.flags:
                path.leave("mprotect_fixup")
                continue
            path.enter("vma_modify_flags", 0, 0, v.addr, start, end, newflags)
            path.enter("vma_modify", 0)
            if v.start < start:
                v = self.split(mm, v, start)
            if v.end > end:
                self.split(mm, v, end)
            path.leave("vma_modify")
            path.leave("vma_modify_flags")
            lost = v.flags & ~newflags & (VM_WRITE | VM_EXEC | VM_READ)
            v.flags = newflags
            if not newflags & VM_WRITE:
                v.ro |= set(v.pages)
            path.enter("change_protection", 0, v.addr, v.start, v.end, 0)
            if v.pages and lost:
                self.fam.tlb.flush_range(mm, v.start, v.end)
            path.leave("change_protection")
            self._merge_neighbours(mm, v)
            path.leave("mprotect_fixup")

    def _merge_neighbours(self, mm: MmStruct, v: Vma) -> None:
        """vma_modify()'s merge: a VMA now alike its neighbour joins it."""
        i = mm.index(v)
        if i > 0 and mm.vmas[i - 1].mergeable_with(v):
            prev = mm.vmas[i - 1]
            self._absorb(mm, prev, v)
            self.store(mm, prev.start, prev.end, prev.addr)
            v = prev
            i -= 1
        if i + 1 < len(mm.vmas) and v.mergeable_with(mm.vmas[i + 1]):
            self._absorb(mm, v, mm.vmas[i + 1])
            self.store(mm, v.start, v.end, v.addr)

    # ------------------------------------------------------------------ brk
    def brk(self, mm: MmStruct, newbrk: int, curr: bool) -> None:
        """__do_sys_brk() past the checks: the heap shrinks (do_vmi_align_munmap()) or
        grows (do_brk_flags(): the heap VMA expanded, or a new one)."""
        old_end = (mm.brk + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
        new_end = (newbrk + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
        path = self.path
        if new_end < old_end:
            self.unmap(mm, new_end, old_end, curr, downgrade=True)
        elif new_end > old_end:
            path.call("check_brk_limits")
            path.enter("do_brk_flags", 0, 0, old_end, new_end - old_end, 0)
            path.call("may_expand_vm")
            from_vma = mm.find(old_end - 1) if old_end > mm.start_brk else None
            if from_vma is not None and from_vma.end == old_end and from_vma.anonymous:
                from_vma.end = new_end
                from_vma.budget += min((new_end - old_end) >> PAGE_SHIFT, 4)
                mm.mapped += 1
                from_vma.born = mm.mapped
                path.enter("vma_merge_new_range", 0)
                path.call("commit_merge")
                self.store(mm, from_vma.start, new_end, from_vma.addr)
                path.leave("vma_merge_new_range")
            else:
                vma = self.new(mm, old_end, new_end, VM_DATA_DEFAULT | VM_ACCOUNT, old_end >> PAGE_SHIFT,
                               None, "[heap]")
                mm.insert(vma)
                self.store(mm, old_end, new_end, vma.addr, fn="")
            path.call("perf_event_mmap")
            path.leave("do_brk_flags")
        mm.brk = newbrk

    def brk_map(self, mm: MmStruct, start: int, end: int, name: str = "") -> None:
        """do_brk_flags() of exec's bss (vm_brk_flags()) or of a heap the image has."""
        path = self.path
        path.enter("do_brk_flags", 0, 0, start, end - start, 0)
        prev = mm.find(start - 1)
        if prev is not None and prev.end == start and prev.anonymous and prev.name == name:
            prev.end = end
            self.store(mm, prev.start, end, prev.addr)
        else:
            vma = self.new(mm, start, end, VM_DATA_DEFAULT | VM_ACCOUNT, start >> PAGE_SHIFT, None, name)
            mm.insert(vma)
            self.store(mm, start, end, vma.addr, fn="")
        path.leave("do_brk_flags")

    # ------------------------------------------------------------------ madvise
    def dontneed(self, mm: MmStruct, start: int, end: int, curr: bool) -> None:
        """madvise(MADV_DONTNEED) → zap_page_range_single() of each VMA's part."""
        path = self.path
        for v in mm.overlapping(start, end):
            lo, hi = max(start, v.start), min(end, v.end)
            path.enter("zap_page_range_single", v.addr, lo, hi - lo, 0)
            tlb = Gather(mm)
            path.call("tlb_gather_mmu")
            self.fam.memory.zap(tlb, v, lo, hi, curr)
            self.fam.memory.tlb_finish(tlb)
            path.leave("zap_page_range_single")

