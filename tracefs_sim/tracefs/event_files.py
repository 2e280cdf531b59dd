"""The ``events/`` tree and the event control files (trace_events.c + fs/tracefs/event_inode.c).

Like eventfs, nothing is created for the ~1 500 events up front: ``events/``, each
system and each event directory produce their children on lookup/readdir from the
kernel's event registry, and keep the nodes they made so inode identities stay stable.
Every eventfs directory reports nlink 1 and mode 0755; the files have the modes of the
kernel's callbacks (enable/filter/trigger 0640, format/id/hist 0440).

``events_dir(kernel, tr)``, ``event_instance_files(kernel, tr)`` (set_event,
set_event_pid, set_event_notrace_pid) and ``event_top_files(kernel)``
(available_events) are what trace_files.py plugs in.
"""

from __future__ import annotations

import errno
import select
from collections.abc import Callable, Iterable

from ..kernel import Kernel
from ..kernel import trace_events_filter as tef
from ..kernel.errors import KernelError
from ..kernel.trace import TraceArray
from ..kernel.trace_events import EVENT_BUF_SIZE, EventCall, EventFile, TraceEvents
from ..kernel.trace_parser import TraceParser
from ..kernel.waitqueue import WaitQueue
from .files import SeqOpenFile, ShowFn, WriteFn, parse_ulong, seq_file
from .node import Dir, File, Node, OpenFile, OpenMode

MODE_WRITE = 0o640   # TRACE_MODE_WRITE
MODE_READ = 0o440    # TRACE_MODE_READ


class _RefOpenFile(SeqOpenFile):
    """A seq-file that holds a reference on a dynamic event while open."""

    def __init__(self, node: File, mode: OpenMode, call: EventCall, show: ShowFn | None,
                 write: WriteFn | None, trunc: Callable[[], None] | None) -> None:
        self.call = call
        call.refcnt += 1
        self._released = False
        try:
            super().__init__(node, mode, show, write, trunc)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        self.call.refcnt -= 1


class HistOpenFile(SeqOpenFile):
    """events/SYS/EVENT/hist (event_hist_open/poll): a seq-file that polls readable
    while the event's histograms got hits since the last read, and POLLPRI once per
    new hit count (the 6.12 hist poll)."""

    def __init__(self, node: File, mode: OpenMode, ev: TraceEvents,
                 file_of: Callable[[], EventFile]) -> None:
        self.hists = ev.kernel.hists
        self.file_of = file_of
        self.last_read = 0
        self.last_act = self.hists.hit_count(file_of())
        super().__init__(node, mode, self._show_hist, None, None)

    def _show_hist(self) -> str:
        file = self.file_of()
        text = self.hists.hist_text(file)
        self.last_read = self.last_act = self.hists.hit_count(file)
        return text

    def poll(self) -> int:
        cnt = self.hists.hit_count(self.file_of())
        mask = 0
        if self.last_read != cnt:
            mask |= select.POLLIN | select.POLLRDNORM
        if self.last_act != cnt:
            self.last_act = cnt
            mask |= select.POLLPRI
        return mask

    @property
    def wait_queue(self) -> WaitQueue | None:
        return self.hists.poll_wq


def _event_file(mode: int, call: EventCall, show: ShowFn | None, write: WriteFn | None = None,
                trunc: Callable[[], None] | None = None) -> File:
    if not call.is_dynamic:
        return seq_file(mode, show, write, trunc)

    def opener(node: File, m: OpenMode) -> OpenFile:
        return _RefOpenFile(node, m, call, show, write, trunc)
    return File(mode, opener)


class EventfsDir(Dir):
    """A lazily filled eventfs directory: nlink 1, children cached by name."""

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        super().__init__(0o755)
        self._cache: dict[str, Node] = {}

    def nlink(self) -> int:
        return 1

    def _names(self) -> list[str]:
        raise NotImplementedError

    def _make(self, name: str) -> Node | None:
        raise NotImplementedError

    def _has(self, name: str) -> bool:
        """Whether ``name`` is a child now (the subclasses answer without a listing)."""
        return name in self._names()

    def lookup(self, name: str) -> Node | None:
        if not self._has(name):
            self._cache.pop(name, None)
            return None
        node = self._cache.get(name)
        if node is None:
            node = self._make(name)
            if node is None:
                return None
            if isinstance(node, File) and name in self._PINNED:
                tr = self._tr()
                if not tr.is_top:
                    node.pin = tr
            self._cache[name] = node
        return node

    # files whose open takes a reference on the instance: system_tr_open(),
    # subsystem_open(), tracing_open_file_tr() (format, id, trigger and the headers
    # take none)
    _PINNED: frozenset[str] = frozenset()

    def _tr(self) -> TraceArray:
        raise NotImplementedError

    def entries(self) -> Iterable[tuple[str, Node]]:
        out = []
        for name in self._names():
            node = self.lookup(name)
            if node is not None:
                out.append((name, node))
        return out

    def mkdir(self, name: str) -> Node:
        raise KernelError(errno.EPERM)

    def rmdir(self, name: str) -> None:
        raise KernelError(errno.EPERM)


# --------------------------------------------------------------------------- events/
class EventsDir(EventfsDir):
    """``events/``: enable, header_page, header_event, then one dir per system."""

    __slots__ = ("kernel", "tr", "ev")

    def __init__(self, kernel: Kernel, tr: TraceArray) -> None:
        super().__init__()
        self.kernel = kernel
        self.tr = tr
        self.ev: TraceEvents = kernel.events

    _PINNED = frozenset({"enable"})

    def _tr(self) -> TraceArray:
        return self.tr

    def _names(self) -> list[str]:
        return ["enable", "header_page", "header_event", *self.ev.systems()]

    def _has(self, name: str) -> bool:
        return name in ("enable", "header_page", "header_event") or self.ev.has_system(name)

    def stable_child(self, name: str) -> bool:
        """A system of built-in events never goes; one of dynamic events only may."""
        return name in ("enable", "header_page", "header_event") or self.ev.static_system(name)

    def _make(self, name: str) -> Node | None:
        ev, tr = self.ev, self.tr
        if name == "enable":
            return seq_file(MODE_WRITE, lambda: ev.system_enable_text(tr, None),
                            lambda d: ev.system_enable_write(tr, None, parse_ulong(d)))
        if name == "header_page":
            # ring_buffer_print_page_header(): the data size follows the sub-buffer size
            def header_page() -> bytes:
                data = tr.buffer.subbuf_size - 16
                return ev.header_page.replace(b"size:4080;", f"size:{data};".encode())
            return seq_file(MODE_READ, header_page)
        if name == "header_event":
            return seq_file(MODE_READ, lambda: ev.header_event)
        return SystemDir(self, name)


class _EventsSubdir(EventfsDir):
    """A directory below ``events/``: its files belong to the same trace array."""

    __slots__ = ("parent",)

    def __init__(self, parent: EventsDir) -> None:
        super().__init__()
        self.parent = parent

    def _tr(self) -> TraceArray:
        return self.parent.tr


class SystemDir(_EventsSubdir):
    """``events/SYSTEM/``: enable and filter (none for ftrace), then the events."""

    __slots__ = ("system",)

    def __init__(self, parent: EventsDir, system: str) -> None:
        super().__init__(parent)
        self.system = system

    _PINNED = frozenset({"enable", "filter"})

    def _names(self) -> list[str]:
        ev = self.parent.ev
        names = [] if self.system == "ftrace" else ["enable", "filter"]
        if self.system not in ev.systems():
            return []
        # eventfs keeps creation order; dynamic events are appended
        return names + [c.name for c in ev.calls if c.system == self.system]

    def _has(self, name: str) -> bool:
        ev = self.parent.ev
        if not ev.has_system(self.system):
            return False
        if name in ("enable", "filter"):
            return self.system != "ftrace"
        return ev.find_event(self.system, name) is not None

    def stable_child(self, name: str) -> bool:
        if name in ("enable", "filter"):
            return True
        call = self.parent.ev.find_event(self.system, name)
        return call is not None and not call.is_dynamic

    def lookup(self, name: str) -> Node | None:
        # a dynamic event removed and re-added under the same name is a new call:
        # drop the cached directory of the old one (eventfs frees it on removal)
        node = self._cache.get(name)
        if isinstance(node, EventDir) and self.parent.ev.find_event(self.system, name) is not node.call:
            del self._cache[name]
        return super().lookup(name)

    def _make(self, name: str) -> Node | None:
        ev, tr, system = self.parent.ev, self.parent.tr, self.system
        if name == "enable" and system != "ftrace":
            return seq_file(MODE_WRITE, lambda: ev.system_enable_text(tr, system),
                            lambda d: ev.system_enable_write(tr, system, parse_ulong(d)))
        if name == "filter" and system != "ftrace":
            return seq_file(MODE_WRITE, lambda: tef.subsystem_filter_text(ev, tr, system),
                            lambda d: _filter_write_checked(d, lambda: tef.apply_subsystem_filter(ev, tr, system, d)))
        call = ev.find_event(system, name)
        if call is None:
            return None
        return EventDir(self.parent, call)


def _filter_write_checked(data: bytes, apply: Callable[[], None]) -> None:
    if len(data) >= 4096:
        raise KernelError(errno.EINVAL)
    apply()


class EventDir(_EventsSubdir):
    """``events/SYSTEM/EVENT/`` from event_callback()'s rules."""

    __slots__ = ("call",)

    def __init__(self, parent: EventsDir, call: EventCall) -> None:
        super().__init__(parent)
        self.call = call

    _PINNED = frozenset({"enable", "filter", "hist"})

    def _file(self) -> EventFile:
        f = self.parent.ev.file(self.parent.tr, self.call)
        if f is None:
            raise KernelError(errno.ENODEV)
        return f

    def _names(self) -> list[str]:
        call = self.call
        ev = self.parent.ev
        if ev.find_event(call.system, call.name) is not call:
            return []
        names = []
        if not call.ignore_enable:
            names += ["enable", "filter"]
        if not call.ignore_enable or call.name == "print":
            names.append("trigger")
        names += ["format", "id", "hist"]
        return names

    def _make(self, name: str) -> Node | None:
        call = self.call
        ev = self.parent.ev
        if name == "format":
            return _event_file(MODE_READ, call, call.format_text)
        if name == "id":
            return _event_file(MODE_READ, call, lambda: f"{call.type_id}\n")
        if name == "hist":
            return File(MODE_READ, lambda node, m: HistOpenFile(node, m, ev, self._file))
        if name == "enable":
            return _event_file(MODE_WRITE, call, lambda: self._file().enable_text(),
                               lambda d: ev.event_enable_write(self._file(), parse_ulong(d)))
        if name == "filter":
            return _event_file(MODE_WRITE, call, lambda: self._file().filter_text(),
                               lambda d: _filter_write_checked(
                                   d, lambda: tef.apply_event_filter(ev, self._file(), d)))
        if name == "trigger":
            trig = ev.triggers

            def show() -> str:
                return trig.show(self._file())

            def write(d: bytes) -> None:
                trig.write(self._file(), d)

            def trunc() -> None:
                trig.open_trunc(self._file())
            return _event_file(MODE_WRITE, call, show, write, trunc)
        return None


def events_dir(kernel: Kernel, tr: TraceArray) -> Dir:
    """The ``events`` directory of ``tr`` (top level or an instance)."""
    kernel.events.inst(tr)
    return EventsDir(kernel, tr)


# --------------------------------------------------------------------------- set_event
def event_instance_files(kernel: Kernel, tr: TraceArray) -> dict[str, Node]:
    """set_event, set_event_pid, set_event_notrace_pid of one trace array."""
    ev = kernel.events

    def set_event_write(data: bytes) -> int:
        """ftrace_event_write(): the buffers expand first (tracing_update_buffers), then
        ONE word is read by trace_get_user() on a fresh parser and applied, even when no
        blank ends it (the rest of a split word is a word of its own); the write returns
        the bytes consumed, or the word's error."""
        kernel.trace.update_buffers()
        parser = TraceParser(EVENT_BUF_SIZE + 1)
        read = parser.feed(data, 0)
        if parser.loaded():
            ev.set_event_write_word(tr, parser.word)
        return read

    def pid_file(notrace: bool) -> File:
        def write(data: bytes) -> int:
            return ev.pid_write(tr, notrace, data) if data else 0

        return seq_file(MODE_WRITE, lambda: ev.pids_text(tr, notrace), None,
                        lambda: ev.clear_pids(tr, not notrace, notrace), write_some=write)

    return {
        "set_event": seq_file(MODE_WRITE, lambda: ev.set_event_text(tr), None,
                              lambda: ev.clear_events(tr), write_some=set_event_write),
        "set_event_pid": pid_file(False),
        "set_event_notrace_pid": pid_file(True),
    }


def event_top_files(kernel: Kernel, tr: TraceArray | None = None) -> dict[str, Node]:
    """Top-level only: available_events."""
    ev = kernel.events
    return {"available_events": seq_file(MODE_READ, ev.available_events_text)}


__all__ = ["events_dir", "event_instance_files", "event_top_files", "EventsDir"]
