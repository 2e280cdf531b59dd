"""Function graph infrastructure (kernel/trace/fgraph.c) and the graph filter hashes.

Up to ``FGRAPH_ARRAY_SIZE`` (16) ``FgraphOps`` users; each is a *subops* of the one
``graph_ops`` ftrace_ops (``ftrace_startup_subops``), whose filter is the union of the
users' filters.  On entry (``ftrace_graph_func`` → ``function_graph_enter``) every user
whose own hash matches gets ``entryfunc(trace, gops)``; the ones returning True get
``retfunc(trace, gops)`` when the function returns.  With exactly one user the entry is
"direct" (no per-user hash test), as fgraph_do_direct.

The shadow stack is the task's ``ret_stack`` list shared with other return hooks (see
ftrace.py's call-site protocol): a graph frame is ``[handler, func_ip, calltime,
bitmap, task_state]``.  Its capacity follows the kernel's one page of longs (98 frames);
beyond that the entry is refused and the task's ``trace_overrun`` counts it.

Also here (ftrace.c keeps them, fgraph is their only user): ``set_graph_function`` and
``set_graph_notrace`` — the global ``ftrace_graph_hash``/``ftrace_graph_notrace_hash``,
their per-open iterator (``GraphRegexIter``), and ``max_graph_depth``
(``fgraph_max_depth``).
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import KernelError
from .ftrace import (
    FTRACE_BUFF_MAX,
    OPS_FL_INITIALIZED,
    OPS_FL_PID,
    FtraceHash,
    FtraceOps,
    filter_parse_regex,
    ksym,
)
from .trace_parser import TraceParser, write_words

if TYPE_CHECKING:
    from .core import Kernel
    from .ftrace import Ftrace

FGRAPH_ARRAY_SIZE = 16
# struct ftrace_ret_stack on x86_64 = ret, func, calltime, retp: 4 longs + the bitmap word
FGRAPH_FRAME_OFFSET = 4
SHADOW_STACK_OFFSET = 4096 // 8
SHADOW_STACK_MAX_OFFSET = SHADOW_STACK_OFFSET - (FGRAPH_FRAME_OFFSET + 1 + FGRAPH_ARRAY_SIZE)

GRAPH_FILTER_NOTRACE = 0
GRAPH_FILTER_FUNCTION = 1


@dataclass(slots=True)
class FgraphEnt:
    """``struct ftrace_graph_ent``."""

    func: int
    depth: int


@dataclass(slots=True)
class FgraphRet:
    """``struct ftrace_graph_ret`` (retval kept although 6.12/Debian has no FUNCTION_GRAPH_RETVAL)."""

    func: int
    depth: int
    overrun: int
    calltime: int
    rettime: int
    retval: int = 0


EntryFunc = Callable[[FgraphEnt, "FgraphOps"], bool]
RetFunc = Callable[[FgraphRet, "FgraphOps"], None]


class FgraphOps:
    """``struct fgraph_ops``: entry/return callbacks and the ops holding its hashes."""

    __slots__ = ("entryfunc", "retfunc", "ops", "private", "saved_func", "idx")

    def __init__(self, entryfunc: EntryFunc, retfunc: RetFunc, private: Any = None,
                 ops: FtraceOps | None = None) -> None:
        self.entryfunc = entryfunc
        self.retfunc = retfunc
        self.private = private
        self.ops = ops if ops is not None else FtraceOps(name="fgraph_ops")
        self.ops.owner = self
        self.saved_func: EntryFunc | None = None
        self.idx = -1


class _TaskGraph:
    """Per-task fgraph state: task vars (one long per array slot), frames, overrun."""

    __slots__ = ("task", "vars", "frames", "overrun", "pause", "timestamp")

    def __init__(self, task: Any) -> None:
        self.task = task
        self.vars = [0] * FGRAPH_ARRAY_SIZE
        self.frames = 0
        self.overrun = 0
        self.pause = 0
        self.timestamp = 0


class Fgraph:
    """fgraph.c state of one kernel: fgraph_array, graph_ops, graph filter hashes."""

    def __init__(self, kernel: Kernel, ftrace: Ftrace) -> None:
        self.k = kernel
        self.ftrace = ftrace
        self.graph_ops = FtraceOps(self.ftrace_graph_func, 0, core_data=True, name="graph_ops")
        self.array: list[FgraphOps | None] = [None] * FGRAPH_ARRAY_SIZE
        self.lru = list(range(FGRAPH_ARRAY_SIZE))
        self.lru_next = 0
        self.lru_last = 0
        self.bitmask = 0
        self.active = 0
        self.direct_gops: FgraphOps | None = None
        self.sleep_time = True
        self.max_depth = 0  # fgraph_max_depth (max_graph_depth)
        self.graph_hash = FtraceHash()  # set_graph_function
        self.graph_notrace_hash = FtraceHash()  # set_graph_notrace
        self._tasks: dict[int, _TaskGraph] = {}

    # ------------------------------------------------------------------ task state
    def task_state(self, task: Any) -> _TaskGraph:
        st = self._tasks.get(id(task))
        if st is None or st.task is not task:
            st = self._tasks[id(task)] = _TaskGraph(task)
        return st

    def get_task_var(self, gops: FgraphOps, task: Any = None) -> int:
        """fgraph_get_task_var(): the gops' per-task long."""
        t = task if task is not None else self.k.sched.current  # type: ignore[attr-defined]
        return self.task_state(t).vars[gops.idx]

    def set_task_var(self, gops: FgraphOps, val: int, task: Any = None) -> None:
        t = task if task is not None else self.k.sched.current  # type: ignore[attr-defined]
        self.task_state(t).vars[gops.idx] = val

    def pause_graph_tracing(self) -> None:
        self.task_state(self.k.sched.current).pause += 1  # type: ignore[attr-defined]

    def unpause_graph_tracing(self) -> None:
        self.task_state(self.k.sched.current).pause -= 1  # type: ignore[attr-defined]

    def _now(self) -> int:
        bc = getattr(self.k, "boot_clock", None)
        return bc.ns() if bc is not None else 0

    # ------------------------------------------------------------------ lru of indexes
    def _lru_alloc(self) -> int:
        idx = self.lru[self.lru_next]
        if idx == -1:
            return -1
        self.lru[self.lru_next] = -1
        self.lru_next = (self.lru_next + 1) % FGRAPH_ARRAY_SIZE
        self.bitmask |= 1 << idx
        return idx

    def _lru_release(self, idx: int) -> None:
        self.lru[self.lru_last] = idx
        self.lru_last = (self.lru_last + 1) % FGRAPH_ARRAY_SIZE
        self.bitmask &= ~(1 << idx)

    # ------------------------------------------------------------------ entry / return
    @ksym("ftrace_graph_func")
    def ftrace_graph_func(self, ip: int, parent_ip: int, op: FtraceOps, fregs: Any) -> None:
        """x86 ftrace_graph_func → prepare_ftrace_return → function_graph_enter."""
        task = self.k.sched.current  # type: ignore[attr-defined]
        st = self.task_state(task)
        if st.pause:
            return
        ft = self.ftrace
        bit = ft.recursion_trylock(ip, parent_ip)
        if bit < 0:
            return
        try:
            self._enter(task, st, ip)
        finally:
            ft.recursion_unlock(bit)

    def _enter(self, task: Any, st: _TaskGraph, ip: int) -> None:
        depth = task.curr_ret_depth + 1
        task.curr_ret_depth = depth
        if (st.frames + 1) * (FGRAPH_FRAME_OFFSET + 1) >= SHADOW_STACK_MAX_OFFSET:
            st.overrun += 1
            task.curr_ret_depth = depth - 1
            return
        calltime = self._now()
        trace = FgraphEnt(ip, depth)
        bitmap = 0
        direct = self.direct_gops
        if self.active == 1 and direct is not None:
            if direct.entryfunc(trace, direct):
                bitmap = 1 << direct.idx
        else:
            i = self.ftrace.ip_to_index(ip)
            for idx, gops in enumerate(self.array):
                if gops is None:
                    continue
                if i is not None and gops.ops.func_hash.contains(i) and gops.entryfunc(trace, gops):
                    bitmap |= 1 << idx
        if not bitmap:
            task.curr_ret_depth = depth - 1
            return
        st.frames += 1
        task.ret_stack.append([self._return_handler, ip, calltime, bitmap, st])

    def _return_handler(self, frame: list[Any], retval: int) -> None:
        """ftrace_return_to_handler()."""
        _, ip, calltime, bitmap, st = frame
        task = st.task
        st.frames -= 1
        trace = FgraphRet(ip, task.curr_ret_depth, st.overrun, calltime, self._now(), retval)
        direct = self.direct_gops
        if self.active == 1 and direct is not None:
            if bitmap >> direct.idx & 1:
                direct.retfunc(trace, direct)
        else:
            idx = 0
            while bitmap:
                if bitmap & 1:
                    gops = self.array[idx]
                    if gops is not None:
                        gops.retfunc(trace, gops)
                bitmap >>= 1
                idx += 1
        task.curr_ret_depth -= 1

    def probe_sched_switch(self, prev: Any, nxt: Any) -> None:
        """ftrace_graph_probe_sched_switch(): without sleep-time, shift calltimes."""
        if self.sleep_time or not self.active:
            return
        ts = self._now()
        self.task_state(prev).timestamp = ts
        nst = self.task_state(nxt)
        if not nst.timestamp:
            return
        delta = ts - nst.timestamp
        for frame in nxt.ret_stack:
            if frame and frame[0] == self._return_handler:
                frame[2] += delta

    # ------------------------------------------------------------------ registration
    def init_ops(self, gops: FgraphOps, src_ops: FtraceOps | None) -> None:
        """fgraph_init_ops(): a graph user shares ``src_ops``' filter hashes."""
        dst = gops.ops
        dst.flags = OPS_FL_PID
        if src_ops is not None:
            dst.func_hash = src_ops.local_hash
            dst.flags |= OPS_FL_INITIALIZED
            dst.private = src_ops.private

    def _pid_entry(self, gops: FgraphOps) -> EntryFunc:
        trace_task = self.ftrace.trace_task

        def fgraph_pid_func(trace: FgraphEnt, g: FgraphOps) -> bool:
            tr = g.ops.private
            if tr is not None and not trace_task(tr):
                return False
            assert g.saved_func is not None
            return g.saved_func(trace, g)

        return fgraph_pid_func

    def update_pid_func(self) -> None:
        """fgraph_update_pid_func()."""
        for op in self.graph_ops.subop_list:
            gops = op.owner
            if op.flags & OPS_FL_PID and isinstance(gops, FgraphOps) and gops.saved_func:
                gops.entryfunc = (self._pid_entry(gops) if self.ftrace.pids_enabled(op)
                                  else gops.saved_func)

    def register_ftrace_graph(self, gops: FgraphOps) -> None:
        """register_ftrace_graph(): ENOSPC when all 16 slots are taken."""
        i = self._lru_alloc()
        if i < 0:
            raise KernelError(errno.ENOSPC)
        gops.idx = i
        self.active += 1
        gops.saved_func = gops.entryfunc
        if self.ftrace.pids_enabled(gops.ops):
            gops.entryfunc = self._pid_entry(gops)
        if self.active == 2:
            self.direct_gops = None
        if self.active == 1:
            self.direct_gops = gops
            self._tasks.clear()  # start_graph_tracing(): fresh shadow stacks and vars
        else:
            for st in self._tasks.values():
                st.vars[i] = 0
        try:
            self.ftrace.ftrace_startup_subops(self.graph_ops, gops.ops)
        except KernelError:
            self.active -= 1
            gops.saved_func = None
            self._lru_release(i)
            if self.active == 1:
                self.direct_gops = next(g for g in self.array if g is not None)
            raise
        self.array[i] = gops

    def unregister_ftrace_graph(self, gops: FgraphOps) -> None:
        if not self.active:
            return
        if not 0 <= gops.idx < FGRAPH_ARRAY_SIZE or self.array[gops.idx] is not gops:
            return
        self._lru_release(gops.idx)
        self.array[gops.idx] = None
        self.active -= 1
        try:
            self.ftrace.ftrace_shutdown_subops(self.graph_ops, gops.ops)
        except KernelError:
            pass
        if self.active == 1:
            self.direct_gops = next(g for g in self.array if g is not None)
        elif not self.active:
            self.direct_gops = None
        gops.saved_func = None

    # ------------------------------------------------------------------ graph filters
    def graph_set_hash(self, hash_: FtraceHash, buffer: str) -> None:
        """ftrace_graph_set_hash(): EINVAL when nothing matched (or nothing removed)."""
        ft = self.ftrace
        g = filter_parse_regex(buffer)
        fail = True
        if g.type != 5:  # MATCH_INDEX never matches here (ftrace_match has no case)
            # DISABLED records are already left out of the match set
            hits = ft._match_record_set(g, None, False)
            ents = hash_.ents
            if not g.negate:
                if hits:
                    fail = False
                    ents.update(dict.fromkeys(hits))
            else:
                for i in hits:
                    if i in ents:
                        del ents[i]
                        fail = False
        if fail:
            raise KernelError(errno.EINVAL)

    def graph_show_text(self, typ: int) -> str:
        """g_show over the committed hash (read at every g_start, not the open copy)."""
        h = self.graph_hash if typ == GRAPH_FILTER_FUNCTION else self.graph_notrace_hash
        if h.empty():
            return ("#### all functions enabled ####\n" if typ == GRAPH_FILTER_FUNCTION
                    else "#### no functions disabled ####\n")
        ft = self.ftrace
        return "".join(ft.rec_name(i) + "\n" for i in ft.hash_display_order(h.ents))

    def graph_open(self, typ: int, read: bool, write: bool, trunc: bool) -> GraphRegexIter:
        """ftrace_graph_open() / ftrace_graph_notrace_open()."""
        new_hash: FtraceHash | None = None
        if write:
            cur = self.graph_hash if typ == GRAPH_FILTER_FUNCTION else self.graph_notrace_hash
            new_hash = FtraceHash() if trunc else cur.copy()
        return GraphRegexIter(self, typ, new_hash)

    def graph_addr(self, ip: int) -> bool:
        """Is ``ip`` in set_graph_function (empty = every function)?"""
        h = self.graph_hash
        if h.empty():
            return True
        i = self.ftrace.ip_to_index(ip)
        return i is not None and i in h.ents

    def graph_notrace_addr(self, ip: int) -> bool:
        h = self.graph_notrace_hash
        if not h.ents:
            return False
        i = self.ftrace.ip_to_index(ip)
        return i is not None and i in h.ents


class GraphRegexIter:
    """Per-open state of set_graph_function/set_graph_notrace (ftrace_graph_data)."""

    def __init__(self, fgraph: Fgraph, typ: int, new_hash: FtraceHash | None) -> None:
        self.fgraph = fgraph
        self.type = typ
        self.new_hash = new_hash
        self.parser = TraceParser(FTRACE_BUFF_MAX)
        self.pos = 0
        self.released = False
        self.last_added: str | None = None

    def write_once(self, data: bytes) -> int:
        """ftrace_graph_write(): one word per call."""
        if not data:
            return 0
        if self.new_hash is None:
            raise KernelError(errno.EINVAL)
        parser = self.parser
        read = parser.feed(data, self.pos)
        self.pos += read
        if parser.loaded() and not parser.cont:
            word = parser.word
            parser.clear()
            # adding the same glob again right after it matched changes nothing (a
            # negated one would fail the second time: it is always applied)
            if word != self.last_added:
                self.fgraph.graph_set_hash(self.new_hash, word)
                self.last_added = word if not word.startswith("!") else None
        return read

    def write(self, data: bytes) -> int:
        """A write(2): one word per call, as user space re-writing after short writes."""
        return write_words(self.write_once, data)

    def show(self) -> str:
        return self.fgraph.graph_show_text(self.type)

    def release(self) -> None:
        """ftrace_graph_release(): last word, then swap the global hash in."""
        if self.released:
            return
        self.released = True
        if self.new_hash is None:
            return
        parser = self.parser
        if parser.loaded():
            try:
                self.fgraph.graph_set_hash(self.new_hash, parser.word)
            except KernelError:
                pass
        parser.clear()
        new = FtraceHash() if self.new_hash.empty() else self.new_hash.copy()
        if self.type == GRAPH_FILTER_FUNCTION:
            self.fgraph.graph_hash = new
        else:
            self.fgraph.graph_notrace_hash = new


def boot(kernel: Kernel) -> Fgraph:
    """Initcall: the fgraph core on top of ``kernel.ftrace``."""
    return Fgraph(kernel, kernel.ftrace)
