"""Return hooks (kernel/trace/rethook.c), the 6.12 exit path of fprobe.

A ``Rethook`` owns a fixed pool of ``RethookNode`` (objpool of ``num`` nodes).  At a
function entry the user takes a node (``try_get``; None when the pool is exhausted,
which fprobe counts in ``nmissed``) and ``hook``s it: the node remembers the real
return address and the frame, and is pushed on the current task's rethook list (the
kernel's ``current->rethooks`` llist; here ``RethookCore.task_lists[pid]``).

When the function returns the simulated trampoline runs: ``RethookCore.trampoline``
finds the nodes for that frame, calls each one's handler with the correct return
address, then recycles them into their pools.  The workload calls it on every return
from a frame whose task has pending nodes (``RethookCore.pending(pid, frame)``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

RethookHandler = Callable[["RethookNode", Any, int, Any], None]


class RethookNode:
    """``struct rethook_node`` plus the fprobe_rethook_node payload."""

    __slots__ = ("rethook", "ret_addr", "frame", "entry_ip", "entry_parent_ip", "data")

    def __init__(self, rethook: Rethook, data_size: int) -> None:
        self.rethook = rethook
        self.ret_addr = 0
        self.frame = 0
        self.entry_ip = 0
        self.entry_parent_ip = 0
        self.data = bytearray(data_size)


class Rethook:
    """``struct rethook``: handler, private data and the node pool."""

    def __init__(self, data: Any, handler: RethookHandler, data_size: int, num: int) -> None:
        self.data = data
        self.handler: RethookHandler | None = handler
        self.num = num
        self.pool: list[RethookNode] = [RethookNode(self, data_size) for _ in range(num)]

    def try_get(self) -> RethookNode | None:
        """``rethook_try_get``: None when stopping or when all nodes are in use."""
        if self.handler is None or not self.pool:
            return None
        return self.pool.pop()

    def recycle(self, node: RethookNode) -> None:
        """``rethook_recycle``: back to the pool, or dropped once the rethook is freed."""
        if self.handler is not None:
            self.pool.append(node)

    def stop(self) -> None:
        self.handler = None

    def free(self) -> None:
        self.stop()


def rethook_alloc(data: Any, handler: RethookHandler | None, data_size: int,
                  num: int) -> Rethook | int:
    """Returns a Rethook or -EINVAL (no handler or num <= 0)."""
    import errno

    if handler is None or num <= 0:
        return -errno.EINVAL
    return Rethook(data, handler, data_size, num)


class RethookCore:
    """The per-task rethook lists of one kernel."""

    def __init__(self) -> None:
        self.task_lists: dict[int, list[RethookNode]] = {}

    def hook(self, node: RethookNode, pid: int, ret_addr: int, frame: int) -> None:
        """``rethook_hook``: remember the return and push on the task's list (LIFO)."""
        node.ret_addr = ret_addr
        node.frame = frame
        self.task_lists.setdefault(pid, []).append(node)

    def pending(self, pid: int, frame: int) -> bool:
        lst = self.task_lists.get(pid)
        return bool(lst) and lst[-1].frame == frame

    def find_ret_addr(self, pid: int) -> list[int]:
        """Real return addresses hidden by the trampoline (for stack traces), top first."""
        return [n.ret_addr for n in reversed(self.task_lists.get(pid, []))]

    def trampoline(self, pid: int, frame: int, regs: Any) -> int:
        """``rethook_trampoline_handler``: run and recycle every node of ``frame``.

        Returns the correct return address (0 when nothing was hooked for the frame).
        """
        lst = self.task_lists.get(pid)
        if not lst or lst[-1].frame != frame:
            return 0
        nodes: list[RethookNode] = []
        while lst and lst[-1].frame == frame:
            nodes.append(lst.pop())
        correct = nodes[0].ret_addr
        for node in nodes:
            handler = node.rethook.handler
            if handler is not None:
                handler(node, node.rethook.data, correct, regs)
        for node in nodes:
            node.rethook.recycle(node)
        if not lst:
            self.task_lists.pop(pid, None)
        return correct

    def flush_task(self, pid: int) -> None:
        """``rethook_flush_task``: a dead task's pending nodes go back to their pools."""
        for node in self.task_lists.pop(pid, []):
            node.rethook.recycle(node)
