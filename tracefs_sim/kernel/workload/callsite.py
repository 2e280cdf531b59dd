"""Function call sites of the simulated machine: every simulated kernel function passes
its ftrace call site (``__fentry__``) and any int3 kprobe inside its body.

The simulated code keeps a stack of return addresses per task (what a stack trace taken
inside shows) and hands each function's argument registers to the ftrace ops and kprobes
that are attached.  A disabled site costs one list lookup; with no site patched and no
int3 probe armed a whole call tree is skipped (it would leave no mark).

An ftrace callback may move the instruction pointer of the registers (IPMODIFY, as a
livepatch does): the ftrace trampoline returns there, so the function's own body does not
run; the code at the new address runs instead (``_jump``: a loaded module's function, or
another kernel function) and its return value is the call's.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..ftrace_ops import MCOUNT_INSN_SIZE
from ..mm import Regs
from .defs import Tree

if TYPE_CHECKING:
    from ..core import Kernel
    from ..ftrace import RetToken

# functions that only tail-call (jmp) the next one of a syscall's chain: no stack frame
TAIL_CALLS = ("x64_sys_call", "__x64_sys_read", "__x64_sys_write")
# return addresses below a syscall's first function: (symbol, offset)
SYSCALL_ENTRY_FRAMES = (("do_syscall_64", 0x82), ("entry_SYSCALL_64_after_hwframe", 0x76))

ArgsFn = Callable[[], tuple[int, ...]]
Frame = tuple[int, str, "RetToken | None"]


class CallSites:
    """The call sites of one kernel's simulated code."""

    def __init__(self, kernel: Kernel) -> None:
        self.k = kernel
        self._idx: dict[str, int] = {}
        self._sites: dict[str, int] = {}
        self._tail_sites: set[int] | None = None
        self._entry_sites: list[int] = []
        self.stacks: dict[int, list[int]] = {}      # id(task) -> return addresses
        # a function's argument registers in the current context, registered by the
        # parts of the machine that know them (the syscall model: vfs_read's file, count)
        self.args: dict[str, ArgsFn] = {}
        self.rets: dict[str, ArgsFn] = {}
        # set by _enter when a callback moved the ip: (new ip, the call's registers)
        self.jump: tuple[int, Regs] | None = None

    # ------------------------------------------------------------------ addresses
    def index(self, name: str) -> int:
        idx = self._idx.get(name)
        if idx is None:
            i = self.k.kallsyms.index_of(name)
            idx = -1 if i is None else i
            self._idx[name] = idx
        return idx

    def site(self, name: str) -> int:
        """A return address inside ``name`` (a call site of it: ``_RET_IP_``)."""
        addr = self._sites.get(name)
        if addr is None:
            ks = self.k.kallsyms
            base = ks.addr_of(name) or 0
            r = ks.lookup_addr(base) if base else None
            size = r[2] if r else 0x40
            addr = base + 0x10 + zlib.crc32(name.encode()) % max(1, size - 0x18) if base else 0
            self._sites[name] = addr
        return addr

    def ret_in(self, name: str, off: int) -> int:
        """``name+off``, kept inside the symbol (sizes of non-traceable symbols are
        reconstructed, smaller than the reference kernel's)."""
        base = self.sym(name)
        r = self.k.kallsyms.lookup_addr(base)
        size = r[2] if r else off + 8
        return base + (off if off < size else size - 8)

    def sym(self, name: str) -> int:
        return self.k.kallsyms.addr_of(name) or 0

    def args_for(self, name: str) -> tuple[int, ...]:
        """The argument registers of a call of ``name`` in the current context."""
        fn = self.args.get(name)
        return fn() if fn is not None else ()

    # ------------------------------------------------------------------ entry / exit
    def armed(self) -> bool:
        """Can a function's entry do anything: an ftrace site patched, or an int3
        kprobe armed inside some function body?"""
        return bool(self.k.ftrace.nr_active or self.k.kprobes.nr_bp_armed)

    def _enter(self, idx: int, name: str, pip: int) -> RetToken | None:
        """Pass a function's ftrace call site: one list lookup when the site is off."""
        k = self.k
        stack = self.stacks.setdefault(id(k.sched.current), [])
        stack.append(self._sites.get(name) or self.site(name))  # a return address in it
        ft = k.ftrace
        kp = k.kprobes
        bp = idx in kp.bp_funcs
        if ft.site_func[idx] is None and not bp:
            return None
        regs = Regs(self.args_for(name), stack=tuple(reversed(stack[-8:])))
        ret_ip = ft.ips[idx] + MCOUNT_INSN_SIZE     # where ``call __fentry__`` returns
        regs.ip = ret_ip
        token = ft.func_entry(idx, pip, regs)
        if regs.ip != ret_ip:     # a callback moved the ip: the body does not run
            self.jump = (regs.ip, regs)
        elif bp:  # int3 kprobes inside the function body fire after the ftrace site
            kp.breakpoint_hit(idx, pip, regs)
        return token

    def _exit(self, idx: int, name: str, token: RetToken | None, retval: int | None = None) -> None:
        k = self.k
        stack = self.stacks.get(id(k.sched.current))
        if stack:
            stack.pop()
        if token is not None:
            if retval is None:
                fn = self.rets.get(name)
                retval = fn()[0] if fn is not None else 0
            k.ftrace.func_exit(idx, token, retval)

    def _jump(self, name: str, pip: int) -> int:
        """Run the code the ip was moved to in place of ``name``'s body; its return
        value.  A module function gets the call's argument registers (as many as
        ``name`` has parameters); a kernel function is entered through its own ftrace
        site, returning to ``name``'s caller (a jump, not a call)."""
        assert self.jump is not None
        addr, regs = self.jump
        self.jump = None
        k = self.k
        if k.modules.text_at(addr) is not None:
            proto = k.btf.func_proto(name)
            nargs = len(proto.params) if proto is not None else len(regs.args)
            return k.modules.run_text(addr, regs, nargs)
        i = k.ftrace.ftrace_location(addr)
        if i is None:
            raise RuntimeError(f"{name}: ftrace callback moved the ip to {addr:#x}, "
                               "which is no function")
        self.call(k.ftrace.names[i], pip)
        return 0

    def _pip(self, parent: str | int | None) -> int:
        """The return address of a call from ``parent`` (a function name, or the
        address itself: a call from a module function)."""
        if isinstance(parent, int):
            return parent
        pidx = self.index(parent) if parent else -1
        return self.k.kallsyms.addrs[pidx] + 0x2B if pidx >= 0 else 0

    def call(self, tree: Tree | str, parent: str | int | None = None) -> None:
        """Run one function (and its callees) through the ftrace call sites.  With no
        site patched and no int3 probe armed the whole call returns having left no
        mark (its frames are popped again), so it is skipped: a disabled call site
        costs almost nothing."""
        if not self.armed():
            return
        if isinstance(tree, str):
            name, kids = tree, ()
        else:
            name, kids = tree[0], tree[1:]
        idx = self.index(name)
        if idx < 0:
            for kid in kids:
                self.call(kid, parent)
            return
        pip = self._pip(parent)
        token = self._enter(idx, name, pip)
        if self.jump is not None:
            self._exit(idx, name, token, self._jump(name, pip))
            return
        for kid in kids:
            self.call(kid, name)
        self._exit(idx, name, token)

    def enter_chain(self, names: tuple[str, ...], parent: str | None = None) -> list[Frame]:
        """Enter nested functions without returning (the syscall is in progress)."""
        frames: list[Frame] = []
        k = self.k
        if not self.armed():
            # no site patched: only the frames (a stack trace taken inside shows them)
            stack = self.stacks.setdefault(id(k.sched.current), [])
            sites = self._sites
            for name in names:
                idx = self.index(name)
                if idx >= 0:
                    stack.append(sites.get(name) or self.site(name))
                    frames.append((idx, name, None))
            return frames
        for name in names:
            idx = self.index(name)
            if idx < 0:
                continue
            pip = self._pip(parent)
            frames.append((idx, name, self._enter(idx, name, pip)))
            if self.jump is not None:
                # the replacement runs now; the rest of the chain was the original body
                self._jump(name, pip)
                break
            parent = name
        return frames

    def leave_chain(self, frames: list[Frame]) -> None:
        for idx, name, token in reversed(frames):
            self._exit(idx, name, token)

    def current_stack(self) -> list[int]:
        """Return addresses of the current task's simulated call chain, innermost first,
        as the ORC unwinder reports them: tail calls leave no frame (``x64_sys_call``
        jumps to ``__x64_sys_read``, which jumps to ``ksys_read``) and a syscall's
        chain sits on ``do_syscall_64`` and the entry code."""
        chain = self.stacks.get(id(self.k.sched.current))
        if not chain:
            return []
        tail = self._tail_sites
        if tail is None:
            tail = self._tail_sites = {a for a in map(self.site, TAIL_CALLS) if a}
            self._entry_sites = [self.ret_in(n, off) for n, off in SYSCALL_ENTRY_FRAMES if self.sym(n)]
        out = [a for a in reversed(chain) if a not in tail]
        if chain[0] == self.site("x64_sys_call"):
            out += self._entry_sites
        return out

    def forget(self, task_id: int) -> None:
        self.stacks.pop(task_id, None)
