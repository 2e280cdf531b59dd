"""Kernel stacks of new tasks (kernel/fork.c with CONFIG_VMAP_STACK, mm/vmalloc.c): a
fork takes a cached stack of its CPU or vmallocs one (alloc_vmap_area); a dead task's
stack goes back to its CPU's cache, or, the cache being full, is vfree'd after an RCU
grace period (free_vmap_area_noflush, the lazily freed area counted against
lazy_max_pages(); purge_vmap_area_lazy once past it).

Each CPU keeps NR_CACHED_STACKS (2) stacks, full when tracing starts (the machine has run
many tasks since boot), so vmalloc shows only when forks and exits are unbalanced across
the CPUs, as on the real machine.  A vmalloc'd stack's address is the task's kernel stack
(the one its pt_regs live in).  Deviation: vfree() from the RCU callback defers to a
kworker (vfree_atomic()); the model runs the deferred vfree in the callback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..defs import GFP_KERNEL, GFP_ZERO
from ..syscalls import task_stack

if TYPE_CHECKING:
    from .. import Workload
    from .calls import Path
    from .page_alloc import PageAlloc

NR_CACHED_STACKS = 2
THREAD_SIZE = 0x4000
THREAD_ALIGN = THREAD_SIZE
GUARD = 0x1000
VMALLOC_START = 0xFFFFC90000000000
VMALLOC_END = 0xFFFFD0FFFFFFFFFF
LAZY_MAX_PAGES = 32 * 1024 * 1024 // 4096     # per fls(num_online_cpus())
THREADINFO_GFP = GFP_KERNEL | GFP_ZERO


@dataclass(slots=True, eq=False)
class StackArea:
    """A vm_struct of a kernel stack: its address and its pages."""

    va: int
    pages: list[int]
    vm: int             # the struct vm_struct
    pages_array: int    # vm->pages
    vmap_area: int      # its struct vmap_area


class Vmalloc:
    def __init__(self, wl: Workload, path: Path, pages: PageAlloc) -> None:
        self.wl = wl
        self.path = path
        self.pages = pages
        n = wl.k.nr_cpus
        self.cache: list[list[StackArea | None]] = [[None] * NR_CACHED_STACKS for _ in range(n)]
        self.primed = [False] * n
        self.lazy = 0                     # vmap_lazy_nr: pages lazily freed, not purged
        self.lazy_areas: list[int] = []
        self.lazy_max = LAZY_MAX_PAGES * n.bit_length()

    def _prime(self, cpu: int) -> None:
        """The stacks a CPU has cached when tracing starts (from tasks of the past)."""
        if not self.primed[cpu]:
            self.primed[cpu] = True
            for i in range(NR_CACHED_STACKS):
                va = task_stack(0xF000 + cpu * NR_CACHED_STACKS + i)
                self.cache[cpu][i] = StackArea(va, [], 0, 0, 0)

    def alloc_stack(self, pid: int) -> StackArea:
        """alloc_thread_stack_node(): a cached stack of this CPU, else a new vmap area."""
        wl = self.wl
        cpu = wl.k.sched.cpu
        self._prime(cpu)
        slots = self.cache[cpu]
        for i, s in enumerate(slots):
            if s is not None:
                slots[i] = None
                return s
        path = self.path
        slab = wl.slab
        va = task_stack(pid)
        gfp = THREADINFO_GFP
        path.enter("__vmalloc_node_range_noprof", THREAD_SIZE, THREAD_ALIGN, VMALLOC_START, VMALLOC_END,
                   gfp, 0)
        path.enter("__get_vm_area_node", THREAD_SIZE, THREAD_ALIGN, 0, 0x22, VMALLOC_START, VMALLOC_END)
        vm = slab.kmalloc("__get_vm_area_node", 72, gfp)
        path.enter("alloc_vmap_area", THREAD_SIZE + GUARD, THREAD_ALIGN, VMALLOC_START, VMALLOC_END)
        area = slab.cache_alloc("vmap_area", "alloc_vmap_area")
        wl.emit("alloc_vmap_area", va, THREAD_SIZE + GUARD, THREAD_ALIGN, VMALLOC_START, VMALLOC_END, 0)
        path.leave("alloc_vmap_area")
        path.leave("__get_vm_area_node")
        array = slab.kmalloc("__vmalloc_area_node", THREAD_SIZE // 4096 * 8, gfp)
        pages = self.pages.bulk(gfp, THREAD_SIZE // 4096)
        path.leave("__vmalloc_node_range_noprof")
        return StackArea(va, pages, vm, array, area)

    def free_stack(self, area: StackArea, cpu: int) -> None:
        """free_thread_stack() where the task died: into this CPU's cache, else after a
        grace period (thread_stack_free_rcu(): the cache again, else vfree())."""
        if self._to_cache(area, cpu):
            return
        self.wl.call_rcu(cpu, lambda: self._free_rcu(area, cpu))

    def _to_cache(self, area: StackArea, cpu: int) -> bool:
        self._prime(cpu)
        slots = self.cache[cpu]
        for i, s in enumerate(slots):
            if s is None:
                slots[i] = area
                return True
        return False

    def _free_rcu(self, area: StackArea, cpu: int) -> None:
        if self._to_cache(area, cpu):
            return
        self.vfree(area)

    def vfree(self, area: StackArea) -> None:
        """vfree(): remove_vm_area() (the area lazily freed), the pages, the arrays."""
        wl = self.wl
        path = self.path
        path.enter("vfree", area.va)
        npages = (THREAD_SIZE + GUARD) // 4096
        self.lazy += npages
        self.lazy_areas.append(area.va)
        path.enter("free_vmap_area_noflush", area.vmap_area)
        wl.emit("free_vmap_area_noflush", area.va, self.lazy, self.lazy_max)
        path.leave("free_vmap_area_noflush")
        for pfn in area.pages:
            self.pages.free(pfn)
        if area.pages_array:
            wl.slab.kfree("vfree", area.pages_array)
        if area.vm:
            wl.slab.kfree("vfree", area.vm)
        path.leave("vfree")
        if self.lazy > self.lazy_max:
            self.purge()

    def purge(self) -> None:
        """__purge_vmap_area_lazy() (drain_vmap_area_work): the lazily freed areas go."""
        if not self.lazy_areas:
            return
        start, end = min(self.lazy_areas), max(self.lazy_areas) + THREAD_SIZE + GUARD
        n = len(self.lazy_areas)
        self.path.enter("__purge_vmap_area_lazy", start, end, 0)
        self.wl.emit_ctx(0, 0, "purge_vmap_area_lazy", start, end, n)
        self.path.leave("__purge_vmap_area_lazy")
        self.lazy_areas.clear()
        self.lazy = 0

