"""Return hooks (kernel/trace/rethook.c), the 6.12 exit path of fprobe.

A ``Rethook`` owns a fixed pool of ``RethookNode`` (objpool of ``num`` nodes).  At a
function entry the user takes a node (``try_get``; None when the pool is exhausted,
which fprobe counts in ``nmissed``) and hooks it on the current task: the kernel's
``current->rethooks`` llist is the task's ``ret_stack`` of kernel/ftrace.py here
(``Ftrace.push_ret_hook``), which runs the trampoline frame when the call returns.
The trampoline calls the handler with the node, the rethook's ``data`` and the real
return address, then ``recycle``s the node into its pool.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Generic, TypeVar

from .mm import PtRegs

D = TypeVar("D")


class RethookNode(Generic[D]):
    """``struct rethook_node`` plus the fprobe_rethook_node payload."""

    __slots__ = ("rethook", "ret_addr", "entry_ip", "entry_parent_ip", "data")

    def __init__(self, rethook: Rethook[D], data_size: int) -> None:
        self.rethook = rethook
        self.ret_addr = 0
        self.entry_ip = 0
        self.entry_parent_ip = 0
        self.data = bytearray(data_size)


# rethook_handler_t: (node, rethook->data, correct return address, pt_regs at return)
RethookHandler = Callable[[RethookNode[D], D, int, PtRegs], None]


class Rethook(Generic[D]):
    """``struct rethook``: handler, private data (the owner: an fprobe) and the pool."""

    def __init__(self, data: D, handler: RethookHandler[D], data_size: int, num: int) -> None:
        self.data = data
        self.handler: RethookHandler[D] | None = handler
        self.num = num
        self.pool: list[RethookNode[D]] = [RethookNode(self, data_size) for _ in range(num)]

    def try_get(self) -> RethookNode[D] | None:
        """``rethook_try_get``: None when stopping or when all nodes are in use."""
        if self.handler is None or not self.pool:
            return None
        return self.pool.pop()

    def recycle(self, node: RethookNode[D]) -> None:
        """``rethook_recycle``: back to the pool, or dropped once the rethook is freed."""
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
