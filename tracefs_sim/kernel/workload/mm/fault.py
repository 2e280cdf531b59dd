"""Page faults (arch/x86/mm/fault.c): the exception's tracepoint and
do_user_addr_fault(), from user space or from the kernel touching user memory.

A fault from user space fires page_fault_user with irqs still off and finds its VMA
under the per-VMA lock (lock_vma_under_rcu(): no mmap_lock unless the fault must
prepare an anon_vma); a fault in the kernel on a user address (a syscall's copy to
user space) fires page_fault_kernel and takes mmap_lock for reading around
lock_mm_and_find_vma() → find_vma() (mt_find's ma_read).  A fault of get_user_pages()
(exec copying its arguments) has no exception and no tracepoint: handle_mm_fault() runs
under the caller's mmap_lock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..defs import D
from ..syscalls import PT_REGS_OFF, task_stack
from .memory import EXC_REGS_OFF, X86_PF_INSTR, X86_PF_PROT, X86_PF_USER, X86_PF_WRITE
from .mm_types import PAGE_SHIFT, MmStruct, Vma

if TYPE_CHECKING:
    from . import Mm
    from .access import Access

FAULT_NS = 1_200            # a minor fault's time in the kernel and around it in user space
MAJOR_NS = 40_000           # a major fault waits for the page to be read


class Faults:
    def __init__(self, fam: Mm) -> None:
        self.fam = fam
        self.wl = fam.wl
        self.path = fam.path

    def _error_code(self, vma: Vma, addr: int, write: bool, instr: bool, user: bool) -> int:
        code = (X86_PF_USER if user else 0) | (X86_PF_WRITE if write else 0) | (X86_PF_INSTR if instr else 0)
        if (addr >> PAGE_SHIFT) in vma.pages:
            code |= X86_PF_PROT
        return code

    def user_faults(self, mm: MmStruct, n_minor: int, n_major: int, start: int, cpu: int) -> int:
        """``n_minor`` + ``n_major`` faults from user space from boot time ``start`` on,
        where the access model places them; the number it could place."""
        clock = self.wl.k.boot_clock
        done = 0
        for i in range(n_minor + n_major):
            acc = self.fam.access.pick(mm)
            if acc is None:
                break
            clock.pin(max(start + i * FAULT_NS, clock.floor(cpu) + 1))
            self.user_fault(mm, acc, major=i >= n_minor)
            done += 1
        return done

    def user_fault(self, mm: MmStruct, acc: Access, major: bool = False) -> None:
        """#PF from user space at ``acc``."""
        wl = self.wl
        path = self.path
        vma = acc.vma
        code = self._error_code(vma, acc.addr, acc.write, acc.instr, True)
        if wl.tp("page_fault_user"):
            wl.emit_ctx(D, 0, "page_fault_user", acc.addr, self.fam.access.user_ip(mm, acc), code)
        path.begin("do_user_addr_fault")
        path.call("lock_vma_under_rcu", {"lock_vma_under_rcu": (mm.addr, acc.addr)},
                  {"lock_vma_under_rcu": vma.addr})
        self.fam.memory.handle_mm_fault(mm, vma, acc.addr, acc.write, acc.instr, True, True, major=major)
        path.end()

    def kernel_fault(self, mm: MmStruct, vma: Vma, addr: int, ip: int) -> None:
        """#PF in the kernel writing user memory at ``addr`` (copy_to_user()): mmap_lock
        read-trylocked, the VMA found with find_vma(), the fault, the unlock."""
        wl = self.wl
        path = self.path
        code = self._error_code(vma, addr, True, False, False)
        if wl.tp("page_fault_kernel"):
            wl.emit_ctx(D, 0, "page_fault_kernel", addr, ip, code)
        path.begin("do_user_addr_fault")
        regs = task_stack(wl.k.sched.current.pid) + EXC_REGS_OFF
        path.enter("lock_mm_and_find_vma", mm.addr, addr, regs, ret=vma.addr)
        self.fam.lock.lock(mm, False)
        path.enter("find_vma", mm.addr, addr, ret=vma.addr)
        mm.tree.read("mt_find", addr)
        path.leave("find_vma")
        path.leave("lock_mm_and_find_vma")
        self.fam.memory.handle_mm_fault(mm, vma, addr, True, False, False, True)
        self.fam.lock.unlock(mm, False)
        path.end()

    def gup_fault(self, mm: MmStruct, vma: Vma, addr: int, write: bool, curr: bool) -> None:
        """get_user_pages_remote() → __get_user_pages(): the VMA looked up
        (gup_vma_lookup() → vma_lookup() → mtree_load's ma_read), the page faulted in."""
        path = self.path
        path.enter("get_user_pages_remote", mm.addr, addr, 1, 1 if write else 0, 0, 0)
        path.enter("__get_user_pages", mm.addr, addr, 1, 0, 0, 0)
        mm.tree.read("mtree_load", addr)
        if (addr >> PAGE_SHIFT) not in vma.pages:
            self.fam.memory.handle_mm_fault(mm, vma, addr, write, False, False, curr, gup=True)
        path.leave("__get_user_pages")
        path.leave("get_user_pages_remote")

    def user_regs(self, pid: int) -> int:
        return task_stack(pid) + PT_REGS_OFF
