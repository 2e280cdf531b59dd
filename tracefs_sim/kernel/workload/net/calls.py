"""How the network paths pass their functions' call sites and set their context.

A path is written as the kernel's code is: ``enter`` a function (its ftrace call site,
with its argument registers), run what it does (events, calls), ``leave`` it (its return
value).  The paths always run inside a traced task's syscall (``SyscallCtx``): its
registers and return values are that syscall's (``Syscalls.open``/``close``), and a
function the reference kernel cannot trace is skipped without unbalancing the stack.

``irq`` sets the record context (irq flags, preempt depth) of the code that follows, as
the kernel's locks and bottom-half sections do: a tracepoint records what its call site
had.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ..defs import Tree

if TYPE_CHECKING:
    from .. import Workload
    from ..syscalls import SyscallCtx


class Calls:
    """Function entries and returns of the network paths (one per Workload)."""

    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        self.s = wl.syscalls

    def enter(self, ctx: SyscallCtx, name: str, *regs: int) -> None:
        """``name`` is called (from the innermost function entered) with ``regs``."""
        ctx.regs[name] = regs
        self.s.open(ctx, name)

    def leave(self, ctx: SyscallCtx, name: str, ret: int = 0) -> None:
        """``name``, the innermost function entered, returns ``ret`` (nothing to do for a
        function the reference kernel cannot trace: it left no frame)."""
        ctx.rets[name] = ret
        frames = ctx.frames
        if frames and frames[-1][1] == name:
            self.s.close(ctx, 1)

    def leaf(self, ctx: SyscallCtx, name: str, *regs: int, ret: int = 0) -> None:
        """A call of ``name`` (no callee of interest) that returns ``ret``."""
        if not self.wl.sites.armed():
            return
        ctx.regs[name] = regs
        ctx.rets[name] = ret
        self.s.call(ctx, name)

    def tree(self, ctx: SyscallCtx, tree: Tree) -> None:
        """A call tree whose registers are set already (or do not matter)."""
        self.s.call(ctx, tree)

    @contextmanager
    def irq(self, flags: int, depth: int) -> Iterator[None]:
        """The code inside runs with record flags ``flags`` and preempt depth ``depth``."""
        sched = self.wl.k.sched
        saved = sched.irq_flags, sched.preempt_count
        sched.irq_flags, sched.preempt_count = flags, depth
        try:
            yield
        finally:
            sched.irq_flags, sched.preempt_count = saved
