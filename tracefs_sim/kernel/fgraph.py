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
from .ftrace_iter import FTRACE_BUFF_MAX
from .ftrace_ops import OPS_FL_INITIALIZED, OPS_FL_PID, FtraceHash, FtraceOps
from .ftrace_records import MATCH_INDEX, filter_parse_regex
from .trace_parser import WordWriter

if TYPE_CHECKING:
    from .core import Kernel
    from .ftrace import Ftrace, RetFrame
    from .mm import Regs
    from .sched import Task

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
        self.private = private  # void *private: the trace array of a tracer's gops
        self.ops = ops if ops is not None else FtraceOps(name="fgraph_ops")
        self.ops.owner = self
        self.saved_func: EntryFunc | None = None
        self.idx = -1


class _TaskGraph:
    """Per-task fgraph state: task vars (one long per array slot), frames, overrun."""

    __slots__ = ("task", "vars", "frames", "overrun", "pause", "timestamp")

    def __init__(self, task: Task) -> None:
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
    def task_state(self, task: Task) -> _TaskGraph:
        st = self._tasks.get(id(task))
        if st is None or st.task is not task:
            st = self._tasks[id(task)] = _TaskGraph(task)
        return st

    def get_task_var(self, gops: FgraphOps, task: Task | None = None) -> int:
        """fgraph_get_task_var(): the gops' per-task long."""
        t = task if task is not None else self.k.sched.current
        return self.task_state(t).vars[gops.idx]

    def set_task_var(self, gops: FgraphOps, val: int, task: Task | None = None) -> None:
        t = task if task is not None else self.k.sched.current
        self.task_state(t).vars[gops.idx] = val

    def pause_graph_tracing(self) -> None:
        self.task_state(self.k.sched.current).pause += 1

    def unpause_graph_tracing(self) -> None:
        self.task_state(self.k.sched.current).pause -= 1

    def _now(self) -> int:
        return self.k.boot_clock.ns()

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
    def ftrace_graph_func(self, ip: int, parent_ip: int, op: FtraceOps, fregs: Regs | None) -> None:
        """x86 ftrace_graph_func → prepare_ftrace_return → function_graph_enter."""
        task = self.k.sched.current
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

    def _enter(self, task: Task, st: _TaskGraph, ip: int) -> None:
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
            i = self.ftrace.records.ip_to_index(ip)
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

    def _return_handler(self, frame: RetFrame, retval: int) -> None:
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

    def probe_sched_switch(self, prev: Task, nxt: Task) -> None:
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
        trace_task = self.ftrace.pid.trace_task

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
                gops.entryfunc = (self._pid_entry(gops) if self.ftrace.pid.pids_enabled(op)
                                  else gops.saved_func)

    def register_ftrace_graph(self, gops: FgraphOps) -> None:
        """register_ftrace_graph(): ENOSPC when all 16 slots are taken."""
        i = self._lru_alloc()
        if i < 0:
            raise KernelError(errno.ENOSPC)
        gops.idx = i
        self.active += 1
        gops.saved_func = gops.entryfunc
        if self.ftrace.pid.pids_enabled(gops.ops):
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
        g = filter_parse_regex(buffer)
        fail = True
        if g.type != MATCH_INDEX:  # never matches here (ftrace_match has no case for it)
            # DISABLED records are already left out of the match set
            hits = self.ftrace.records.match_record_set(g, None, False)
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
        records = self.ftrace.records
        return "".join(records.rec_name(i) + "\n" for i in records.hash_display_order(h.ents))

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
        i = self.ftrace.records.ip_to_index(ip)
        return i is not None and i in h.ents

    def graph_notrace_addr(self, ip: int) -> bool:
        h = self.graph_notrace_hash
        if not h.ents:
            return False
        i = self.ftrace.records.ip_to_index(ip)
        return i is not None and i in h.ents


class GraphRegexIter(WordWriter):
    """Per-open state of set_graph_function/set_graph_notrace (ftrace_graph_data)."""

    def __init__(self, fgraph: Fgraph, typ: int, new_hash: FtraceHash | None) -> None:
        super().__init__(FTRACE_BUFF_MAX)
        self.fgraph = fgraph
        self.type = typ
        self.new_hash = new_hash  # None: opened for reading only
        self.released = False

    def apply_word(self, word: str) -> None:
        """ftrace_graph_write() of one word."""
        if self.new_hash is None:
            raise KernelError(errno.EINVAL)
        self.fgraph.graph_set_hash(self.new_hash, word)

    def show(self) -> str:
        return self.fgraph.graph_show_text(self.type)

    def release(self) -> None:
        """ftrace_graph_release(): last word, then swap the global hash in."""
        if self.released:
            return
        self.released = True
        if self.new_hash is None:
            return
        self.apply_last_word()
        new = FtraceHash() if self.new_hash.empty() else self.new_hash.copy()
        if self.type == GRAPH_FILTER_FUNCTION:
            self.fgraph.graph_hash = new
        else:
            self.fgraph.graph_notrace_hash = new


def boot(kernel: Kernel) -> Fgraph:
    """Initcall: the fgraph core on top of ``kernel.ftrace``."""
    return Fgraph(kernel, kernel.ftrace)
