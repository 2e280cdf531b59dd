"""Return hooks (kernel/trace/rethook.c), the 6.12 exit path of fprobe.

A ``Rethook`` owns a pool of at most ``num`` ``RethookNode`` (the kernel's objpool,
preallocated; here a node is made the first time the pool needs it, so a probe on
10,000 functions does not build 10,000 × CPUs × 2 nodes up front: which calls get a node
is the same).  At a function entry the user takes a node (``try_get``; None when all
``num`` are in use, which fprobe counts in ``nmissed``) and hooks it on the current task
(``rethook_hook``): the kernel's ``current->rethooks`` llist is the task's ``ret_stack``
of kernel/ftrace.py here, which runs the trampoline frame when the call returns.
``rethook_trampoline_handler`` gives the handler the pt_regs of the return (the return
value in ``ax``, ``ip`` the real return address, as arch_rethook_trampoline_callback
leaves them; the argument registers are the entry's),
calls the handler with the node, the rethook's ``data`` and the return address, then
``recycle``s the node into its pool.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .ftrace_ops import KERNEL_CS
from .mm import Regs

if TYPE_CHECKING:
    from .sched import Task

D = TypeVar("D")


class RethookNode(Generic[D]):
    """``struct rethook_node`` plus the fprobe_rethook_node payload."""

    __slots__ = ("rethook", "ret_addr", "entry_ip", "entry_parent_ip", "data", "regs", "frame")

    def __init__(self, rethook: Rethook[D], data_size: int) -> None:
        self.rethook = rethook
        self.ret_addr = 0
        self.entry_ip = 0
        self.entry_parent_ip = 0
        self.data = bytearray(data_size)
        self.regs: Regs | None = None    # the entry's registers (what the return keeps)
        # its return-hook frame on the task's ret_stack, made once: a node is on at most
        # one stack at a time, so hooking it allocates nothing
        self.frame: list[Any] = [rethook_trampoline_handler, self]


# rethook_handler_t: (node, rethook->data, correct return address, pt_regs at return)
RethookHandler = Callable[[RethookNode[D], D, int, Regs], None]


class Rethook(Generic[D]):
    """``struct rethook``: handler, private data (the owner: an fprobe) and the pool."""

    def __init__(self, data: D, handler: RethookHandler[D], data_size: int, num: int) -> None:
        self.data = data
        self.handler: RethookHandler[D] | None = handler
        self.num = num
        self.data_size = data_size
        self.pool: list[RethookNode[D]] = []    # free nodes
        self.nr_made = 0

    def try_get(self) -> RethookNode[D] | None:
        """``rethook_try_get``: None when stopping or when all nodes are in use."""
        if self.handler is None:
            return None
        pool = self.pool
        if pool:
            return pool.pop()
        if self.nr_made < self.num:
            self.nr_made += 1
            return RethookNode(self, self.data_size)
        return None

    def recycle(self, node: RethookNode[D]) -> None:
        """``rethook_recycle``: back to the pool, or dropped once the rethook is freed."""
        node.regs = None
        if self.handler is not None:
            self.pool.append(node)

    def stop(self) -> None:
        self.handler = None

    def free(self) -> None:
        self.stop()


def rethook_alloc(data: D, handler: RethookHandler[D] | None, data_size: int,
                  num: int) -> Rethook[D] | int:
    """Returns a Rethook or -EINVAL (no handler or num <= 0)."""
    if handler is None or num <= 0:
        return -errno.EINVAL
    return Rethook(data, handler, data_size, num)


def rethook_hook(node: RethookNode[Any], regs: Regs | None, ret_addr: int, task: Task) -> None:
    """rethook_hook(): hook the return of the running function (``ret_addr`` is the
    return address arch_rethook_prepare() replaces on the stack)."""
    node.ret_addr = ret_addr
    node.regs = regs
    task.ret_stack.append(node.frame)


def rethook_trampoline_handler(frame: list[Any], retval: int) -> None:
    """The function returned through the rethook trampoline (frame = [this, node])."""
    node: RethookNode[Any] = frame[1]
    rh = node.rethook
    handler = rh.handler
    if handler is not None:
        # the pt_regs of the return: the call's registers (one object per call, done
        # with once it returns) with the return value and the real return address
        regs = node.regs
        if regs is None:
            regs = Regs()
        regs.ax = retval
        regs.ip = node.ret_addr          # instruction_pointer_set(regs, correct_ret_addr)
        regs.cs = KERNEL_CS
        handler(node, rh.data, node.ret_addr, regs)
    rh.recycle(node)
