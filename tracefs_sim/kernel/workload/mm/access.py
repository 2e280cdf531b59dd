"""What user space touched: the model that places a traced process's page faults.

How many faults a thread took between two observations is observed (its minflt/majflt);
where they were is not.  Each VMA gets a budget of expected faults when it is mapped —
text and read-only file data are faulted in 16 pages at a time and only partly touched,
writable data, the heap and anonymous memory page by page, the stack a few pages below
its top — and a fault goes to a VMA that still has budget and unmapped pages, the
recently mapped ones first (a program touches what it just mapped: the loader its
libraries, malloc the heap it grew).  Within the VMA the page is the next one a program
would touch: upwards through the heap and data, downwards through the stack, anywhere in
text.  After a fork the write-protected pages of writable mappings are what both sides
fault on first (COW).  Choices are drawn from the workload's seeded generator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .mm_types import PAGE_SHIFT, VM_EXEC, VM_GROWSDOWN, VM_SHARED, VM_WRITE, MmStruct, Vma

if TYPE_CHECKING:
    from .. import Workload

RECENT = 6                   # the last mappings an access prefers
STACK_BUDGET = 6
ANON_BUDGET_MAX = 24


@dataclass(slots=True, frozen=True)
class Access:
    """One fault to run: the VMA, the address, how it was touched."""

    vma: Vma
    addr: int
    write: bool
    instr: bool


class AccessModel:
    def __init__(self, wl: Workload) -> None:
        self.wl = wl

    @staticmethod
    def budget(vma: Vma) -> int:
        n = vma.npages
        if vma.special:
            return 1 if vma.name == "[vdso]" else 0
        if vma.file is not None:
            if vma.flags & VM_EXEC:
                return max(1, n // 20)
            if vma.flags & VM_WRITE:
                return n
            return max(1, n // 32)
        if vma.flags & VM_GROWSDOWN or vma.name == "[stack]":
            return STACK_BUDGET
        return min(n, ANON_BUDGET_MAX)

    def pick(self, mm: MmStruct) -> Access | None:
        """The next page user space faults on, or None when nothing is left to fault."""
        rng = self.wl.rng
        cow = [v for v in mm.vmas if v.ro and v.flags & VM_WRITE and not v.flags & VM_SHARED]
        if cow and rng.random() < 0.6:
            v = next((x for x in cow if x.name == "[stack]"), None) or rng.choice(cow)
            vpn = max(v.ro) if v.name == "[stack]" else min(v.ro)
            return Access(v, vpn << PAGE_SHIFT, True, False)
        live = [v for v in mm.vmas if v.budget > 0 and len(v.pages) < v.npages]
        if not live:
            live = [v for v in mm.vmas if len(v.pages) < v.npages and not v.special]
            if not live:
                return self._cow(mm, cow)
        newest = sorted(live, key=lambda v: -v.born)[:RECENT]
        pool = newest if rng.random() < 0.7 else live
        weights = [max(1, v.budget) * (2 if v in newest else 1) for v in pool]
        v = rng.choices(pool, weights)[0]
        v.budget = max(0, v.budget - 1)
        return self._page(v)

    def _cow(self, mm: MmStruct, cow: list[Vma]) -> Access | None:
        if not cow:
            return None
        v = cow[0]
        return Access(v, min(v.ro) << PAGE_SHIFT, True, False)

    def _page(self, v: Vma) -> Access:
        rng = self.wl.rng
        lo, hi = v.start >> PAGE_SHIFT, v.end >> PAGE_SHIFT
        missing = [p for p in range(lo, hi) if p not in v.pages] if v.npages <= 4096 else []
        if not missing:
            vpn = lo
        elif v.name == "[stack]" or v.flags & VM_GROWSDOWN:
            vpn = missing[-1]
        elif v.file is not None and not v.flags & VM_WRITE:
            vpn = rng.choice(missing)
        else:
            vpn = missing[0]
        offset = rng.randrange(0, 4096, 8)
        addr = (vpn << PAGE_SHIFT) + offset
        if v.flags & VM_EXEC and v.file is not None or v.name == "[vdso]":
            return Access(v, addr, False, True)
        write = bool(v.flags & VM_WRITE) and (v.file is None or rng.random() < 0.8)
        return Access(v, addr, write, False)

    def user_ip(self, mm: MmStruct, acc: Access) -> int:
        """The instruction that faulted: the address itself for a fetch, else somewhere
        in a text mapping (the most recently mapped one half the time: the loader while
        it runs, later the libraries)."""
        if acc.instr:
            return acc.addr
        rng = self.wl.rng
        text = [v for v in mm.vmas if v.flags & VM_EXEC and v.file is not None]
        if not text:
            return acc.addr
        v = max(text, key=lambda x: x.born) if rng.random() < 0.5 else rng.choice(text)
        return v.start + rng.randrange(0, v.end - v.start, 1)
