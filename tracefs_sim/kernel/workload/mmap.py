"""The memory-mapping syscalls of traced host tasks (mm/mmap.c, mm/util.c,
mm/mprotect.c): their entry chains with the real registers.  What the mm does below
them (VMAs, page tables, faults) is another family's."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .syscalls import Body, SyscallCtx

if TYPE_CHECKING:
    from . import Workload

PAGE_SHIFT = 12


class Mmap:
    """The bodies of mmap, munmap, mprotect and brk (entry chains)."""

    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        reg = wl.syscalls.register
        reg("mmap", Body(self._mmap))
        reg("munmap", Body(self._munmap))
        reg("mprotect", Body(self._mprotect))
        reg("brk", Body(self._brk))

    def _mmap(self, ctx: SyscallCtx) -> None:
        """mmap() → ksys_mmap_pgoff(addr, len, prot, flags, fd, off >> PAGE_SHIFT) →
        vm_mmap_pgoff(file, addr, len, prot, flags, pgoff) → do_mmap()."""
        addr, length, prot, flags, fd, off = ctx.args[:6]
        pgoff = off >> PAGE_SHIFT
        file = self.wl.k.mem.file_object(ctx.file.name)[0] if ctx.file is not None else 0
        ctx.regs["ksys_mmap_pgoff"] = (addr, length, prot, flags, fd, pgoff)
        ctx.regs["vm_mmap_pgoff"] = (file, addr, length, prot, flags, pgoff)
        ctx.regs["do_mmap"] = (file, addr, length, prot, flags, 0)
        self.wl.syscalls.open(ctx, "ksys_mmap_pgoff", "vm_mmap_pgoff", "do_mmap")

    def _munmap(self, ctx: SyscallCtx) -> None:
        """munmap() → __vm_munmap(start, len, true) → do_vmi_munmap()."""
        ctx.regs["__vm_munmap"] = (ctx.args[0], ctx.args[1], 1)
        self.wl.syscalls.open(ctx, "__vm_munmap", "do_vmi_munmap")

    def _mprotect(self, ctx: SyscallCtx) -> None:
        """mprotect() → do_mprotect_pkey(start, len, prot, -1)."""
        ctx.regs["do_mprotect_pkey"] = (ctx.args[0], ctx.args[1], ctx.args[2], 0xFFFFFFFF)
        self.wl.syscalls.open(ctx, "do_mprotect_pkey")

    def _brk(self, ctx: SyscallCtx) -> None:
        """brk() (__do_sys_brk) → do_brk_flags() when the heap grows."""
        if ctx.ret is not None and ctx.args[0] and ctx.ret == ctx.args[0]:
            ctx.regs["do_brk_flags"] = (0, ctx.args[0], 0, 0)
            self.wl.syscalls.call(ctx, "do_brk_flags")
