"""``struct trace_parser`` and ``trace_get_user()`` (kernel/trace/trace.c, trace.h).

The word reader behind ``set_ftrace_filter``, ``set_graph_function``, ``set_event``…
Each call consumes at most ONE word (plus the leading blanks and the one blank that
ends it) and returns how many bytes it consumed: the kernel's ``write()`` then returns
that short count and user space (stdio, bash's echo) writes the rest again.  A word
that is not terminated by a blank stays in the parser (``cont``) and continues with
the next ``write()``; the release/flush path then processes what is left.

Kept separate from the files so the kernel parts (ftrace_regex_write, ftrace_graph_write)
run the exact kernel algorithm and the tracefs layer only loops; ``WordWriter`` is the
write side those two share.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

from .errors import KernelError

# isspace() of the kernel's ctype table: \t \n \v \f \r and space (and 0xa0 as _SP? no:
# the kernel's _ctype marks only 0x09-0x0d and 0x20 as space, plus 0xa0 as _S|_SP).
_SPACE = frozenset(b"\t\n\v\f\r \xa0")


class TraceParser:
    """``struct trace_parser`` with ``trace_get_user()`` as ``feed()``."""

    __slots__ = ("buffer", "cont", "fail", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.buffer = bytearray()
        self.cont = False
        self.fail = False

    # trace.h helpers
    def loaded(self) -> bool:
        return not self.fail and len(self.buffer) != 0

    def clear(self) -> None:
        self.cont = False
        self.buffer.clear()

    @property
    def word(self) -> str:
        return self.buffer.decode("latin-1")

    def feed(self, data: bytes, pos: int) -> int:
        """``trace_get_user(parser, ubuf, cnt, &pos)``: consume one word of ``data``.

        ``pos`` is the file position before this call (0 clears the parser first).
        Returns the number of bytes consumed; raises ``KernelError(EINVAL)`` when the
        word does not fit (and marks the parser failed, as trace_parser_fail()).
        """
        if not data:
            return 0
        if pos == 0:
            self.clear()
        n = len(data)
        read = 0
        ch = data[0]
        read = 1
        if not self.cont:
            while read < n and ch in _SPACE:
                ch = data[read]
                read += 1
            self.buffer.clear()
            if ch in _SPACE or ch == 0:
                return read
        buf = self.buffer
        limit = self.size - 1
        while read <= n and ch not in _SPACE and ch != 0:
            if len(buf) < limit:
                buf.append(ch)
            else:
                self.fail = True
                raise KernelError(errno.EINVAL)
            if read == n:
                ch = -1  # ran out of input inside the word
                break
            ch = data[read]
            read += 1
        if ch == -1:
            # no terminating blank: the word continues with the next write()
            self.cont = True
            return read
        # finished by a blank (or NUL)
        self.cont = False
        return read


def write_words(write_once: Callable[[bytes], int], data: bytes) -> int:
    """A write(2) through a one-word-per-call writer, as user space re-writing short writes.

    Returns the bytes accepted; an error after some words were accepted returns the count
    so far (the caller's retry then gets the error), as the kernel's short write + retry
    would.
    """
    done = 0
    while done < len(data):
        try:
            n = write_once(data[done:])
        except KernelError:
            if done:
                return done
            raise
        if n <= 0:
            break
        done += n
    return done


class WordWriter:
    """The write side of an open filter file (ftrace_regex_write, ftrace_graph_write):
    each ``write_once`` feeds the parser and applies a completed word with
    ``apply_word``; the release applies the word left in the parser."""

    def __init__(self, size: int) -> None:
        self.parser = TraceParser(size)
        self.pos = 0  # the file position, as trace_get_user() sees it
        self.last_added: str | None = None

    def apply_word(self, word: str) -> None:
        raise NotImplementedError

    def write_once(self, data: bytes) -> int:
        """One write() of the kernel: consumes at most one word; may raise."""
        if not data:
            return 0
        parser = self.parser
        read = parser.feed(data, self.pos)
        self.pos += read
        if parser.loaded() and not parser.cont:
            word = parser.word
            parser.clear()
            # a plain glob added again right after it matched changes nothing; negations
            # and commands (func:cmd) are always applied
            if word != self.last_added:
                self.apply_word(word)
                self.last_added = word if not word.startswith("!") and ":" not in word else None
        return read

    def write(self, data: bytes) -> int:
        """A write(2): one word per call, as user space re-writing after short writes."""
        return write_words(self.write_once, data)

    def apply_last_word(self) -> None:
        """The release: the word still in the parser (its error is not reported)."""
        parser = self.parser
        if parser.loaded():
            try:
                self.apply_word(parser.word)
            except KernelError:
                pass
        parser.clear()
