"""Tasks and CPUs: who is ``current`` on which CPU, and in what context.

The FUSE adapter makes the caller's process the current task for the duration of a
request (``Kernel.syscall_enter``); the workload switches between simulated tasks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TASK_COMM_LEN = 16
PID_MAX_DEFAULT = 0x8000   # include/linux/threads.h (CONFIG_BASE_SMALL=0)

# struct trace_entry.flags bits (trace.h: trace_flag_type)
TRACE_FLAG_IRQS_OFF = 0x01
TRACE_FLAG_IRQS_NOSUPPORT = 0x02
TRACE_FLAG_NEED_RESCHED = 0x04
TRACE_FLAG_HARDIRQ = 0x08
TRACE_FLAG_SOFTIRQ = 0x10
TRACE_FLAG_PREEMPT_RESCHED = 0x20
TRACE_FLAG_NMI = 0x40
TRACE_FLAG_BH_OFF = 0x80


@dataclass(slots=True)
class Task:
    pid: int
    tgid: int
    comm: str
    prio: int = 120
    uid: int = 0
    kthread: bool = False
    state: int = 0
    # function-graph shadow stack and ftrace recursion bits live with the task
    ret_stack: list = field(default_factory=list)
    trace_recursion: int = 0
    curr_ret_depth: int = -1


class Sched:
    """The run queues, reduced to what tracing observes."""

    def __init__(self, nr_cpus: int) -> None:
        self.nr_cpus = nr_cpus
        self.tasks: dict[int, Task] = {}
        self.idle = [self._new_idle(c) for c in range(nr_cpus)]
        self.curr: list[Task] = list(self.idle)
        self.cpu = 0
        self.current: Task = self.idle[0]
        # context of the running code: trace_entry flags and preempt_count
        self.irq_flags = 0
        self.preempt_count = 0
        self.next_pid = 200

    def _new_idle(self, cpu: int) -> Task:
        t = Task(0, 0, f"swapper/{cpu}", prio=120, kthread=True)
        return t

    def task(self, pid: int, comm: str | None = None, tgid: int | None = None,
             kthread: bool = False) -> Task:
        """Find or create task ``pid``; a changed comm is updated (exec).  "<...>" is
        what a caller's comm reads as once it is gone from /proc: it names a new task
        but never renames a known one."""
        t = self.tasks.get(pid)
        if t is None:
            t = Task(pid, tgid if tgid is not None else pid, (comm or "<...>")[:TASK_COMM_LEN - 1],
                     kthread=kthread)
            self.tasks[pid] = t
        elif comm is not None and comm != "<...>" and t.comm != comm[:TASK_COMM_LEN - 1]:
            t.comm = comm[:TASK_COMM_LEN - 1]
        return t

    def alloc_pid(self) -> int:
        while self.next_pid in self.tasks:
            self.next_pid += 1
        pid = self.next_pid
        self.next_pid += 1
        return pid

    def set_current(self, cpu: int, task: Task) -> None:
        self.cpu = cpu
        self.curr[cpu] = task
        self.current = task

    def run_on(self, cpu: int) -> None:
        self.cpu = cpu
        self.current = self.curr[cpu]
