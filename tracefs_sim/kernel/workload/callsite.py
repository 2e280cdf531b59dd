"""Function call sites of the simulated machine: every simulated kernel function passes
its ftrace call site (``__fentry__``) and any int3 kprobe inside its body.

Each task keeps a stack of the functions it is in, each with the return address its
call left (its ``parent_ip``).  A return address is always inside the caller's body at
an offset the caller has (kallsyms gives each symbol's size): ``call_ret(caller,
callee)``.  A call the kernel compiles as a jump (``TAIL_CALLS``: ``return f(args)`` with
nothing left to do) leaves no frame: the callee's parent_ip is the tail-caller's own,
so ``ksys_read <-do_syscall_64`` as on the real kernel, and the tail-caller is absent
from stack traces.  A chain's first function gets the return address of the code that
really calls it (``ROOT_FRAMES``: do_syscall_64 for ``x64_sys_call``), and stack traces
continue below it as the ORC unwinder does.

The argument registers of each function are handed to the ftrace ops and kprobes that
are attached.  A disabled site costs one list lookup; a call tree none of whose
functions has a patched site or an armed int3 probe is skipped (it would leave no mark),
whatever other functions' sites do.

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
from .defs import Tree, tree_names

if TYPE_CHECKING:
    from ..core import Kernel
    from ..ftrace import RetToken

CALL_INSN_SIZE = 5
LIVE_CACHED = 4096   # code paths whose liveness is kept (CallSites.live)

# Calls the reference kernel compiles as jumps (sibling calls), caller -> the callees it
# jumps to (None: every callee).  Read off the 6.12 source of the functions the
# simulator runs; the rule: the call is the function's ``return f(...)`` and every
# argument is in a register (no address of a local, nothing after it), and the
# SYSCALL_DEFINE wrappers (__x64_sys_X -> __se_sys_X -> __do_sys_X) are one function
# once the two static inline layers are inlined (arch/x86/include/asm/syscall_wrapper.h;
# asmlinkage_protect() is empty on x86-64).
TAIL_CALLS: dict[str, frozenset[str] | None] = {
    # arch/x86/entry/syscall_64.c: switch (nr) { case N: return __x64_sys_X(regs); }
    "x64_sys_call": None,
    # fs/read_write.c SYSCALL_DEFINE3(read|write): return ksys_read|ksys_write(fd, buf, count)
    "__x64_sys_read": frozenset({"ksys_read"}),
    "__x64_sys_write": frozenset({"ksys_write"}),
    # fs/open.c SYSCALL_DEFINE3(open): return do_sys_open(AT_FDCWD, filename, flags, mode)
    # (do_sys_open() itself passes &how: a call); SYSCALL_DEFINE2(access):
    # return do_faccessat(AT_FDCWD, filename, mode, 0)
    "__x64_sys_open": frozenset({"do_sys_open"}),
    "__x64_sys_access": frozenset({"do_faccessat"}),
    # fs/namei.c SYSCALL_DEFINE3(symlinkat) / DEFINE2(symlink):
    # return do_symlinkat(getname(oldname), newdfd, getname(newname)); getname():
    # return getname_flags(filename, 0)
    "__x64_sys_symlinkat": frozenset({"do_symlinkat"}),
    "__x64_sys_symlink": frozenset({"do_symlinkat"}),
    "getname": frozenset({"getname_flags"}),
    # arch/x86/kernel/sys_x86_64.c SYSCALL_DEFINE6(mmap): return ksys_mmap_pgoff(..., off >> PAGE_SHIFT)
    "__x64_sys_mmap": frozenset({"ksys_mmap_pgoff"}),
    # fs/stat.c vfs_fstatat(): return vfs_fstat(dfd, stat) (the AT_EMPTY_PATH case);
    # vfs_getattr(): return vfs_getattr_nosec(path, stat, request_mask, query_flags)
    "vfs_fstatat": frozenset({"vfs_fstat"}),
    "vfs_getattr": frozenset({"vfs_getattr_nosec"}),
    # net/core/datagram.c skb_free_datagram(): consume_skb(skb); net/ipv4/udp.c
    # skb_consume_udp(): ... __consume_stateless_skb(skb) last
    "skb_free_datagram": frozenset({"consume_skb"}),
    "skb_consume_udp": frozenset({"__consume_stateless_skb"}),
}

# The code below a chain's first function, innermost first: (symbol, return offset or
# None for one chosen inside the symbol).  The first is the root's caller, whose return
# address is the root's parent_ip; the rest only show in stack traces.
ROOT_FRAMES: dict[str, tuple[tuple[str, int | None], ...]] = {
    # do_syscall_64() -> x64_sys_call(); the entry code called do_syscall_64()
    "x64_sys_call": (("do_syscall_64", 0x82), ("entry_SYSCALL_64_after_hwframe", 0x76)),
    # DEFINE_IDTENTRY_SYSVEC(sysvec_apic_timer_interrupt): the handler
    # __sysvec_apic_timer_interrupt() runs on the irq stack, called from the idtentry
    # sysvec_apic_timer_interrupt(), which irq_exit_rcu() returns to as well
    "__sysvec_apic_timer_interrupt": (("sysvec_apic_timer_interrupt", None),
                                      ("asm_sysvec_apic_timer_interrupt", 0x1A)),
    "irq_exit_rcu": (("sysvec_apic_timer_interrupt", None), ("asm_sysvec_apic_timer_interrupt", 0x1A)),
    "irq_enter_rcu": (("sysvec_apic_timer_interrupt", None), ("asm_sysvec_apic_timer_interrupt", 0x1A)),
    # the call-function-single IPI and a device interrupt, from their idtentry
    "__sysvec_call_function_single": (("sysvec_call_function_single", None),
                                      ("asm_sysvec_call_function_single", 0x1A)),
    "__common_interrupt": (("common_interrupt", None), ("asm_common_interrupt", 0x26)),
}

# Return offsets seen in the reference kernel's output (the golden transcripts: a
# kretprobe's ``(ksys_read+0x6f/0xf0 <- vfs_read)``); other calls get an offset chosen
# inside the caller.
KNOWN_RETURNS: dict[tuple[str, str], int] = {
    ("ksys_read", "vfs_read"): 0x6F,
    ("__x64_sys_pread64", "vfs_read"): 0x98,
}

ArgsFn = Callable[[], tuple[int, ...]]
Frame = tuple[int, str, "RetToken | None"]


# How a function on a task's stack was entered: called, jumped to by the function below
# it (which then has no frame of its own), or first of a chain (ROOT_FRAMES below it)
CALLED, JUMPED, ROOT = 0, 1, 2
Entered = tuple[str, int, int]      # (name, parent_ip, how)


class CallSites:
    """The call sites of one kernel's simulated code."""

    def __init__(self, kernel: Kernel) -> None:
        self.k = kernel
        self._idx: dict[str, int] = {}
        self._rets: dict[tuple[str, str], int] = {}
        self._below: dict[str, list[int]] = {}
        self._links: dict[tuple[str | None, str], Entered] = {}
        # enter_chain() of a chain with no live site: (names, parent) -> its entries and frames
        self._chains: dict[tuple[tuple[str, ...], str | None], tuple[tuple[Entered, ...],
                                                                       tuple[Frame, ...]]] = {}
        self.stacks: dict[int, list[Entered]] = {}      # id(task) -> the functions it is in
        # a function's argument registers in the current context, registered by the
        # parts of the machine that know them (the syscall model: vfs_read's file, count)
        self.args: dict[str, ArgsFn] = {}
        self.rets: dict[str, ArgsFn] = {}
        # set by _enter when a callback moved the ip: (new ip, the call's registers)
        self.jump: tuple[int, Regs] | None = None
        # code path (tree or chain) -> has one of its functions a live site (see live());
        # valid for the (site_gen, bp_gen) it was computed at
        self._live: dict[Tree | str, bool] = {}
        self._live_gen = (-1, -1)

    # ------------------------------------------------------------------ addresses
    def index(self, name: str) -> int:
        idx = self._idx.get(name)
        if idx is None:
            i = self.k.kallsyms.index_of(name)
            idx = -1 if i is None else i
            self._idx[name] = idx
        return idx

    def sym(self, name: str) -> int:
        return self.k.kallsyms.addr_of(name) or 0

    def call_ret(self, caller: str, callee: str) -> int:
        """The return address a call of ``callee`` from ``caller`` leaves: inside
        ``caller``, past its ``__fentry__`` call (and a call of its own), before its end;
        the reference kernel's offset where its output showed it.  0 when ``caller`` is
        not a symbol."""
        key = (caller, callee)
        addr = self._rets.get(key)
        if addr is None:
            addr = self._rets[key] = self._place(caller, callee)
        return addr

    def _place(self, caller: str, callee: str) -> int:
        ks = self.k.kallsyms
        base = ks.addr_of(caller)
        if not base:
            return 0
        r = ks.lookup_addr(base)
        size = r[2] if r is not None and r[0] == caller else 0x40
        known = KNOWN_RETURNS.get((caller, callee))
        if known is not None and known < size:
            return base + known
        idx = self.index(caller)
        fentry_end = ks.addrs[idx] + MCOUNT_INSN_SIZE - base if idx >= 0 else 4
        lo = min(fentry_end + CALL_INSN_SIZE, size - 1)
        span = size - lo            # offsets lo .. size-1
        return base + lo + zlib.crc32(f"{caller}>{callee}".encode()) % max(1, span)

    def site(self, name: str) -> int:
        """A return address inside ``name`` (``_RET_IP_`` of a function it calls, when
        which one does not matter: a slab allocation's call_site)."""
        return self.call_ret(name, "")

    def ret_in(self, name: str, off: int) -> int:
        """``name+off``, kept inside the symbol."""
        base = self.sym(name)
        r = self.k.kallsyms.lookup_addr(base)
        size = r[2] if r else off + 8
        return base + (off if off < size else size - 1)

    def args_for(self, name: str) -> tuple[int, ...]:
        """The argument registers of a call of ``name`` in the current context."""
        fn = self.args.get(name)
        return fn() if fn is not None else ()

    # ------------------------------------------------------------------ parent_ip
    @staticmethod
    def is_tail_call(caller: str, callee: str) -> bool:
        callees = TAIL_CALLS.get(caller, frozenset())
        return callees is None or callee in callees

    def _root_pip(self, name: str) -> int:
        below = ROOT_FRAMES.get(name)
        if not below:
            return 0
        caller, off = below[0]
        return self.ret_in(caller, off) if off is not None else self.call_ret(caller, name)

    def _below_root(self, name: str) -> list[int]:
        """The return addresses under a root's caller (stack traces only)."""
        out = self._below.get(name)
        if out is None:
            frames = ROOT_FRAMES.get(name, ())
            out = []
            for (caller, off), (inner, _) in zip(frames[1:], frames, strict=False):
                if self.sym(caller):
                    out.append(self.ret_in(caller, off) if off is not None
                               else self.call_ret(caller, inner))
            self._below[name] = out
        return out

    def _link(self, stack: list[Entered], name: str, parent: str | int | None) -> Entered:
        """How ``name`` called from ``parent`` (None: a chain's first function; an
        address: a call from a module function, which returns there) sits on the stack:
        its parent_ip is the tail-caller's own when ``parent`` jumped to it."""
        if isinstance(parent, int):
            return (name, parent, CALLED)
        if parent is not None and self.is_tail_call(parent, name):
            for e in reversed(stack):
                if e[0] == parent:
                    return (name, e[1], JUMPED)
            return (name, self._root_pip(parent), JUMPED)
        key = (parent, name)
        e = self._links.get(key)
        if e is None:
            if parent is None:
                e = (name, self._root_pip(name), ROOT)
            else:
                e = (name, self.call_ret(parent, name), CALLED)
            self._links[key] = e
        return e

    # ------------------------------------------------------------------ entry / exit
    def armed(self) -> bool:
        """Can a function's entry do anything: an ftrace site patched, or an int3
        kprobe armed inside some function body?"""
        return bool(self.k.ftrace.nr_active or self.k.kprobes.nr_bp_armed)

    def live(self, tree: Tree | str) -> bool:
        """Has a function of ``tree`` (a code path, or a chain of names) a patched ftrace
        site or an armed int3 kprobe?  A tree is code with no tracepoint inside: one
        whose every site is off returns having left no mark (its frames are popped
        again, and only a live site inside it could have seen them), so it is skipped
        even while other functions' sites are patched (a kprobe on kernel_clone does
        not make every syscall walk its paths function by function)."""
        k = self.k
        ft, kp = k.ftrace, k.kprobes
        gen = (ft.site_gen, kp.bp_gen)
        if gen != self._live_gen:
            self._live.clear()
            self._live_gen = gen
        hit = self._live.get(tree)
        if hit is None:
            site, bp = ft.site_func, kp.bp_funcs
            hit = False
            for name in tree_names(tree):
                i = self.index(name)
                if i >= 0 and (site[i] is not None or i in bp):
                    hit = True
                    break
            if len(self._live) >= LIVE_CACHED:
                self._live.clear()
            self._live[tree] = hit
        return hit

    def _enter(self, idx: int, name: str, parent: str | int | None) -> RetToken | None:
        """Pass a function's ftrace call site: one list lookup when the site is off."""
        k = self.k
        stack = self.stacks.setdefault(id(k.sched.current), [])
        e = self._link(stack, name, parent)
        stack.append(e)
        ft = k.ftrace
        kp = k.kprobes
        bp = idx in kp.bp_funcs
        if ft.site_func[idx] is None and not bp:
            return None
        # the stack at the function's entry: its return address, then its callers'
        regs = Regs(self.args_for(name), stack=tuple(self._callers(stack)[:8]))
        ret_ip = ft.ips[idx] + MCOUNT_INSN_SIZE     # where ``call __fentry__`` returns
        regs.ip = ret_ip
        pip = e[1]
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

    def _top_pip(self) -> int:
        """The parent_ip of the function entered last on the current task."""
        return self.stacks[id(self.k.sched.current)][-1][1]

    def call(self, tree: Tree | str, parent: str | int | None = None) -> None:
        """Run one function (and its callees) through the ftrace call sites.  With no
        site of the tree live (``live``) the whole call returns having left no mark, so
        it is skipped: a disabled call site costs almost nothing."""
        if self.armed() and self.live(tree):
            self.walk(tree, parent)

    def walk(self, tree: Tree | str, parent: str | int | None) -> None:
        """``call`` once its caller knows the tree is live."""
        if isinstance(tree, str):
            name, kids = tree, ()
        else:
            name, kids = tree[0], tree[1:]
        idx = self.index(name)
        if idx < 0:
            for kid in kids:
                self.walk(kid, parent)
            return
        token = self._enter(idx, name, parent)
        if self.jump is not None:
            self._exit(idx, name, token, self._jump(name, self._top_pip()))
            return
        for kid in kids:
            self.walk(kid, name)
        self._exit(idx, name, token)

    def enter_chain(self, names: tuple[str, ...], parent: str | None = None) -> list[Frame]:
        """Enter nested functions without returning (the syscall is in progress)."""
        frames: list[Frame] = []
        k = self.k
        if not self.armed() or not self.live(names):
            # no site of the chain live: only the frames (a stack trace taken inside
            # shows them)
            stack = self.stacks.setdefault(id(k.sched.current), [])
            key = (names, parent)
            known = self._chains.get(key)
            if known is not None:
                stack += known[0]
                return list(known[1])
            entries: list[Entered] = []
            for name in names:
                idx = self.index(name)
                if idx >= 0:
                    e = self._link(stack, name, parent)
                    stack.append(e)
                    entries.append(e)
                    frames.append((idx, name, None))
                    parent = name
            if all(e[2] != JUMPED for e in entries):
                # no tail call (whose parent_ip depends on the stack below): the same
                # chain from the same caller always leaves the same entries
                self._chains[key] = (tuple(entries), tuple(frames))
            return frames
        for name in names:
            idx = self.index(name)
            if idx < 0:
                continue
            frames.append((idx, name, self._enter(idx, name, parent)))
            if self.jump is not None:
                # the replacement runs now; the rest of the chain was the original body
                self._jump(name, self._top_pip())
                break
            parent = name
        return frames

    def leave_chain(self, frames: list[Frame]) -> None:
        for idx, name, token in reversed(frames):
            self._exit(idx, name, token)

    # ------------------------------------------------------------------ stack traces
    def _callers(self, stack: list[Entered]) -> list[int]:
        """The return addresses on the stack, innermost first: each function's
        parent_ip, except for a function that jumped to the one above it (it has no
        frame), and under a chain's first function the code that runs it."""
        out: list[int] = []
        jumped_to = False
        for name, pip, how in reversed(stack):
            if not jumped_to and pip:
                out.append(pip)
            if how == ROOT:
                out += self._below_root(name)
            jumped_to = how == JUMPED
        return out

    def current_stack(self) -> list[int]:
        """The current task's stack as the ORC unwinder reports it from the ftrace call
        site of the innermost function: the address after its ``call __fentry__``,
        then the return addresses of its callers (tail-callers leave none) down to the
        entry code."""
        stack = self.stacks.get(id(self.k.sched.current))
        if not stack:
            return []
        idx = self.index(stack[-1][0])
        here = self.k.kallsyms.addrs[idx] + MCOUNT_INSN_SIZE
        return [here, *self._callers(stack)]

    def forget(self, task_id: int) -> None:
        self.stacks.pop(task_id, None)
