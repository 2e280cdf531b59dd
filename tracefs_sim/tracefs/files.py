"""Reusable file kinds: seq-file reads, per-write control files, helpers for tests.

* ``SeqFile``: the text is produced on the first read at offset 0 (as seq_file
  restarts at offset 0) and sliced by offset afterwards, so ``cat`` sees one
  consistent snapshot.
* A write handler runs on every ``write()`` call.  ``write`` parses the whole buffer
  (``kstrtoul_from_user`` files, ``trace_options``, ``dynamic_events``…): the write
  returns its full length or fails.  ``write_some`` consumes a prefix and returns its
  length (``set_event``'s one word per call, trace_get_user()): the caller sees a short
  write.  docs/write-semantics.md has the class of every file.
* ``trunc``: what an O_TRUNC open does (``trace``: clear the buffer).
"""

from __future__ import annotations

import errno
from collections.abc import Callable

from ..kernel.errors import KernelError, _WouldBlock
from ..kernel.lib import kstrtol, kstrtoul
from .node import READ_ONLY, WRITE_APPEND, WRITE_TRUNC, Dir, File, OpenFile, OpenMode, walk

# trace.h: the modes of tracefs control files
TRACE_MODE_WRITE = 0o640
TRACE_MODE_READ = 0o440

ShowFn = Callable[[], str | bytes]
WriteFn = Callable[[bytes], None]          # parses the whole buffer
WriteSomeFn = Callable[[bytes], int]       # consumes a prefix, returns its length


def _as_bytes(text: str | bytes) -> bytes:
    return text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text


class SeqOpenFile(OpenFile):
    """Read side of a seq-file; the write side is delegated to ``on_write``."""

    def __init__(self, node: File, mode: OpenMode, show: ShowFn | None,
                 on_write: WriteFn | None, on_trunc: Callable[[], None] | None,
                 on_write_some: WriteSomeFn | None = None) -> None:
        super().__init__(node, mode)
        self._show = show
        self._on_write = on_write
        self._on_write_some = on_write_some
        self._buf = b""
        if mode.write and mode.trunc and on_trunc is not None:
            on_trunc()

    def read(self, offset: int, size: int) -> bytes | _WouldBlock:
        if self._show is None:
            raise KernelError(errno.EINVAL)
        if offset == 0 or not self._buf:
            self._buf = _as_bytes(self._show())
        return self._buf[offset:offset + size]

    def write(self, offset: int, data: bytes) -> int:
        if self._on_write_some is not None:
            return self._on_write_some(data)
        if self._on_write is None:
            raise KernelError(errno.EINVAL)
        self._on_write(data)
        return len(data)


def seq_file(mode: int, show: ShowFn | None, write: WriteFn | None = None,
             trunc: Callable[[], None] | None = None, *,
             write_some: WriteSomeFn | None = None) -> File:
    """A file whose read is ``show()`` and whose every write runs ``write(data)`` (the
    whole buffer) or ``write_some(data)`` (a prefix: the count it returns)."""
    assert write is None or write_some is None

    def opener(node: File, m: OpenMode) -> OpenFile:
        return SeqOpenFile(node, m, show, write, trunc, write_some)

    return File(mode, opener)


# kstrto*_from_user(): buf[1 + sizeof(long) * 8 + 1 + 1], so at most 66 bytes are copied
_FROM_USER_MAX = 66


def _user_string(data: bytes) -> str:
    """What kstrto*_from_user() hands to kstrto*(): the first 66 bytes, a C string (it
    ends at the first NUL), one char per byte."""
    text = data[:_FROM_USER_MAX].decode("latin-1")
    nul = text.find("\0")
    return text if nul < 0 else text[:nul]


def parse_ulong(data: bytes) -> int:
    """``kstrtoul_from_user(ubuf, cnt, 10, &val)``: the value, or KernelError(EINVAL/ERANGE)."""
    err, val = kstrtoul(_user_string(data), 10)
    if err:
        raise KernelError(-err)
    return val


def parse_long(data: bytes) -> int:
    """``kstrtol_from_user(ubuf, cnt, 10, &val)``."""
    err, val = kstrtol(_user_string(data), 10)
    if err:
        raise KernelError(-err)
    return val


# ----------------------------------------------------------------------------- test helpers
def read_file(root: Dir, path: str, chunk: int = 65536) -> bytes:
    """open(O_RDONLY) + read until EOF + close, as ``cat`` does (never blocks)."""
    node = walk(root, path)
    if not isinstance(node, File):
        raise KernelError(errno.EISDIR)
    f = node.open(READ_ONLY)
    out = bytearray()
    try:
        while True:
            data = f.read(len(out), chunk)
            if isinstance(data, _WouldBlock) or not data:
                break
            out += data
    finally:
        f.release()
    return bytes(out)


def write_file(root: Dir, path: str, data: bytes | str, append: bool = False) -> int:
    """``echo DATA > path`` (or ``>>`` with append): open, flush, write, flush, release.
    A short write is followed by a write of the rest, as stdio's fflush() does for echo,
    until everything is written or a write fails (the error is raised)."""
    node = walk(root, path)
    if not isinstance(node, File):
        raise KernelError(errno.EISDIR)
    f = node.open(WRITE_APPEND if append else WRITE_TRUNC)
    buf = _as_bytes(data)
    done = 0
    try:
        f.flush()
        while True:
            n = f.write(done, buf[done:])
            done += n
            if n <= 0 or done >= len(buf):
                break
        f.flush()
    finally:
        f.release()
    return done


def write_once(root: Dir, path: str, data: bytes | str, append: bool = False) -> int:
    """open + ONE write(2) + close, as a program calling ``os.write`` once: returns what
    that write returned (a short count when the file takes one word per call)."""
    node = walk(root, path)
    if not isinstance(node, File):
        raise KernelError(errno.EISDIR)
    f = node.open(WRITE_APPEND if append else WRITE_TRUNC)
    try:
        n = f.write(0, _as_bytes(data))
        f.flush()
    finally:
        f.release()
    return n


def write_errno(root: Dir, path: str, data: bytes | str, append: bool = False) -> int:
    """``echo DATA > path`` (``>>``), reporting 0 or the errno the shell would print."""
    try:
        write_file(root, path, data, append=append)
    except KernelError as e:
        return e.errno
    return 0
