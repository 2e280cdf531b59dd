"""Nodes of the tracefs tree (inodes) and open-file descriptions.

This is the contract between the file tree and the FUSE adapter:

* ``Dir``: ``lookup(name)``, ``entries()`` (ordered ``(name, node)`` pairs),
  ``mkdir``/``rmdir``/``create`` (refused by default with the kernel's errno),
  ``nlink``.
* ``File``: ``open(mode) -> OpenFile``.
* ``OpenFile``: ``read(offset, size)`` returning bytes or ``WOULD_BLOCK``,
  ``write(offset, data)``, ``flush()``, ``release()``, ``poll()``, ``wait_queue``.

The adapter never interprets tracing; the tree never imports pyfuse3 or trio.
Modes are permission bits only; the adapter adds S_IFDIR/S_IFREG.
"""

from __future__ import annotations

import errno
import os
import select
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from ..kernel.errors import WOULD_BLOCK, KernelError, _WouldBlock
from ..kernel.waitqueue import WaitQueue

POLLIN = select.POLLIN | select.POLLRDNORM
POLLOUT = select.POLLOUT | select.POLLWRNORM
DEFAULT_POLL = POLLIN | POLLOUT


@dataclass(frozen=True, slots=True)
class OpenMode:
    """Open flags decoded once (pyfakefs' _OPEN_MODE_MAP idea)."""

    read: bool
    write: bool
    trunc: bool
    append: bool
    nonblock: bool

    @classmethod
    def from_flags(cls, flags: int) -> OpenMode:
        """The mode of open(2) ``flags``: one of the shared (frozen) objects built at
        import, as every OPEN asks (building a frozen dataclass is dear)."""
        return _MODES[flags & _MODE_BITS]

    @classmethod
    def _decode(cls, flags: int) -> OpenMode:
        acc = flags & os.O_ACCMODE
        return cls(
            read=acc in (os.O_RDONLY, os.O_RDWR),
            write=acc in (os.O_WRONLY, os.O_RDWR),
            trunc=bool(flags & os.O_TRUNC),
            append=bool(flags & os.O_APPEND),
            nonblock=bool(flags & os.O_NONBLOCK),
        )


_MODE_BITS = os.O_ACCMODE | os.O_TRUNC | os.O_APPEND | os.O_NONBLOCK
# every combination of the bits that matter -> its OpenMode (read-only after import)
_MODES: dict[int, OpenMode] = {
    acc | trunc | append | nonblock: OpenMode._decode(acc | trunc | append | nonblock)
    for acc in range(os.O_ACCMODE + 1) for trunc in (0, os.O_TRUNC)
    for append in (0, os.O_APPEND) for nonblock in (0, os.O_NONBLOCK)}

READ_ONLY = OpenMode(True, False, False, False, False)
WRITE_TRUNC = OpenMode(False, True, True, False, False)
WRITE_APPEND = OpenMode(False, True, False, True, False)


class Node:
    """An inode of the tree: a name-independent object with a permission mode."""

    __slots__ = ("mode", "__weakref__")
    is_dir = False

    def __init__(self, mode: int) -> None:
        self.mode = mode


class OpenFile:
    """One open file description (``struct file``): per-open state lives here."""

    nonseekable = False

    def __init__(self, node: File, mode: OpenMode) -> None:
        self.node = node
        self.mode = mode

    def read(self, offset: int, size: int) -> bytes | memoryview | _WouldBlock:
        """The bytes at ``offset`` (a view of immutable bytes when a big text is answered
        a slice at a time), or ``WOULD_BLOCK``."""
        raise KernelError(errno.EINVAL)

    def write(self, offset: int, data: bytes) -> int:
        raise KernelError(errno.EINVAL)

    def flush(self) -> None:
        """Called at every FLUSH; files that commit at release commit at the first
        flush after a write (bash flushes before writing too)."""

    def release(self) -> None:
        """Last close.  Must not raise."""

    def poll(self) -> int:
        return DEFAULT_POLL

    @property
    def wait_queue(self) -> WaitQueue | None:
        """Where a blocked reader waits for a wake-up (None: never blocks)."""
        return None


class Pin(Protocol):
    """What an open file holds for its life: trace_array_get()/trace_array_put() of
    the instance it belongs to (rmdir is EBUSY while any is open)."""

    def array_get(self) -> None: ...

    def array_put(self) -> None: ...


class File(Node):
    """A regular file: ``opener(node, mode)`` makes the OpenFile; ``pin`` (an
    instance's trace array, set by the tree) is held from open to release."""

    __slots__ = ("opener", "pin")

    def __init__(self, mode: int, opener: Callable[[File, OpenMode], OpenFile]) -> None:
        super().__init__(mode)
        self.opener = opener
        self.pin: Pin | None = None

    def open(self, mode: OpenMode) -> OpenFile:
        """Permission checks are the VFS's (default_permissions): root may open a
        0220 file for reading, and then ``read`` fails with EINVAL as in the kernel."""
        pin = self.pin
        if pin is None:
            return self.opener(self, mode)
        pin.array_get()     # ENODEV once the instance is gone
        try:
            of = self.opener(self, mode)
        except BaseException:
            pin.array_put()
            raise
        _hold(of, pin)
        return of

    def truncate(self) -> None:
        """``truncate -s0 FILE`` (setattr size=0): same as an O_TRUNC open."""
        self.open(WRITE_TRUNC).release()


def _hold(of: OpenFile, pin: Pin) -> None:
    """Make ``of.release()`` drop ``pin`` once, after the file's own release."""
    release = of.release
    held = True

    def release_and_put() -> None:
        nonlocal held
        try:
            release()
        finally:
            if held:
                held = False
                pin.array_put()

    of.release = release_and_put    # type: ignore[method-assign]


def pin_files(d: Dir, pin: Pin) -> None:
    """Let every file of the (static) tree ``d`` hold ``pin`` while open."""
    for node in d._children.values():
        if isinstance(node, File):
            node.pin = pin
        elif type(node) is Dir:
            pin_files(node, pin)


class Dir(Node):
    """A directory.  Subclasses may compute children lazily (eventfs)."""

    __slots__ = ("_children",)
    is_dir = True

    def __init__(self, mode: int = 0o750, children: dict[str, Node] | None = None) -> None:
        super().__init__(mode)
        self._children: dict[str, Node] = dict(children or {})

    def add(self, name: str, node: Node) -> Node:
        self._children[name] = node
        return node

    def remove(self, name: str) -> None:
        self._children.pop(name, None)

    def lookup(self, name: str) -> Node | None:
        return self._children.get(name)

    def entries(self) -> Iterable[tuple[str, Node]]:
        return sorted(self._children.items())

    def nlink(self) -> int:
        if type(self).entries is Dir.entries:   # no listing to build: count the children
            return 2 + sum(1 for n in self._children.values() if n.is_dir)
        return 2 + sum(1 for _, n in self.entries() if n.is_dir)

    def mkdir(self, name: str) -> Node:
        raise KernelError(errno.EPERM)

    def rmdir(self, name: str) -> None:
        raise KernelError(errno.EPERM)

    def create(self, name: str) -> Node:
        raise KernelError(errno.EACCES)

    def stable_child(self, name: str) -> bool:
        """Whether the child ``name`` stays for the life of the mount (the adapter lets
        the VFS cache such dentries; a child that can go away is looked up each time).
        A plain directory is filled when built; the ones that change say so."""
        return True


def walk(root: Dir, path: str) -> Node:
    """Resolve a slash-separated path relative to root (for tests and tools)."""
    node: Node = root
    for part in path.strip("/").split("/"):
        if not part:
            continue
        if not isinstance(node, Dir):
            raise KernelError(errno.ENOTDIR)
        nxt = node.lookup(part)
        if nxt is None:
            raise KernelError(errno.ENOENT)
        node = nxt
    return node


__all__ = [
    "DEFAULT_POLL", "POLLIN", "POLLOUT", "READ_ONLY", "WOULD_BLOCK", "WRITE_APPEND", "WRITE_TRUNC",
    "Dir", "File", "Node", "OpenFile", "OpenMode", "walk",
]
