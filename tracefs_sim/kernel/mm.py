"""Simulated memory: the kernel objects that probes dereference, and the registers.

Probe fetch arguments read memory (``+0($arg1)``, ``$arg1->f_path.dentry->d_name.name``,
``:string``, ``%pd``).  The workload builds the objects it passes to functions — a
``struct file`` whose ``f_path.dentry->d_name.name`` is the accessed file's name, a
``struct dentry``, user buffers — at the offsets BTF gives for the reference kernel, so
those fetches return what they would on the real kernel.  Anything else faults.

``Regs`` is the pt_regs/ftrace_regs of a probed call: x86-64 argument registers
(di, si, dx, cx, r8, r9), the return value (ax), a stack and a stack pointer.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Callable
from typing import Protocol

from .btf import BTF
from .lib import MASK64

KERNEL_HEAP = 0xFFFF_8881_0000_0000
PATH_MAX = 4096
TASK_SIZE_MAX = 0x0000_7FFF_FFFF_F000   # x86-64 user space ends here
MAX_FILE_OBJECTS = 4096   # struct file objects kept for names seen (oldest freed first)
USER_BASE = 0x0000_7FFC_0000_0000
STACK_BASE = 0xFFFF_C900_0000_0000

ARG_REGS = ("di", "si", "dx", "cx", "r8", "r9")


class PtRegs(Protocol):
    """What probe handlers read of a probed context (pt_regs / ftrace_regs at a function
    entry or return): ``Regs`` below, fprobe's return view, or a test's fake."""

    def get_kernel_argument(self, n: int) -> int: ...

    def return_value(self) -> int: ...

    def kernel_stack_nth(self, n: int) -> int: ...

    def stack_pointer(self) -> int: ...


class Memory:
    """Sparse simulated memory: objects allocated at increasing addresses."""

    def __init__(self, btf: BTF) -> None:
        self._btf = btf
        self._starts: list[int] = []
        self._objs: list[bytearray] = []
        self._user: list[bool] = []
        self._next = {False: KERNEL_HEAP, True: USER_BASE}
        self._offsets: dict[str, int] = {}
        self._files: dict[str, tuple[int, int, int]] = {}   # name -> file, dentry, name
        self._strings: dict[str, int] = {}
        self._path_bufs: dict[int, int] = {}
        self._views: dict[int, list[tuple[int, bytearray]]] = {}   # tgid -> captured memory
        self.current_tgid: Callable[[], int] = lambda: 0          # set by the Kernel

    # ---------------------------------------------------------------- allocation
    def alloc(self, size: int, user: bool = False, data: bytes = b"") -> int:
        addr = self._next[user]
        self._next[user] = addr + ((size + 63) & ~63) + 64
        obj = bytearray(size)
        obj[:len(data)] = data
        i = bisect.bisect(self._starts, addr)
        self._starts.insert(i, addr)
        self._objs.insert(i, obj)
        self._user.insert(i, user)
        return addr

    def map(self, addr: int, data: bytes) -> None:
        """Place a static kernel object (a .rodata/.data symbol) at its link address."""
        if self._find(addr) is not None:
            return
        i = bisect.bisect(self._starts, addr)
        self._starts.insert(i, addr)
        self._objs.insert(i, bytearray(data))
        self._user.insert(i, False)

    def kernel_string(self, text: str) -> int:
        """A NUL-terminated kernel string (one per distinct text: names passed to calls)."""
        addr = self._strings.get(text)
        if addr is None:
            raw = text.encode("utf-8", "surrogateescape")
            addr = self._strings[text] = self.alloc(len(raw) + 1, data=raw + b"\0")
        return addr

    def _find(self, addr: int) -> tuple[bytearray, int, bool] | None:
        i = bisect.bisect(self._starts, addr) - 1
        if i < 0:
            return None
        start = self._starts[i]
        obj = self._objs[i]
        if addr - start >= len(obj):
            return None
        return obj, addr - start, self._user[i]

    def write(self, addr: int, data: bytes) -> None:
        hit = self._find(addr)
        if hit is None:
            raise ValueError(f"write to unmapped {addr:#x}")
        obj, off, _ = hit
        obj[off:off + len(data)] = data

    def put_u64(self, addr: int, value: int) -> None:
        self.write(addr, struct.pack("<Q", value & MASK64))

    # ---------------------------------------------------------------- ProbeMem
    def set_user_view(self, tgid: int, regions: dict[int, bytes] | None) -> None:
        """The user memory of traced host process ``tgid`` that its syscall in progress
        passed (the strings and structs the tracer read at the entry): probes reading a
        user address while one of its threads runs read these bytes.  None forgets them."""
        if regions:
            self._views[tgid] = [(a, bytearray(d)) for a, d in regions.items()]
        else:
            self._views.pop(tgid, None)

    def _view_find(self, addr: int) -> tuple[bytearray, int] | None:
        regions = self._views.get(self.current_tgid())
        if regions is not None:
            for start, data in regions:
                if 0 <= addr - start < len(data):
                    return data, addr - start
        return None

    def _probe_find(self, addr: int, user: bool) -> tuple[bytearray, int] | None:
        """The object a probe's access at ``addr`` reaches, or None (a fault)."""
        if self._views and addr < TASK_SIZE_MAX:
            seen = self._view_find(addr)
            if seen is not None:
                return seen
        hit = self._find(addr)
        if hit is None:
            return None
        obj, off, is_user = hit
        return (obj, off) if is_user == (user or addr < TASK_SIZE_MAX) else None

    def read(self, addr: int, size: int, user: bool = False) -> bytes | None:
        """A probe's read: ``user`` for ``+u``/``ustring`` (a kernel address faults).  A
        kernel-mode read below TASK_SIZE reads user memory, as x86-64's probe_mem_read()
        and fetch_store_string() do (CONFIG_ARCH_HAS_NON_OVERLAPPING_ADDRESS_SPACE)."""
        hit = self._probe_find(addr, user)
        if hit is None or hit[1] + size > len(hit[0]):
            return None
        obj, off = hit
        return bytes(obj[off:off + size])

    def read_str(self, addr: int, maxlen: int, user: bool = False) -> bytes | None:
        hit = self._probe_find(addr, user)
        if hit is None:
            return None
        obj, off = hit
        raw = bytes(obj[off:off + maxlen])
        nul = raw.find(b"\0")
        if nul < 0:
            return raw[:maxlen - 1]
        return raw[:nul]

    # ---------------------------------------------------------------- objects
    def offset(self, struct_name: str, path: str) -> int:
        """Byte offset of a member chain without '->' (e.g. ``f_path.dentry``)."""
        key = f"{struct_name}.{path}"
        off = self._offsets.get(key)
        if off is None:
            # the simulator's own objects: a chain BTF lacks is a bug (KeyError/ValueError)
            t = self._btf.find_type(struct_name)
            if t is None:
                raise KeyError(f"BTF has no struct {struct_name}")
            off = self._offsets[key] = self._btf.member_path(t, path)[1]
        return off

    def file_object(self, name: str) -> tuple[int, int]:
        """A ``struct file`` (and its dentry) for a file called ``name``: (file, dentry)."""
        hit = self._files.get(name)
        if hit is not None:
            return hit[0], hit[1]
        raw = name.encode("utf-8", "surrogateescape")
        name_addr = self.alloc(len(raw) + 1, data=raw + b"\0")
        dentry = self.alloc(256)
        self.put_u64(dentry + self.offset("dentry", "d_name.name"), name_addr)
        self.write(dentry + self.offset("dentry", "d_name.len"), struct.pack("<I", len(raw)))
        f = self.alloc(256)
        self.put_u64(f + self.offset("file", "f_path.dentry"), dentry)
        self._files[name] = (f, dentry, name_addr)
        if len(self._files) > MAX_FILE_OBJECTS:   # the dcache shrinks: free the oldest
            for addr in self._files.pop(next(iter(self._files))):
                self.free(addr)
        return f, dentry

    def free(self, addr: int) -> None:
        """Release the object that starts at ``addr`` (later reads of it fault)."""
        i = bisect.bisect_left(self._starts, addr)
        if i < len(self._starts) and self._starts[i] == addr:
            del self._starts[i], self._objs[i], self._user[i]

    def user_string(self, text: bytes) -> int:
        return self.alloc(len(text) + 1, user=True, data=text + b"\0")

    def user_path(self, path: str, slot: int = 0) -> int:
        """A pathname in user memory: the caller's path buffer (PATH_MAX bytes, one per
        argument ``slot``), rewritten by each call as a process reuses its buffer, so
        any number of distinct paths costs no memory."""
        addr = self._path_bufs.get(slot)
        if addr is None:
            addr = self._path_bufs[slot] = self.alloc(PATH_MAX, user=True)
        raw = path.encode("utf-8", "surrogateescape")[:PATH_MAX - 1]
        self.write(addr, raw + b"\0")
        return addr


class Regs:
    """pt_regs of a probed call: argument registers, return value, stack.  ``cs`` is
    what ftrace's trampoline stored (0 unless it saved every register: ftrace_get_regs)."""

    __slots__ = ("args", "ax", "sp", "stack", "ip", "cs")

    def __init__(self, args: tuple[int, ...] = (), sp: int = STACK_BASE + 0x3F00,
                 stack: tuple[int, ...] = ()) -> None:
        self.args = args
        self.ax = 0
        self.sp = sp
        self.stack = stack
        self.ip = 0
        self.cs = 0

    def get_kernel_argument(self, n: int) -> int:
        return self.args[n] if 0 <= n < len(self.args) else 0

    def return_value(self) -> int:
        return self.ax

    def kernel_stack_nth(self, n: int) -> int:
        return self.stack[n] if 0 <= n < len(self.stack) else 0

    def stack_pointer(self) -> int:
        return self.sp

    def reg(self, name: str) -> int:
        if name in ARG_REGS:
            return self.get_kernel_argument(ARG_REGS.index(name))
        if name == "ax":
            return self.ax
        if name == "sp":
            return self.sp
        if name == "ip":
            return self.ip
        return 0
