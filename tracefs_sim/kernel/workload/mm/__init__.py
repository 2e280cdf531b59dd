"""Memory management of traced host processes: their mms, VMAs, page faults, page and
per-CPU allocations, kernel stacks, TLB flushes and the mmap_lock, as Linux 6.12 runs and
traces them for what the processes did.

Observed: the mapped ranges (the mmap/munmap/mprotect/brk/mremap/madvise arguments and
results, /proc/PID/maps at each exec), how many faults each thread took between two
stops (its minflt/majflt), the memory cgroup of the processes, which CPU each ran on.
Modelled, consistently: which pages the faults touched (``access``), the page frames
(``page_alloc``: each freed frame is one that was allocated), the page tables, the
RSS counters, the maple tree's nodes, the lazy-TLB references that decide when an mm
is freed.  docs/notes.md has the table.

The parts, named after the kernel's files: ``mm_types`` (the objects), ``calls`` (the
function call sites with their registers), ``page_alloc``, ``percpu``, ``vmalloc``
(kernel stacks), ``swap`` (LRU batches), ``mmap_lock``, ``maple_tree``, ``tlb``,
``memory`` (mm/memory.c: faults below handle_mm_fault, zap, fork's copy), ``fault``
(arch/x86/mm/fault.c), ``vma`` (mmap, munmap, mprotect, brk), ``fork`` (an mm's life),
``exec`` (the new image), ``access`` (where user space touched).

Threads carry their mm (``Thread.mm``, shared by CLONE_VM); the hooks the traced-task
model and the process family call are the methods below.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

from ..defs import STATE_Z
from ..process import STATE_X
from .access import AccessModel
from .calls import Path
from .exec import ARG_PAGES, Exec, parse_maps
from .fault import FAULT_NS, Faults
from .fork import MM_CID_SIZE, MM_MT_OFF, PGD_ALLOCATION_ORDER, RSS_SIZE, MmLife
from .maple_tree import MapleTree
from .memory import Memory
from .mm_types import (
    MAP_ANONYMOUS,
    MAP_SHARED,
    MAP_TYPE,
    PAGE_SHIFT,
    VM_ACCOUNT,
    VM_SHARED,
    VM_WRITE,
    MappedFile,
    MmStruct,
    Vma,
    calc_vm_flags,
    page_align,
)
from .mmap_lock import MmapLock
from .page_alloc import PageAlloc
from .percpu import Percpu
from .swap import LruBatches
from .tlb import Tlb
from .vma import VmaOps
from .vmalloc import StackArea, Vmalloc

if TYPE_CHECKING:
    from ...sched import Task
    from .. import Workload
    from ..files import OpenFile
    from ..syscalls import SyscallCtx
    from ..traced import Thread

__all__ = ["Mm", "MmStruct"]

ROOT_DEV = 0x00000015          # the 9p root's anonymous s_dev (0:21) until an exec shows one
COPY_OUT_MAX = 32              # pages a syscall's copy to user space may fault on
# syscalls that write a user buffer: name -> (the buffer's argument, its length: an
# argument index, or negative: a fixed size, or None: the return value)
COPY_OUT: dict[str, tuple[int, int | None]] = {
    "read": (1, None), "pread64": (1, None), "getdents64": (1, None), "recvfrom": (1, None),
    "getrandom": (0, None), "getcwd": (0, None), "readlink": (1, None), "readlinkat": (2, None),
    "newfstatat": (2, -144), "fstat": (1, -144), "newstat": (1, -144), "newlstat": (1, -144),
    "statx": (4, -256), "uname": (0, -390), "sysinfo": (0, -112), "pipe2": (0, -8), "pipe": (0, -8),
}


class Mm:
    """The memory-management family of the workload."""

    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        self.path = Path(wl.sites)
        self.pages = PageAlloc(wl, self.path)
        self.percpu = Percpu(wl, self.path)
        self.vmalloc = Vmalloc(wl, self.path, self.pages)
        self.lru = LruBatches(wl, self.path)
        self.lock = MmapLock(wl, self.path)
        self.access = AccessModel(wl)
        self.life = MmLife(self)
        self.tlb = Tlb(wl, self.path, self.life.mmdrop)
        self.memory = Memory(self)
        self.vma = VmaOps(self)
        self.faults = Faults(self)
        self.exec = Exec(self)
        self.memcg = ""                 # the memory cgroup of the traced command (observed)
        self.files: dict[tuple[int, int], MappedFile] = {}
        self.by_name: dict[str, MappedFile] = {}
        self.root_dev = ROOT_DEV
        self.stacks: dict[int, StackArea] = {}      # id(task) -> its kernel stack
        self.owed: dict[int, list[int]] = {}        # id(thread) -> [minflt, majflt] not shown yet
        self.maps: dict[int, str] = {}              # tgid -> /proc/PID/maps at its exec
        self.built = False                          # exec_mmap() switched to a new mm

    # ------------------------------------------------------------------ files
    def mapped_file(self, name: str, dev: int, ino: int, path: str = "") -> MappedFile:
        """The inode of an observed file mapping (dev and inode from /proc/PID/maps)."""
        f = self.files.get((dev, ino))
        if f is None:
            f = self.files[(dev, ino)] = MappedFile(path or name, dev, ino)
            self.by_name.setdefault(name, f)
            self.root_dev = dev
        return f

    def file_of(self, f: OpenFile) -> MappedFile:
        """The inode behind an mmap'd fd: one an exec showed under that name, else one
        modelled on the root file system with a stable inode number."""
        got = self.by_name.get(f.name)
        if got is None:
            ino = 0x40000 + zlib.crc32(f.name.encode()) % 0x3FFFF
            got = self.by_name[f.name] = MappedFile(f.name, self.root_dev, ino)
        return got

    # ------------------------------------------------------------------ mms
    def mm_of(self, t: Thread) -> MmStruct | None:
        """The thread's mm; one the model never saw built is taken from the host's
        /proc/PID/maps (its state now, no events)."""
        if t.mm is None and t.state != "dead":
            text = self.wl.traced.host.maps(t.proc.tgid)
            if text is not None:
                t.mm = self.adopt(text)
        return t.mm

    def adopt(self, text: str) -> MmStruct:
        """An mm built silently from maps lines (the model starts in its middle): its
        objects exist, no event shows their making."""
        wl = self.wl
        addr = wl.slab.alloc_obj(1408)
        mm = MmStruct(addr, self.pages.preexisting(PGD_ALLOCATION_ORDER),
                      self.percpu.preexisting(MM_CID_SIZE, 8), self.percpu.preexisting(RSS_SIZE, 4),
                      self.memcg, MapleTree(wl, addr + MM_MT_OFF))
        for ln in parse_maps(text):
            f = self.mapped_file(ln.path.rpartition("/")[2], ln.dev, ln.ino, ln.path) if ln.ino else None
            mm.mapped += 1
            name = ln.path if ln.path.startswith("[") else ""
            v = Vma(ln.start, ln.end, calc_vm_flags(ln.prot, MAP_SHARED if ln.perms[3] == "s" else 0),
                    ln.pgoff, f, wl.slab.alloc_obj(176), wl.slab.alloc_obj(40), name, born=mm.mapped)
            mm.insert(v)
            if name == "[heap]":
                mm.start_brk, mm.brk = ln.start, ln.end
        mm.tree.bounds = mm.boundaries()
        return mm

    # ------------------------------------------------------------------ process life
    def copy_process(self, parent: Thread, child: Thread, flags: int) -> None:
        """dup_task_struct() (the kernel stack) and copy_mm(): CLONE_VM shares the mm,
        else dup_mm()."""
        if self.wl.quiet():
            return          # nothing attached: the child's mm is learned when it is needed
        path = self.path
        path.begin("copy_process")
        self.stacks[id(child.task)] = self.vmalloc.alloc_stack(child.task.pid)
        mm = self.mm_of(parent)
        if mm is not None:
            if flags & 0x100:           # CLONE_VM
                mm.users += 1
                child.mm = mm
            else:
                child.mm = self.life.dup_mm(mm)
        path.end()

    def exit_mm(self, t: Thread) -> None:
        """exit_mm(): the task leaves its mm (kept as its lazy active_mm) and puts it."""
        self.owed.pop(id(t), None)
        mm = t.mm
        if mm is None:
            return
        if self.wl.quiet():
            t.mm = None
            mm.users -= 1
            return
        path = self.path
        path.begin("do_exit")
        path.call("exit_mm_release")
        self.lock.lock(mm, False)
        self.tlb.detach(self.wl.k.sched.cpu, mm)
        t.mm = None
        self.lock.unlock(mm, False)
        path.call("mm_update_next_owner")
        self.life.mmput(mm)
        path.end()

    def switch_mm(self, cpu: int, prev: Task, nxt: Task) -> MmStruct | None:
        """context_switch() on ``cpu`` before switch_to() (still in prev's context):
        switch_mm_irqs_off() or lazy TLB.  Returns the borrowed mm finish_task_switch()
        drops."""
        if self.wl.quiet():
            return None
        traced = self.wl.traced.threads
        pt = traced.get(prev.pid) if prev.pid else None
        nt = traced.get(nxt.pid) if nxt.pid else None
        prev_mm = pt.mm if pt is not None and pt.task is prev else None
        # a task switched in has its mm even when the model has not needed it yet: the
        # switch drops the CPU's lazy mm (its last reference frees a dead process' mm)
        next_mm = self.mm_of(nt) if nt is not None and nt.task is nxt else None
        return self.tlb.switch(cpu, prev_mm, next_mm)

    def finish_task_switch(self, cpu: int, prev: Task, prev_state: int, drop: MmStruct | None) -> None:
        """finish_task_switch() in next's context: the borrowed mm is dropped (mmdrop_lazy_tlb),
        a dead task's stack is put."""
        if drop is not None:
            self.life.mmdrop(drop)
        if self.wl.quiet():
            return
        if prev_state in (STATE_Z, STATE_X):
            area = self.stacks.pop(id(prev), None)
            if area is not None:
                self.path.begin("finish_task_switch")
                self.path.call("put_task_stack")
                self.vmalloc.free_stack(area, cpu)
                self.path.end()

    # ------------------------------------------------------------------ exec
    def bprm_mm_init(self, t: Thread, ctx: SyscallCtx) -> None:
        owed = self.owed.get(id(t))
        pages = min(max(owed[0], 1), ARG_PAGES) if owed else 1
        self.exec.bprm_mm_init(t, ctx, pages)
        if owed:
            owed[0] -= pages

    def exec_mmap(self, t: Thread) -> None:
        """begin_new_exec() → exec_mmap(): the task switches to the mm its exec built
        (none built: the exec's syscall was not seen; its new mm is learned later)."""
        self.built = self.exec.exec_mmap(t)
        if not self.built and t.mm is not None:
            t.mm.users -= 1
            t.mm = None

    def load_image(self, t: Thread, filename: str) -> None:
        """load_elf_binary()'s mappings of the new image (the tracer's maps at the exec
        stop; the host's now when the tracer sent none)."""
        text = self.maps.pop(t.proc.tgid, None)
        if not self.built:
            return
        self.built = False
        if text is None:
            text = self.wl.traced.host.maps(t.proc.tgid)
        self.exec.load_image(t, parse_maps(text or ""), filename)

    # ------------------------------------------------------------------ faults
    def took_faults(self, t: Thread, minflt: int, majflt: int, start: int, cpu: int) -> None:
        """The thread took ``minflt``/``majflt`` faults before now: in user space, shown
        from ``start`` on (a thread inside a syscall shows them when it returns)."""
        owed = self.owed.setdefault(id(t), [0, 0])
        owed[0] += minflt
        owed[1] += majflt
        if t.pending is None:
            self.flush(t, start, cpu)

    def flush(self, t: Thread, start: int, cpu: int) -> None:
        owed = self.owed.get(id(t))
        if not owed or (owed[0] <= 0 and owed[1] <= 0):
            return
        mm = self.mm_of(t)
        if mm is None:
            return
        n_min, n_maj = max(0, owed[0]), max(0, owed[1])
        self.faults.user_faults(mm, n_min, n_maj, start, cpu)
        owed[0] -= n_min
        owed[1] -= n_maj

    def syscall_exit(self, t: Thread, ctx: SyscallCtx, ret: int) -> None:
        """A syscall returns ``ret``: the pages its copy to user space wrote that were not
        mapped faulted in the kernel (counted against the thread's next fault counts)."""
        spec = COPY_OUT.get(ctx.sc.name)
        if spec is None or ret < 0 or not ctx.args:
            return
        mm = self.mm_of(t)
        if mm is None:
            return
        arg, size = spec
        buf = ctx.args[arg]
        length = ret if size is None else -size if size < 0 else ctx.args[size]
        if not buf or length <= 0:
            return
        owed = self.owed.setdefault(id(t), [0, 0])
        first, last = buf >> PAGE_SHIFT, (buf + length - 1) >> PAGE_SHIFT
        for vpn in range(first, min(last + 1, first + COPY_OUT_MAX)):
            vma = mm.find(vpn << PAGE_SHIFT)
            if vma is None or not vma.flags & VM_WRITE:
                continue
            if vpn in vma.pages and vpn not in vma.ro:
                continue
            addr = max(buf, vpn << PAGE_SHIFT)
            ip = self.wl.sites.site("filldir64" if ctx.sc.name == "getdents64" else "rep_movs_alternative")
            self.faults.kernel_fault(mm, vma, addr, ip)
            owed[0] -= 1

    def after_syscall(self, t: Thread, cpu: int) -> None:
        """Back in user space: the faults seen while the thread was in the syscall."""
        clock = self.wl.k.boot_clock
        self.flush(t, (clock.pinned or clock.ns()) + FAULT_NS, cpu)

    # ------------------------------------------------------------------ syscalls
    def vm_mmap_pgoff(self, mm: MmStruct, file: MappedFile | None, hint: int, length: int, prot: int,
                      flags: int, pgoff: int, result: int, curr: bool, span: int = 0) -> None:
        """vm_mmap_pgoff() below its entry: the write lock, do_mmap() (the address,
        mmap_region()), the unlock."""
        path = self.path
        path.call("security_mmap_file")
        self.lock.lock(mm, True)
        vm_flags = calc_vm_flags(prot, flags)
        if file is None and flags & MAP_TYPE != MAP_SHARED and flags & MAP_ANONYMOUS:
            pgoff = result >> PAGE_SHIFT
        if not vm_flags & VM_SHARED and vm_flags & VM_WRITE:
            vm_flags |= VM_ACCOUNT
        length = page_align(length)
        path.enter("do_mmap", 0, hint, length, prot, flags, vm_flags, pgoff)
        self.vma.get_unmapped_area(mm, hint, span or length, 0 if file is None else pgoff, flags, file, result)
        self.vma.mmap_region(mm, result, length, vm_flags, pgoff, file, curr)
        path.leave("do_mmap")
        self.lock.unlock(mm, True)

    def resync(self) -> None:
        """Syscalls are reported again after a time they were not: every mm may have
        changed unseen; each is rebuilt from the host at its next use."""
        for t in self.wl.traced.threads.values():
            t.mm = None
        self.tlb.reset()
        self.exec.pending.clear()
