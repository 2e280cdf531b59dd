"""The mm side of exec (fs/exec.c, fs/binfmt_elf.c, arch/x86/entry/vdso): the new mm
and its first stack page (bprm_mm_init()), the argument pages copied in through
get_user_pages (copy_strings()), the switch to the new mm (exec_mmap(): the old one put),
and the image load_elf_binary() maps.

The image is what the tracer read from /proc/PID/maps at the exec stop (observed): the
binary's segments (elf_map() at its load bias: fixed addresses), the bss the kernel
maps with vm_brk_flags(), the interpreter (its first segment placed by
vm_unmapped_area() below mmap_base), the vDSO and its data pages, and the stack moved
from the top of the address space to its random top (setup_arg_pages()).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...lib import PAGE_SIZE
from .mm_types import (
    MAP_FIXED_NOREPLACE,
    MAP_PRIVATE,
    PAGE_SHIFT,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    VM_DONTDUMP,
    VM_EXEC,
    VM_IO,
    VM_MAYEXEC,
    VM_MAYREAD,
    VM_MAYWRITE,
    VM_PFNMAP,
    VM_READ,
    VM_STACK_FLAGS,
    MappedFile,
    MmStruct,
    Vma,
)

if TYPE_CHECKING:
    from ..syscalls import SyscallCtx
    from ..traced import Thread
    from . import Mm

STACK_TOP_MAX = 0x7FFFFFFFF000          # TASK_SIZE_MAX with 4-level paging
VM_STACK_INCOMPLETE_SETUP = 0x200 | 0x40000000   # VM_RAND_READ | VM_SEQ_READ... (exec's marker)
ARG_PAGES = 2                           # argument pages an exec copies when nothing says more
VDSO_FLAGS = VM_READ | VM_EXEC | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
VVAR_FLAGS = VM_READ | VM_MAYREAD | VM_IO | VM_DONTDUMP | VM_PFNMAP


@dataclass(slots=True, frozen=True)
class MapLine:
    """One line of /proc/PID/maps."""

    start: int
    end: int
    perms: str
    pgoff: int
    dev: int
    ino: int
    path: str

    @property
    def prot(self) -> int:
        return ((PROT_READ if self.perms[0] == "r" else 0) | (PROT_WRITE if self.perms[1] == "w" else 0)
                | (PROT_EXEC if self.perms[2] == "x" else 0))


def parse_maps(text: str) -> list[MapLine]:
    """/proc/PID/maps as lines (the vsyscall page is no VMA)."""
    out = []
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 5:
            continue
        lo, _, hi = parts[0].partition("-")
        major, _, minor = parts[3].partition(":")
        start, end = int(lo, 16), int(hi, 16)
        if start >= 1 << 47:
            continue
        out.append(MapLine(start, end, parts[1], int(parts[2], 16) >> PAGE_SHIFT,
                           int(major, 16) << 20 | int(minor, 16), int(parts[4]),
                           parts[5].strip() if len(parts) > 5 else ""))
    return out


class Exec:
    def __init__(self, fam: Mm) -> None:
        self.fam = fam
        self.wl = fam.wl
        self.path = fam.path
        self.pending: dict[int, MmStruct] = {}      # id(thread) -> the mm its exec builds

    # ------------------------------------------------------------------ before the point of no return
    def bprm_mm_init(self, t: Thread, ctx: SyscallCtx, arg_pages: int) -> None:
        """alloc_bprm() → bprm_mm_init(): the new mm with a one-page stack VMA at the top
        of the address space; then copy_strings() of the filename, envp and argv through
        get_arg_page() (the stack grown down a page at a time)."""
        fam = self.fam
        path = self.path
        memcg = t.mm.memcg if t.mm is not None else fam.memcg
        path.begin(ctx.frames[-1][1] if ctx.frames else None)
        path.enter("alloc_bprm", 0xFFFFFF9C, 0, 0)
        mm = fam.life.mm_alloc(memcg)
        vma = fam.vma.new(mm, STACK_TOP_MAX - PAGE_SIZE, STACK_TOP_MAX, VM_STACK_FLAGS | VM_STACK_INCOMPLETE_SETUP,
                          (STACK_TOP_MAX - PAGE_SIZE) >> PAGE_SHIFT, None, "[stack]")
        fam.lock.lock(mm, True)
        self._insert_vm_struct(mm, vma, vma_link=True)
        fam.lock.unlock(mm, True)
        path.leave("alloc_bprm")
        pages = max(1, arg_pages)
        calls = [0, 0] + list(range(pages))     # the filename's, envp's first, then each page
        for i in calls:
            addr = STACK_TOP_MAX - (i + 1) * PAGE_SIZE
            path.enter("get_arg_page", 0, addr, 1)
            if addr < vma.start:
                fam.lock.lock(mm, True)
                path.enter("expand_downwards", vma.addr, addr)
                vma.start = addr
                mm.resort()
                fam.vma.store(mm, vma.start, vma.end, vma.addr)
                path.leave("expand_downwards")
                fam.lock.downgrade(mm)
            else:
                fam.lock.lock(mm, False)
            fam.faults.gup_fault(mm, vma, addr, True, False)
            fam.lock.unlock(mm, False)
            path.leave("get_arg_page")
        path.end()
        self.pending[id(t)] = mm

    def abandon(self, t: Thread) -> None:
        """The exec failed after bprm_mm_init(): free_bprm() puts the new mm."""
        mm = self.pending.pop(id(t), None)
        if mm is not None:
            self.fam.life.mmput(mm)

    # ------------------------------------------------------------------ past it
    def exec_mmap(self, t: Thread) -> bool:
        """exec_mmap(): the task switches to the new mm (activate_mm()), the old one is
        put (its last user gone: exit_mmap()).  False when no new mm was built."""
        fam = self.fam
        path = self.path
        mm = self.pending.pop(id(t), None)
        if mm is None:
            return False
        old = t.mm
        path.begin("begin_new_exec")
        if old is not None:
            path.call("exec_mm_release")
            fam.lock.lock(old, False)
        fam.tlb.activate(mm)
        t.mm = mm
        if old is not None:
            fam.lock.unlock(old, False)
            path.call("mm_update_next_owner")
            fam.life.mmput(old)
        path.end()
        return True

    def load_image(self, t: Thread, maps: list[MapLine], filename: str) -> None:
        """load_elf_binary() past begin_new_exec(): the mappings of /proc/PID/maps."""
        mm = t.mm
        if mm is None or not maps:
            return
        fam = self.fam
        path = self.path
        path.begin("load_elf_binary")
        path.call(("setup_new_exec", "arch_pick_mmap_layout"))
        stack = next((ln for ln in maps if ln.path == "[stack]"), None)
        below = [ln for ln in maps if stack is None or ln.end <= stack.start]
        mm.mmap_base = max((ln.end for ln in below if ln.start >= 0x7F0000000000), default=0) \
            or max((ln.end for ln in below), default=0)
        files = [ln for ln in maps if ln.ino]
        binary = min(files, key=lambda ln: ln.start).ino if files else 0
        image = [ln for ln in maps if ln.ino == binary and binary]
        interp = [ln for ln in files if ln.ino != binary]
        special = [ln for ln in maps if ln.path.startswith("[v")]
        for ln in image:
            self._elf_map(mm, ln, fixed=True, span=0)
        if image:
            end = max(ln.end for ln in image)
            bss = next((ln for ln in maps if ln.start == end and not ln.ino and not ln.path), None)
            if bss is not None:
                path.enter("vm_brk_flags", bss.start, bss.end - bss.start, 0)
                fam.vma.brk_map(mm, bss.start, bss.end)
                path.leave("vm_brk_flags")
        heap = next((ln for ln in maps if ln.path == "[heap]"), None)
        if heap is not None:
            mm.start_brk, mm.brk = heap.start, heap.end
            fam.vma.brk_map(mm, heap.start, heap.end, "[heap]")
        if interp:
            lo, hi = min(ln.start for ln in interp), max(ln.end for ln in interp)
            for i, ln in enumerate(sorted(interp, key=lambda x: x.start)):
                self._elf_map(mm, ln, fixed=i > 0, span=hi - lo if i == 0 else 0)
        if special:
            self._vdso(mm, special)
        if stack is not None:
            self._setup_arg_pages(mm, stack)
        path.end()

    def _file(self, ln: MapLine) -> MappedFile:
        return self.fam.mapped_file(ln.path.rpartition("/")[2] or ln.path, ln.dev, ln.ino, ln.path)

    def _elf_map(self, mm: MmStruct, ln: MapLine, fixed: bool, span: int) -> None:
        """elf_load() → elf_map() → vm_mmap() of one segment (the first segment of a
        position-independent interpreter is placed by get_unmapped_area())."""
        fam = self.fam
        path = self.path
        f = self._file(ln)
        length = span or (ln.end - ln.start)
        flags = MAP_PRIVATE | (MAP_FIXED_NOREPLACE if fixed else 0)
        path.enter("elf_load", 0, ln.start, 0, ln.prot, flags)
        path.enter("vm_mmap", 0, 0 if not fixed else ln.start, length, ln.prot, flags, ln.pgoff << PAGE_SHIFT)
        path.enter("vm_mmap_pgoff", 0, 0 if not fixed else ln.start, length, ln.prot, flags, ln.pgoff)
        fam.vm_mmap_pgoff(mm, f, 0 if not fixed else ln.start, ln.end - ln.start, ln.prot, flags, ln.pgoff,
                          ln.start, True, length)
        path.leave("vm_mmap_pgoff")
        path.leave("vm_mmap")
        path.leave("elf_load")

    def _insert_vm_struct(self, mm: MmStruct, vma: Vma, vma_link: bool) -> None:
        """insert_vm_struct(): ``vma`` into the mm's list and maple tree; ``vma_link``:
        the vma_link() frame under it is on the path."""
        path = self.path
        path.enter("insert_vm_struct", mm.addr, vma.addr)
        if vma_link:
            path.enter("vma_link", mm.addr, vma.addr)
        mm.insert(vma)
        self.fam.vma.store(mm, vma.start, vma.end, vma.addr)
        if vma_link:
            path.leave("vma_link")
        path.leave("insert_vm_struct")

    def _vdso(self, mm: MmStruct, special: list[MapLine]) -> None:
        """map_vdso(): one unmapped area for the data pages and the text, then each
        installed as a special mapping."""
        fam = self.fam
        path = self.path
        lo, hi = min(ln.start for ln in special), max(ln.end for ln in special)
        path.enter("arch_setup_additional_pages", 0, 1)
        path.enter("map_vdso", 0, 0)
        fam.lock.lock(mm, True)
        fam.vma.get_unmapped_area(mm, 0, hi - lo, 0, 0, None, lo)
        for ln in sorted(special, key=lambda x: x.path != "[vdso]"):
            path.enter("_install_special_mapping", mm.addr, ln.start, ln.end - ln.start,
                       VDSO_FLAGS if ln.path == "[vdso]" else VVAR_FLAGS, 0)
            vma = fam.vma.new(mm, ln.start, ln.end, VDSO_FLAGS if ln.path == "[vdso]" else VVAR_FLAGS,
                              0, None, ln.path)
            self._insert_vm_struct(mm, vma, vma_link=False)
            path.leave("_install_special_mapping")
        fam.lock.unlock(mm, True)
        path.leave("map_vdso")
        path.leave("arch_setup_additional_pages")

    def _setup_arg_pages(self, mm: MmStruct, stack: MapLine) -> None:
        """setup_arg_pages(): the stack VMA moved down to its random top (its pages and
        page tables with it: relocate_vma_down()), then grown to its first 128 KiB."""
        fam = self.fam
        path = self.path
        vma = next((v for v in mm.vmas if v.name == "[stack]"), None)
        if vma is None:
            return
        path.enter("setup_arg_pages", 0, stack.end, 0)
        fam.lock.lock(mm, True)
        shift = vma.end - stack.end
        if shift > 0:
            old_start, old_end = vma.start, vma.end
            path.enter("relocate_vma_down", vma.addr, shift)
            path.call("vma_expand")
            vma.start = old_start - shift
            mm.resort()
            fam.vma.store(mm, vma.start, old_end, vma.addr)
            path.enter("move_page_tables", vma.addr, old_start, vma.addr, vma.start, old_end - old_start)
            moved = {}
            for vpn, pfn in vma.pages.items():
                moved[vpn - (shift >> PAGE_SHIFT)] = pfn
                fam.memory.tables(mm, (vpn << PAGE_SHIFT) - shift)
            vma.pages = moved
            vma.anon = {v - (shift >> PAGE_SHIFT) for v in vma.anon}
            path.leave("move_page_tables")
            vma.end = old_end - shift
            fam.memory.release_tables(mm, vma.end, old_end)
            path.call("vma_shrink")
            fam.vma.store(mm, vma.end, old_end, 0, fn="")
            path.leave("relocate_vma_down")
        vma.flags &= ~VM_STACK_INCOMPLETE_SETUP
        path.call("mprotect_fixup")
        if stack.start < vma.start:
            path.enter("expand_stack_locked", vma.addr, stack.start)
            vma.start = stack.start
            mm.resort()
            fam.vma.store(mm, vma.start, vma.end, vma.addr)
            path.leave("expand_stack_locked")
        mm.start_stack = stack.end
        fam.lock.unlock(mm, True)
        path.leave("setup_arg_pages")

