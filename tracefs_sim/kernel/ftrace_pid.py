"""Function tracing by pid (kernel/trace/ftrace.c): ``set_ftrace_pid``,
``set_ftrace_notrace_pid`` and the ``function-fork`` option.

Each trace array keeps its two pid lists in ``tr.ftrace_state``.  An ops with
``FTRACE_OPS_FL_PID`` whose array has a list gets ``ftrace_pid_func`` in front of its
callback (``ftrace_update_pid_func``); fgraph applies the same test in its entry
(``fgraph_update_pid_func``).  The kernel caches the verdict per CPU at each
sched_switch (``ftrace_ignore_pid``); here the current task is tested at the call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .ftrace_ops import OPS_FL_PID, FtraceOps
from .trace_parser import trace_pid_write

if TYPE_CHECKING:
    from .ftrace import Ftrace
    from .mm import Regs
    from .sched import Task
    from .trace import TraceArray


class FtracePids:
    """The pid filtering of one kernel's function tracing."""

    def __init__(self, ft: Ftrace) -> None:
        self.ft = ft

    def pids_enabled(self, ops: FtraceOps) -> bool:
        """ftrace_pids_enabled(): the ops filters on its trace array's pid lists."""
        tr = ops.private
        if not ops.flags & OPS_FL_PID or tr is None:
            return False
        st = tr.ftrace_state
        return st.function_pids is not None or st.function_no_pids is not None

    def trace_task(self, tr: TraceArray, task: Task | None = None) -> bool:
        """!trace_ignore_this_task(function_pids, function_no_pids, task): the check
        ftrace_filter_pid_sched_switch_probe() caches in ftrace_ignore_pid."""
        st = tr.ftrace_state
        if task is None:
            task = self.ft.k.sched.current
        pids, no_pids = st.function_pids, st.function_no_pids
        if pids is not None and task.pid not in pids:
            return False
        return not (no_pids is not None and task.pid in no_pids)

    def ftrace_pid_func(self, ip: int, pip: int, op: FtraceOps, fregs: Regs | None) -> None:
        """The callback of an FL_PID ops while its array has pid lists: the ops' own
        callback (``saved_func``) for the tasks the lists let through."""
        tr = op.private
        if tr is not None and not self.trace_task(tr):
            return
        saved = op.saved_func
        assert saved is not None
        saved(ip, pip, op, fregs)

    def update_pid_func(self) -> None:
        """ftrace_update_pid_func(): after a pid list of some array changed."""
        ft = self.ft
        if not ft.ops_list:
            return
        dispatch = ft.dispatch
        for op in ft.ops_list:
            if op.flags & OPS_FL_PID and op.saved_func is not None:
                op.func = self.ftrace_pid_func if self.pids_enabled(op) else op.saved_func
                dispatch.update_trampoline(op)
        ft.k.fgraph.update_pid_func()
        dispatch.update_ftrace_function()

    # ------------------------------------------------------------------ the files
    def pid_write(self, tr: TraceArray, data: bytes, notrace: bool) -> int:
        """pid_write(): trace_pid_write() into a new list (all or nothing).  Returns the
        bytes consumed."""
        st = tr.ftrace_state
        result, read = trace_pid_write(st.function_no_pids if notrace else st.function_pids, data)
        if notrace:
            st.function_no_pids = result
        else:
            st.function_pids = result
        self.update_pid_func()
        return read

    def pid_reset(self, tr: TraceArray, notrace: bool) -> None:
        """ftrace_pid_reset(): an O_TRUNC open of set_ftrace_(notrace_)pid."""
        st = tr.ftrace_state
        if notrace:
            st.function_no_pids = None
        else:
            st.function_pids = None
        self.update_pid_func()

    def pid_show(self, tr: TraceArray, notrace: bool) -> str:
        st = tr.ftrace_state
        pids = st.function_no_pids if notrace else st.function_pids
        if pids is None:
            return "no pid\n"
        return "".join(f"{p}\n" for p in sorted(pids))

    # ------------------------------------------------------------------ function-fork
    def ftrace_pid_follow_fork(self, tr: TraceArray, enable: bool) -> None:
        """The function-fork option: children of listed tasks join the lists."""
        tr.ftrace_state.follow_fork = enable

    def sched_process_fork(self, tr: TraceArray, parent: Task, child: Task) -> None:
        """ftrace_pid_follow_sched_process_fork() for one trace array."""
        st = tr.ftrace_state
        if not st.follow_fork:
            return
        for lst in (st.function_pids, st.function_no_pids):
            if lst is not None and parent.pid in lst:
                lst.add(child.pid)

    def sched_process_free(self, tr: TraceArray, task: Task) -> None:
        """ftrace_pid_follow_sched_process_exit(): a freed task leaves the lists."""
        st = tr.ftrace_state
        if not st.follow_fork:
            return
        for lst in (st.function_pids, st.function_no_pids):
            if lst is not None:
                lst.discard(task.pid)
