"""The memory-mapping syscalls of traced host tasks (mm/mmap.c, mm/util.c, mm/mprotect.c,
mm/mremap.c, mm/madvise.c): their entry chains with the real registers, and below them
the mm's work (``workload.mm``) on the ranges the syscall really mapped, unmapped or
changed — its real arguments and return value.  A failing call takes the lock and
returns; a call whose outcome is not known yet (its path run early) changes nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .mm.mm_types import MAP_ANONYMOUS, VM_EXEC, VM_READ, VM_WRITE, page_align
from .syscall_define import SyscallDefines
from .syscalls import SyscallCtx, arg_int

if TYPE_CHECKING:
    from . import Workload
    from .mm import Mm
    from .mm.mm_types import MmStruct

PAGE_SHIFT = 12
MADV_DONTNEED = 4
MREMAP_MAYMOVE, MREMAP_FIXED = 1, 2


class Mmap:
    """The bodies of mmap, munmap, mprotect, brk, mremap and madvise."""

    SYSCALLS = SyscallDefines()

    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        self.SYSCALLS.register(wl.syscalls, self)

    @property
    def mm(self) -> Mm:
        return self.wl.mm

    def _begin(self, ctx: SyscallCtx) -> MmStruct | None:
        """The task's mm, with the mm paths running below the syscall's open chain."""
        mm = self.mm.mm_of(ctx.thread)
        if mm is not None:
            self.mm.path.begin(ctx.frames[-1][1] if ctx.frames else None)
        return mm

    @SYSCALLS.enter("mmap")
    def _mmap(self, ctx: SyscallCtx) -> None:
        """mmap() → ksys_mmap_pgoff(addr, len, prot, flags, fd, off >> PAGE_SHIFT) →
        vm_mmap_pgoff(file, addr, len, prot, flags, pgoff) → do_mmap()."""
        addr, length, prot, flags, fd, off = ctx.args[:6]
        pgoff = off >> PAGE_SHIFT
        k = self.wl.k
        file = k.mem.file_object(ctx.file.name)[0] if ctx.file is not None else 0
        ctx.regs["ksys_mmap_pgoff"] = (addr, length, prot, flags, fd, pgoff)
        ctx.regs["vm_mmap_pgoff"] = (file, addr, length, prot, flags, pgoff)
        ctx.regs["do_mmap"] = (file, addr, length, prot, flags, 0)
        s = self.wl.syscalls
        s.open(ctx, "ksys_mmap_pgoff", "vm_mmap_pgoff")
        ret = ctx.ret
        mm = self._begin(ctx)
        if mm is None:
            s.open(ctx, "do_mmap")
            return
        fam = self.mm
        if ret is None or ret < 0:
            fam.path.call("security_mmap_file")
            fam.lock.lock(mm, True)
            fam.lock.unlock(mm, True)
        else:
            mapped = None if flags & MAP_ANONYMOUS or ctx.file is None else fam.file_of(ctx.file)
            fam.vm_mmap_pgoff(mm, mapped, addr, length, prot, flags, pgoff, ret, True)
        fam.path.end()

    @SYSCALLS.enter("munmap")
    def _munmap(self, ctx: SyscallCtx) -> None:
        """munmap() → __vm_munmap(start, len, true): the write lock, do_vmi_munmap()
        (downgraded to a read lock for the zap), the unlock."""
        start, length = ctx.args[0], ctx.args[1]
        ctx.regs["__vm_munmap"] = (start, length, 1)
        s = self.wl.syscalls
        s.open(ctx, "__vm_munmap")
        mm = self._begin(ctx)
        if mm is None:
            s.open(ctx, "do_vmi_munmap")
            return
        fam = self.mm
        fam.lock.lock(mm, True)
        ctx.regs["do_vmi_munmap"] = (0, mm.addr, start, length, 0, 1)
        s.open(ctx, "do_vmi_munmap")
        end = start + page_align(length)
        unmapped = ctx.ret == 0 and bool(mm.overlapping(start, end))
        if unmapped:
            fam.path.begin("do_vmi_munmap")
            fam.vma.unmap(mm, start, end, True, downgrade=True)
            fam.path.end()
        s.close(ctx, 1)
        fam.lock.unlock(mm, not unmapped)
        fam.path.end()

    @SYSCALLS.enter("mprotect")
    def _mprotect(self, ctx: SyscallCtx) -> None:
        """mprotect() → do_mprotect_pkey(start, len, prot, -1)."""
        start, length, prot = ctx.args[0], ctx.args[1], ctx.args[2]
        ctx.regs["do_mprotect_pkey"] = (start, length, prot, 0xFFFFFFFF)
        s = self.wl.syscalls
        s.open(ctx, "do_mprotect_pkey")
        mm = self._begin(ctx)
        if mm is None:
            return
        fam = self.mm
        fam.lock.lock(mm, True)
        if ctx.ret == 0:
            vm = (VM_READ if prot & 1 else 0) | (VM_WRITE if prot & 2 else 0) | (VM_EXEC if prot & 4 else 0)
            fam.vma.mprotect(mm, start, start + page_align(length), vm, True)
        fam.lock.unlock(mm, True)
        fam.path.end()

    @SYSCALLS.enter("brk")
    def _brk(self, ctx: SyscallCtx) -> None:
        """brk() (__do_sys_brk): under the write lock the heap's end moves to the new
        break (do_brk_flags() when it grows, do_vmi_align_munmap() when it shrinks);
        brk(0) and a refused break only take the lock."""
        s = self.wl.syscalls
        want = ctx.args[0]
        ret = ctx.ret
        if ret is not None and want and ret == want:
            ctx.regs["do_brk_flags"] = (0, 0, want, 0)
        mm = self._begin(ctx)
        if mm is None:
            if ret is not None and want and ret == want:
                s.call(ctx, "do_brk_flags")
            return
        fam = self.mm
        fam.lock.lock(mm, True)
        if ret is not None and ret > 0:
            if mm.brk and want and ret == want and want != mm.brk:
                fam.vma.brk(mm, want, True)
            if not mm.start_brk:
                mm.start_brk = ret      # the first break seen (ld.so's brk(0))
            mm.brk = ret
        fam.lock.unlock(mm, True)
        fam.path.end()

    @SYSCALLS.enter("mremap")
    def _mremap(self, ctx: SyscallCtx) -> None:
        """mremap(): the old range grown or shrunk in place, or moved (a new VMA at the
        returned address, the old range unmapped)."""
        old, old_len, new_len, flags = ctx.args[0], ctx.args[1], ctx.args[2], arg_int(ctx.args[3])
        mm = self._begin(ctx)
        if mm is None:
            return
        fam = self.mm
        fam.lock.lock(mm, True)
        ret = ctx.ret
        if ret is not None and ret > 0:
            fam.path.enter("mremap", old, old_len, new_len, flags, ctx.args[4])
            old_len, new_len = page_align(old_len), page_align(new_len)
            vma = mm.find(old)
            if vma is not None:
                if ret == old:
                    if new_len < old_len:
                        fam.vma.unmap(mm, old + new_len, old + old_len, True, downgrade=False)
                    elif new_len > old_len:
                        vma.end = old + new_len
                        fam.vma.store(mm, vma.start, vma.end, vma.addr)
                else:
                    fam.vma.mmap_region(mm, ret, new_len, vma.flags, vma.pgoff, vma.file, True, vma.name)
                    fam.vma.unmap(mm, old, old + old_len, True, downgrade=False)
            fam.path.leave("mremap")
        fam.lock.unlock(mm, True)
        fam.path.end()

    @SYSCALLS.enter("madvise")
    def _madvise(self, ctx: SyscallCtx) -> None:
        """madvise() → do_madvise(): MADV_DONTNEED zaps the range under the read lock;
        other advice takes the lock only."""
        start, length, advice = ctx.args[0], ctx.args[1], arg_int(ctx.args[2])
        ctx.regs["do_madvise"] = (0, start, length, advice)
        self.wl.syscalls.open(ctx, "do_madvise")
        mm = self._begin(ctx)
        if mm is None:
            return
        fam = self.mm
        fam.lock.lock(mm, False)
        if ctx.ret == 0 and advice == MADV_DONTNEED:
            fam.vma.dontneed(mm, start, start + page_align(length), True)
        fam.lock.unlock(mm, False)
        fam.path.end()

