"""The mm objects of traced processes (include/linux/mm_types.h, include/linux/mm.h): an
mm_struct with its VMAs, page tables, RSS counters and lock state, as far as the
tracepoints and probes of the memory paths show them.

A VMA's range, protection, flags and file come from what the process really did (its
mmap/munmap/mprotect/brk/mremap arguments and results, and /proc/PID/maps at its exec);
which of its pages are mapped, and by which page frame, is modelled: a page is mapped
when the model ran a fault (or a GUP, or a fork's copy) for it, and unmapped when the
range is zapped.  Every kernel object gets one address for its life (the slab object of
a vm_area_struct, the mm_struct, the page-table pages), so the events that name it agree.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ...lib import PAGE_SIZE

if TYPE_CHECKING:
    from .maple_tree import MapleTree

PAGE_SHIFT = 12
ULONG_MAX = (1 << 64) - 1

# vm_flags (include/linux/mm.h)
VM_READ = 0x1
VM_WRITE = 0x2
VM_EXEC = 0x4
VM_SHARED = 0x8
VM_MAYREAD = 0x10
VM_MAYWRITE = 0x20
VM_MAYEXEC = 0x40
VM_MAYSHARE = 0x80
VM_GROWSDOWN = 0x100
VM_PFNMAP = 0x400
VM_LOCKED = 0x2000
VM_IO = 0x4000
VM_DONTCOPY = 0x20000
VM_DONTEXPAND = 0x40000
VM_ACCOUNT = 0x100000
VM_NORESERVE = 0x200000
VM_DONTDUMP = 0x4000000
VM_SOFTDIRTY = 0x8000000
VM_MIXEDMAP = 0x10000000
VM_SPECIAL = VM_IO | VM_DONTEXPAND | VM_PFNMAP | VM_MIXEDMAP
VM_MAY = VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
# VM_DATA_DEFAULT_FLAGS on x86-64 (no READ_IMPLIES_EXEC), the stack's VM_STACK_DEFAULT_FLAGS
VM_DATA_DEFAULT = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
VM_STACK_FLAGS = VM_DATA_DEFAULT | VM_GROWSDOWN | VM_ACCOUNT

# mmap(2) prot and flags (include/uapi/asm-generic/mman*.h)
PROT_READ, PROT_WRITE, PROT_EXEC = 0x1, 0x2, 0x4
MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE = 0x1, 0x2, 0x3
MAP_TYPE = 0xF
MAP_FIXED = 0x10
MAP_ANONYMOUS = 0x20
MAP_GROWSDOWN = 0x100
MAP_DENYWRITE = 0x800
MAP_NORESERVE = 0x4000
MAP_POPULATE = 0x8000
MAP_STACK = 0x20000
MAP_FIXED_NOREPLACE = 0x100000

# the RSS counters (NR_MM_COUNTERS of enum mm_counter)
MM_FILEPAGES, MM_ANONPAGES, MM_SWAPENTS, MM_SHMEMPAGES = 0, 1, 2, 3
NR_MM_COUNTERS = 4

# page-table levels below the PGD (4-level paging at run time: the P4D is folded)
PUD_SHIFT, PMD_SHIFT, PTE_SHIFT = 39, 30, 21
PMD_SIZE = 1 << 21


def page_align(n: int) -> int:
    return (n + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


def calc_vm_flags(prot: int, flags: int) -> int:
    """calc_vm_prot_bits() | calc_vm_flag_bits() | the VM_MAY* bits do_mmap() adds."""
    vm = 0
    if prot & PROT_READ:
        vm |= VM_READ
    if prot & PROT_WRITE:
        vm |= VM_WRITE
    if prot & PROT_EXEC:
        vm |= VM_EXEC
    vm |= VM_MAY
    if flags & MAP_TYPE in (MAP_SHARED, MAP_SHARED_VALIDATE):
        vm |= VM_SHARED | VM_MAYSHARE
    if flags & MAP_GROWSDOWN:
        vm |= VM_GROWSDOWN
    return vm


@dataclass(slots=True, eq=False)
class MappedFile:
    """The inode behind a file mapping: what mm_filemap_* events name (s_dev, i_ino)."""

    path: str
    dev: int            # the kernel's dev_t (major << 20 | minor)
    ino: int


@dataclass(slots=True, eq=False)
class Vma:
    """A vm_area_struct.  ``pages`` maps a virtual page number to the frame its PTE points
    at; ``anon`` are the pages that are this mapping's own anonymous copies (an exclusive
    or fork-shared anon folio), ``ro`` the mapped pages a write must copy first (COW)."""

    start: int
    end: int
    flags: int
    pgoff: int
    file: MappedFile | None
    addr: int                       # the struct vm_area_struct
    lock: int                       # its struct vma_lock
    name: str = ""                  # [stack], [heap], [vdso], [vvar]: what maps prints
    anon_vma: int = 0               # its anon_vma (0: none prepared yet)
    pages: dict[int, int] = field(default_factory=dict)
    anon: set[int] = field(default_factory=set)
    ro: set[int] = field(default_factory=set)
    budget: int = 0                 # faults the access model still expects in it
    born: int = 0                   # the mm's mapping counter when it was made (recency)

    @property
    def npages(self) -> int:
        return (self.end - self.start) >> PAGE_SHIFT

    @property
    def special(self) -> bool:
        return bool(self.flags & VM_SPECIAL) or self.name in ("[vdso]", "[vvar]", "[vvar_vclock]")

    @property
    def anonymous(self) -> bool:
        return self.file is None and not self.special

    def mergeable_with(self, other: Vma) -> bool:
        """is_mergeable_vma() + the anon_vma and pgoff checks of can_vma_merge_*():
        ``other`` directly follows this one and could be one VMA with it."""
        if self.end != other.start or self.special or other.special or self.name != other.name:
            return False
        if (self.flags ^ other.flags) & ~VM_SOFTDIRTY or self.file is not other.file:
            return False
        if self.anon_vma and other.anon_vma and self.anon_vma != other.anon_vma:
            return False
        return self.file is None or self.pgoff + self.npages == other.pgoff


@dataclass(slots=True, eq=False)
class MmStruct:
    """A struct mm_struct: its VMAs in address order and what hangs off it."""

    addr: int                       # the struct mm_struct
    pgd: int                        # the pfn of its PGD (an order-1 allocation with PTI)
    rss_pcpu: int                   # mm->rss_stat's per-CPU counters
    cid_pcpu: int                   # mm->pcpu_cid
    memcg: str                      # its memory cgroup's path (mmap_lock events)
    tree: MapleTree                 # mm->mm_mt
    vmas: list[Vma] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    tables: dict[tuple[int, int], int] = field(default_factory=dict)   # (shift, index) -> pfn
    rss: list[int] = field(default_factory=lambda: [0] * NR_MM_COUNTERS)
    users: int = 1                  # mm_users: the tasks using it
    count: int = 1                  # mm_count: mm_users as one, plus lazy-TLB holders
    mmap_base: int = 0
    start_brk: int = 0
    brk: int = 0
    start_stack: int = 0
    mapped: int = 0                 # mappings made so far (a VMA's recency)
    tlb_gen: int = 1                # context.tlb_gen
    cpus: set[int] = field(default_factory=set)     # mm_cpumask
    dead: bool = False              # exit_mmap() ran

    @property
    def total_vm(self) -> int:
        return sum(v.npages for v in self.vmas)

    def find(self, addr: int) -> Vma | None:
        """The VMA containing ``addr`` (vma_lookup())."""
        i = bisect.bisect_right(self.starts, addr) - 1
        if i >= 0:
            v = self.vmas[i]
            if addr < v.end:
                return v
        return None

    def index(self, vma: Vma) -> int:
        return self.vmas.index(vma)

    def insert(self, vma: Vma) -> None:
        i = bisect.bisect_left(self.starts, vma.start)
        self.vmas.insert(i, vma)
        self.starts.insert(i, vma.start)

    def remove(self, vma: Vma) -> None:
        i = self.vmas.index(vma)
        del self.vmas[i]
        del self.starts[i]

    def resort(self) -> None:
        """After a VMA's start moved (a split or a merge)."""
        self.vmas.sort(key=lambda v: v.start)
        self.starts = [v.start for v in self.vmas]

    def overlapping(self, start: int, end: int) -> list[Vma]:
        i = max(0, bisect.bisect_right(self.starts, start) - 1)
        out = []
        for v in self.vmas[i:]:
            if v.start >= end:
                break
            if v.end > start:
                out.append(v)
        return out

    def boundaries(self) -> list[int]:
        """The range starts of the VMA tree: each VMA and each gap between them (the
        maple tree stores the gaps as NULL ranges)."""
        out = [0]
        for v in self.vmas:
            if v.start != out[-1]:
                out.append(v.start)
            out.append(v.end)
        return out
