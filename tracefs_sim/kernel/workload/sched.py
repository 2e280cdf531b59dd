"""The scheduler's visible side (kernel/sched/core.c): context switches, wakeups and
migrations, for the simulated tasks and for host tasks whose requests reach the mount.

A switch away from the idle task ends its idle loop first (``idle.py``: the tick
restarts); a switch to it enters the idle loop (the CPU halts).  __schedule() notes the
context switch to RCU (``rcu_utilization``), then ``sched_switch``; context_switch()
marks the task switched out for rseq and saves its FPU registers (``entry.py``).

A wakeup onto another CPU that idles is queued on that CPU's wake list and done there in
its IPI (``smp.py``); a new task put on another, idle CPU makes wake_up_new_task()'s
wakeup_preempt() send it a reschedule IPI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..sched import Task
from .defs import (
    HARDIRQ,
    NEED_RESCHED,
    SCHEDULE,
    STATE_PREEMPTED,
    STATE_RUNNING,
    STATE_S,
    STATE_Z,
    WAKEUP,
    D,
)

if TYPE_CHECKING:
    from . import Workload


class SchedModel:
    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        n = wl.k.nr_cpus
        self.task_cpu: dict[int, int] = {}        # pid -> CPU it last ran on
        self.run_start: dict[int, int] = {}       # pid -> ns it was switched in
        self.host: list[Task | None] = [None] * n  # host task running on a CPU since a request
        self.host_tick = [0] * n                   # tick of that task's last request
        self.asleep: set[int] = set()              # host pids switched out asleep
        self.traced: set[int] = set()              # host pids the ptrace tracer reports

    def switch(self, cpu: int, nxt: Task, prev_state: int = 0) -> None:
        """__schedule() on ``cpu``: the current task gives the CPU to ``nxt``."""
        wl = self.wl
        k = wl.k
        sched = k.sched
        prev = sched.curr[cpu]
        if prev is nxt:
            return
        sched.run_on(cpu)
        idle = sched.idle[cpu]
        if prev is idle and wl.idle.inidle[cpu]:
            wl.idle.leave(cpu)
        wl.rcu.note_context_switch()
        wl.sites.call(SCHEDULE)
        now = 0
        if prev.pid and wl.tp("sched_stat_runtime"):
            now = k.boot_clock.ns()
            ran = now - self.run_start.get(prev.pid, now)
            runtime = ran if ran > 20_000 else ran + 6_000 + wl.rng.randrange(40_000)
            wl.emit_ctx(D, 2, "sched_stat_runtime", prev.comm, prev.pid, runtime)
        tracing = k.trace
        tracing.record_task(prev)
        tracing.record_task(nxt)
        wl.emit_ctx(D, 2, "sched_switch", prev.comm, prev.pid, prev.prio, prev_state,
                    nxt.comm, nxt.pid, nxt.prio)
        k.fgraph.probe_sched_switch(prev, nxt)
        drop = wl.mm.switch_mm(cpu, prev, nxt)      # context_switch(), before switch_to()
        wl.entry.switch(cpu, prev, nxt)             # switch_to(): the FPU, rseq
        sched.set_current(cpu, nxt)
        if nxt.pid:
            self.task_cpu[nxt.pid] = cpu
            if now or wl.tp("sched_stat_runtime"):
                self.run_start[nxt.pid] = now or k.boot_clock.ns()
        if prev is self.host[cpu]:
            self.host[cpu] = None
            if prev_state not in (STATE_RUNNING, STATE_PREEMPTED, STATE_Z):
                self.asleep.add(prev.pid)
        wl.mm.finish_task_switch(cpu, prev, prev_state, drop)
        if nxt is idle:
            wl.idle.enter(cpu)

    def wakeup(self, cpu: int, task: Task, target: int | None = None) -> None:
        """try_to_wake_up(task) from the code running on ``cpu``, onto ``target``
        (default ``cpu``) whose run queue it joins here."""
        wl = self.wl
        sched = wl.k.sched
        sched.run_on(cpu)
        if target is None:
            target = cpu
        base = wl.base_depth()
        wl.emit_ctx(D, base + 2, "sched_waking", task.comm, task.pid, task.prio, target)
        wl.sites.call(WAKEUP)
        self.placed(task, target, base + 2)
        # the woken task preempts idle: need-resched is set when the wakeup is traced
        resched = NEED_RESCHED if sched.curr[target].pid == 0 and target == cpu else 0
        wl.emit_ctx(D | resched, base + 3, "sched_wakeup", task.comm, task.pid, task.prio, target)
        self.asleep.discard(task.pid)

    def placed(self, task: Task, target: int, depth: int) -> None:
        """set_task_cpu() when the wakeup moves the task (sched_migrate_task, rseq)."""
        wl = self.wl
        last = self.task_cpu.get(task.pid)
        if task.pid and last is not None and last != target:
            wl.emit_ctx(D, depth, "sched_migrate_task", task.comm, task.pid, task.prio, last, target)
            wl.entry.migrate(task)
        self.task_cpu[task.pid] = target

    def activate(self, cpu: int, task: Task) -> None:
        """ttwu_do_activate() on ``cpu`` in its wake-list IPI (sched_ttwu_pending(), the
        run queue locked): the woken task preempts the idle task."""
        wl = self.wl
        wl.emit_ctx(HARDIRQ | NEED_RESCHED, wl.base_depth() + 1, "sched_wakeup", task.comm, task.pid,
                    task.prio, cpu)
        self.asleep.discard(task.pid)

    def wakeup_new(self, cpu: int, task: Task) -> None:
        """wake_up_new_task(): the forked child is put on ``cpu``'s run queue; put on
        another CPU that idles, it preempts the idle task there (reschedule IPI), and
        a traced child runs there at once."""
        wl = self.wl
        here = wl.k.sched.cpu
        self.task_cpu[task.pid] = cpu
        depth = wl.base_depth() + 2
        wl.emit_ctx(D, depth, "sched_wakeup_new", task.comm, task.pid, task.prio, cpu)
        if cpu == here or not wl.background.cpu_idle(cpu) or not wl.background.live:
            return
        t = wl.traced.thread(task.pid)
        if t is not None:
            wl.background.runq[cpu].append((None, lambda c: wl.traced.resume(t)))
        wl.smp.send_reschedule(cpu, "wakeup_preempt", depth)

    def run_task(self, cpu: int, task: Task) -> None:
        """A host task's request starts on ``cpu``: the scheduler gave it the CPU
        (woken first when it had blocked), unless it is already running there."""
        wl = self.wl
        sched = wl.k.sched
        if not wl.enabled or task.pid <= 0:
            sched.set_current(cpu, task)
            return
        hp = wl.hostprocs
        if task.pid not in hp.seen:
            hp.seen.add(task.pid)
            if hp.synth_host_start and not wl.quiet():
                hp.spawn_requester(cpu, task)
        for c, t in enumerate(self.host):
            if t is task and c != cpu:     # it moved: it blocked on the other CPU
                self.host_off(c, STATE_S)
        if self.host[cpu] is not task:
            if self.host[cpu] is not None:
                self.host_off(cpu, STATE_S)
            sched.set_current(cpu, sched.idle[cpu])
            if task.pid in self.asleep:
                self.wakeup(cpu, task)
            self.switch(cpu, task)
            self.host[cpu] = task
        self.host_tick[cpu] = wl.ticks
        sched.set_current(cpu, task)

    def host_off(self, cpu: int, state: int) -> None:
        """The host task running on ``cpu`` blocks (or exits): the CPU goes idle."""
        task = self.host[cpu]
        if task is None:
            return
        wl = self.wl
        sched = wl.k.sched
        saved = sched.cpu, sched.current
        sched.set_current(cpu, task)
        self.switch(cpu, sched.idle[cpu], prev_state=state)
        self.host[cpu] = None
        sched.set_current(cpu, sched.idle[cpu])
        if saved[0] != cpu:
            sched.cpu, sched.current = saved

    def forget(self, task: Task) -> None:
        self.task_cpu.pop(task.pid, None)
        self.run_start.pop(task.pid, None)
        self.asleep.discard(task.pid)
        self.wl.entry.fpu.forget(task.pid)
        self.wl.entry.rseq.forget(task.pid)
