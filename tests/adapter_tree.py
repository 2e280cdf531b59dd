"""A tiny tree of node.py/files.py objects for testing the FUSE adapter alone.

Mounted with ``mount.py --tree-factory adapter_tree:build`` (tests/ on PYTHONPATH).

* ``data``: O_TRUNC clears, every write appends (like set_ftrace_filter), so
  ``>`` vs ``>>`` shows whether the open flags reached the tree.
* ``opens``: the log of OpenModes seen by ``data`` (one line per open).
* ``pipe``: read returns WOULD_BLOCK until something is written to it; writes wake
  its wait queue; poll says POLLIN only when data is queued.
* ``fail``: read raises RuntimeError (an adapter bug must give EIO, not kill the mount).
* ``whoami``: the context of the last ``syscall_enter`` (pid comm cpu uid).
* ``ro``: 0440 read-only; ``instances/``: mkdir/rmdir make and remove directories.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

from tracefs_sim.kernel import Kernel
from tracefs_sim.kernel.errors import WOULD_BLOCK, KernelError, _WouldBlock
from tracefs_sim.kernel.waitqueue import WaitQueue
from tracefs_sim.tracefs.files import seq_file
from tracefs_sim.tracefs.node import POLLIN, POLLOUT, Dir, File, Node, OpenFile, OpenMode


class _Pipe:
    def __init__(self) -> None:
        self.buf = bytearray()
        self.wq = WaitQueue()


class PipeOpen(OpenFile):
    nonseekable = True

    def __init__(self, node: File, mode: OpenMode, pipe: _Pipe) -> None:
        super().__init__(node, mode)
        self.pipe = pipe

    def read(self, offset: int, size: int) -> bytes | _WouldBlock:
        if not self.pipe.buf:
            return WOULD_BLOCK
        out = bytes(self.pipe.buf[:size])
        del self.pipe.buf[:size]
        return out

    def write(self, offset: int, data: bytes) -> int:
        self.pipe.buf += data
        self.pipe.wq.wake_up()
        return len(data)

    def poll(self) -> int:
        return (POLLIN if self.pipe.buf else 0) | POLLOUT

    @property
    def wait_queue(self) -> WaitQueue:
        return self.pipe.wq


class Instances(Dir):
    def mkdir(self, name: str) -> Node:
        if self.lookup(name) is not None:
            raise KernelError(errno.EEXIST)
        d = Dir(0o750)
        state = {"on": b"1\n"}
        d.add("tracing_on", seq_file(0o640, lambda: state["on"], lambda b: state.update(on=b)))
        return self.add(name, d)

    def rmdir(self, name: str) -> None:
        if self.lookup(name) is None:
            raise KernelError(errno.ENOENT)
        self.remove(name)


def build(kernel: Kernel) -> Dir:
    root = Dir(0o700)
    data = bytearray()
    opens: list[str] = []

    def data_trunc() -> None:
        data.clear()

    def data_opener(node: File, mode: OpenMode) -> OpenFile:
        opens.append(f"r={int(mode.read)} w={int(mode.write)} trunc={int(mode.trunc)} "
                     f"append={int(mode.append)} nonblock={int(mode.nonblock)}\n")
        return seq_file(0o640, lambda: bytes(data), data.extend, data_trunc).opener(node, mode)

    root.add("data", File(0o640, data_opener))
    root.add("opens", seq_file(0o440, lambda: "".join(opens)))
    pipe = _Pipe()
    root.add("pipe", File(0o640, lambda node, mode: PipeOpen(node, mode, pipe)))

    def fail() -> str:
        raise RuntimeError("injected failure")

    root.add("fail", seq_file(0o440, fail))
    last: dict[str, object] = {}
    real_enter: Callable[..., None] = kernel.syscall_enter

    def syscall_enter(pid: int, comm: str, cpu: int, uid: int = 0, **kw: object) -> None:
        last.update(pid=pid, comm=comm, cpu=cpu, uid=uid)
        return real_enter(pid, comm, cpu, uid, **kw)

    kernel.syscall_enter = syscall_enter
    snapshot: dict[str, object] = {}

    def whoami() -> str:  # the open's context, not this read's (same task anyway)
        snapshot.update(last)
        return f"{snapshot['pid']} {snapshot['comm']} {snapshot['cpu']} {snapshot['uid']}\n"

    root.add("whoami", seq_file(0o440, whoami))
    root.add("ro", seq_file(0o440, lambda: "ro\n"))
    root.add("instances", Instances(0o750))
    return root
