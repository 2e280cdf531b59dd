"""``struct trace_parser`` and ``trace_get_user()`` (kernel/trace/trace.c, trace.h).

The word reader behind ``set_ftrace_filter``, ``set_graph_function``, ``set_event``…
Each call consumes at most ONE word (plus the leading blanks and the one blank that
ends it) and returns how many bytes it consumed: the kernel's ``write()`` returns that
short count to the caller, and a caller that wants the rest written writes it again
(stdio and bash's echo do; a program calling write(2) once does not, and the words
after the first are never seen).  A word that is not terminated by a blank stays in the
parser (``cont``) and continues with the next ``write()``; the release then processes
what is left.

Kept separate from the files so the kernel parts (ftrace_regex_write, ftrace_graph_write)
run the exact kernel algorithm; ``WordWriter`` is the write side those two share.
"""

from __future__ import annotations

import errno

from .errors import KernelError
from .lib import kstrtoul

# isspace() of the kernel's ctype table (lib/ctype.c): 0x09-0x0d, space and 0xa0 (_S|_SP)
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
        """A write(2): one word at most; returns the bytes consumed (a short count when
        more words follow: the caller writes the rest again, or does not)."""
        return self.write_once(data)

    def apply_last_word(self) -> None:
        """The release: the word still in the parser (its error is not reported)."""
        parser = self.parser
        if parser.loaded():
            try:
                self.apply_word(parser.word)
            except KernelError:
                pass
        parser.clear()


# trace.c: the parser of the pid files, PID_BUF_SIZE + 1 bytes
PID_BUF_SIZE = 127
# pid_list.h MAX_PID: trace_pid_list_set() refuses pids from here on (pid_split)
PID_LIST_MAX = 1 << 30


def trace_pid_write(filtered_pids: set[int] | None, data: bytes) -> tuple[set[int] | None, int]:
    """trace_pid_write() (trace.c), the parser of set_event_pid, set_event_notrace_pid,
    set_ftrace_pid and set_ftrace_notrace_pid: (the new list, bytes read).

    All or nothing: the words of the whole buffer are read into a copy of the current
    list; a bad word (kstrtoul(…, 0) fails: EINVAL; a pid past the pid list: EPERM, the
    kernel's -1) raises and leaves the list as it was.  The reading stops at the first
    call of trace_get_user() that loads no word (only blanks left, or a NUL where a word
    would start), so the count can be short.  No pid at all, counting the old ones,
    gives None (the list is freed).  Here beside the parser it uses (trace.c has it) so
    that ftrace_pid and trace_events import a module that imports nothing of theirs.
    """
    new = set(filtered_pids) if filtered_pids else set()
    nr_pids = len(new)
    parser = TraceParser(PID_BUF_SIZE + 1)
    read = 0
    cnt = len(data)
    while read < cnt:
        read += parser.feed(data[read:], 0)   # pos 0: the parser is cleared each time
        if not parser.loaded():
            break
        err, val = kstrtoul(parser.word, 0)
        if err:
            raise KernelError(errno.EINVAL)
        pid = val & 0xFFFFFFFF                # (pid_t)val, passed as unsigned int
        if pid >= PID_LIST_MAX:
            raise KernelError(errno.EPERM)
        new.add(pid)
        nr_pids += 1
        parser.clear()
    return (new if nr_pids else None), read
