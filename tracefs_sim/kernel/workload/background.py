"""The passage of time on the simulated machine: what each CPU's clock event device and
the devices make happen, in time order, and what the kernel's own threads do then.

Each CPU's local APIC timer fires when its clock event device is programmed for (the
first hrtimer queued there, ``hrtimer.py``): every jiffy while the CPU runs a task (the
tick), and only for its next timer once it idles with the tick stopped (``tick.py``,
``idle.py``).  ``run_until(now)`` fires those interrupts up to ``now``, each at its own
time; a CPU whose timeline the traced model holds (a syscall whose path has not run yet)
waits until it is released.

What runs then: the timer wheel's timers (``timer.py``) wake the kernel's threads —
kcompactd0 every 500 ms (a global timer: the timer migration hierarchy hands it to an
active CPU while its own CPU idles), the per-CPU vmstat work and the memcg stats flush
(deferrable: they wait for a tick), the RCU grace-period kthread when callbacks wait
(``rcu.py``).  A thread woken for an idle CPU other than the waker's goes there by IPI
(``smp.py``).  On a plain mount the simulated shell session types a command now and
then: a virtio-net receive interrupt wakes it (``shell.py``).

Nothing is attached (``Workload.quiet()``): nothing runs and the machine's state goes
stale; it is rebuilt (``resync``) from what runs on each CPU when something is attached
again — the same when a catch-up would span more than ``MAX_BACKLOG_NS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..clock import HZ, TICK_NS, jiffies_of
from ..sched import TRACE_FLAG_SOFTIRQ, Task
from .cgroup import CgroupRstat
from .defs import (
    HARDIRQ,
    HOST_TICKS,
    KTHREAD_STACK,
    KTHREADS,
    MEMCG_FLUSH_WORK,
    NET_IRQ,
    NET_IRQ_NAME,
    NR_CPUS,
    PCPU_BASE,
    PCPU_STRIDE,
    STATE_I,
    STATE_PREEMPTED,
    STATE_RUNNING,
    STATE_S,
    TIMER_DEFERRABLE,
    TIMER_IRQSAFE,
    TIMER_PINNED,
    VMSTAT_WORK,
    D,
    wheel_bucket,
)
from .hrtimer import KTIME_MAX
from .irq import NET_RX_SOFTIRQ, RCU_SOFTIRQ, SCHED_SOFTIRQ, TIMER_SOFTIRQ
from .timer import BASE_DEF, BASE_GLOBAL, BASE_LOCAL, WheelTimer

if TYPE_CHECKING:
    from . import Workload
    from .traced import Thread

MAX_BACKLOG_NS = 1_000_000_000   # a catch-up spanning more fast-forwards (no trace)
MAX_EVENTS = 20_000              # interrupts fired per catch-up at most
KCOMPACTD_TIMEOUT = HZ // 2      # msecs_to_jiffies(HPAGE_FRAG_CHECK_INTERVAL_MSEC)
FLUSH_TIME = 2 * HZ              # memcg's stats_flush_dwork period
STAT_INTERVAL = HZ               # sysctl_stat_interval
SHELL_RATE = 4.0                 # commands per second of the simulated shell session
NET_IRQ_CPU = 0                  # virtio0-input.0's effective affinity
BALANCE_TICKS = 8                # a busy CPU's periodic load balance (SCHED_SOFTIRQ)
KCOMPACTD_PID = 39
WORKER_PIDS = {0: 9, 1: 46}      # kworker/N:M that runs CPU N's mm_percpu_wq work
UNBOUND_WORKER = 100             # kworker/u8:3

# a queued task to run on a CPU: (kthread, its work returning the state it sleeps in),
# or (None, a runner that switches tasks itself)
RunEntry = tuple["Task | None", Callable[[int], "int | None"]]


@dataclass(slots=True, eq=False)
class DelayedWork:
    """A struct delayed_work: its work item, the workqueue, the worker that runs it."""

    work: int
    function: str
    wq: str
    cpu: int | None                 # the CPU of a per-CPU workqueue's work, None: unbound
    worker: Task
    timer: WheelTimer
    period: int


def round_jiffies(j: int, cpu: int, now: int) -> int:
    """round_jiffies_common(j, cpu, false): to a whole second, skewed 3 jiffies per CPU."""
    orig = j
    j += cpu * 3
    rem = j % HZ
    j = j - rem if rem < HZ // 4 else j - rem + HZ
    j -= cpu * 3
    return j if j > now else orig


class Background:
    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        k = wl.k
        n = k.nr_cpus
        self.stale = True
        self.done_ns = 0
        self.runq: list[list[RunEntry]] = [[] for _ in range(n)]
        self.bound: dict[int, int | None] = {}
        for comm, pid, cpu in KTHREADS:
            t = k.sched.task(pid, comm, kthread=True)
            t.prio = 120
            self.bound[pid] = cpu
        self.cgroup = CgroupRstat(wl)
        self.kcompactd = k.sched.task(KCOMPACTD_PID, "kcompactd0", kthread=True)
        self.kcompactd_timer = WheelTimer(KTHREAD_STACK + KCOMPACTD_PID * 0x4000 + 0x3D60,
                                          "process_timeout", self._kcompactd_timeout)
        self.vmstat: list[DelayedWork] = []
        for c in range(n):
            work = PCPU_BASE + c * PCPU_STRIDE + VMSTAT_WORK
            worker = k.sched.tasks[WORKER_PIDS.get(c, WORKER_PIDS[0])]
            dw = DelayedWork(work, "vmstat_update", "mm_percpu_wq", c, worker,
                             WheelTimer(work + 0x20, "delayed_work_timer_fn", self._dwork_timer,
                                        TIMER_DEFERRABLE | TIMER_PINNED | TIMER_IRQSAFE), STAT_INTERVAL)
            self.vmstat.append(dw)
        self.memcg = DelayedWork(MEMCG_FLUSH_WORK, "flush_memcg_stats_dwork", "events_unbound", None,
                                 k.sched.tasks[UNBOUND_WORKER],
                                 WheelTimer(MEMCG_FLUSH_WORK + 0x20, "delayed_work_timer_fn",
                                            self._dwork_timer, TIMER_DEFERRABLE | TIMER_IRQSAFE),
                                 FLUSH_TIME)
        self._dworks = {dw.timer.addr: dw for dw in (*self.vmstat, self.memcg)}
        self.next_shell = KTIME_MAX
        self.shell_due = False
        self.kthreads = True             # False: the kernel's threads sleep for good (tests)
        self.busy_ticks = [0] * n

    # ------------------------------------------------------------------ state
    @property
    def live(self) -> bool:
        """Is the machine's detailed state kept (something attached, not stale)?"""
        return not self.stale

    def running(self, cpu: int) -> Task:
        """The task an interrupt on ``cpu`` interrupts: the idle task while the CPU
        idles, else the host task that made the last request there, else the CPU's
        current task."""
        wl = self.wl
        sched = wl.k.sched
        if wl.idle.inidle[cpu]:
            return sched.idle[cpu]
        host = wl.sched.host[cpu]
        return host if host is not None else sched.curr[cpu]

    def cpu_idle(self, cpu: int) -> bool:
        """idle_cpu(): the CPU idles with nothing queued to run."""
        return self.wl.idle.inidle[cpu] and not self.runq[cpu]

    # ------------------------------------------------------------------ time
    def run_until(self, now: int) -> None:
        """Fire every interrupt due up to ``now``, each at its own time."""
        wl = self.wl
        if wl.quiet():
            self.stale = True
            return
        if self.stale or now - self.done_ns > MAX_BACKLOG_NS:
            self.resync(now - 1)
        clock = wl.k.boot_clock
        hold = wl.traced.hold
        hrt = wl.hrtimers
        saved = clock.pinned
        if min(hrt.expires_next) > now and self.next_shell > now:
            # nothing due (a traced task's records come many times per tick): the loop
            # below would fire nothing; its clock.pin(saved) is kept
            clock.pin(saved)
            self.done_ns = max(self.done_ns, now)
            wl.ticks = now // TICK_NS
            return
        fired = 0
        try:
            while fired < MAX_EVENTS:
                best, cpu = KTIME_MAX, -1
                for c in range(wl.k.nr_cpus):
                    t = hrt.expires_next[c]
                    h = hold[c]
                    if t < best and (h is None or t <= h):
                        best, cpu = t, c
                shell = self.next_shell < best and self.next_shell <= now
                if shell:
                    best = self.next_shell
                if best > now:
                    break
                fired += 1
                if not clock.deterministic:
                    clock.pin(max(best, clock.floor(cpu if cpu >= 0 else NET_IRQ_CPU) + 1))
                wl.ticks = best // TICK_NS
                if shell:
                    self._shell_command(best)
                else:
                    self._timer_interrupt(cpu)
        finally:
            clock.pin(saved)
        self.done_ns = max(self.done_ns, now)
        wl.ticks = now // TICK_NS

    def _timer_interrupt(self, cpu: int) -> None:
        """The local APIC timer of ``cpu`` fires (a host task that made no request for a
        while blocked before: the CPU idles first)."""
        wl = self.wl
        ws = wl.sched
        if ws.host[cpu] is not None and wl.ticks - ws.host_tick[cpu] >= HOST_TICKS:
            ws.host_off(cpu, STATE_S)
        wl.irq.apic_timer(cpu)

    def after_irq(self, cpu: int) -> None:
        """An interrupt on ``cpu`` returns: a halted idle CPU leaves its halt; what the
        interrupt woke here runs (preempting the interrupted task); an idle CPU with
        nothing to run goes round its idle loop again."""
        wl = self.wl
        idle = wl.idle
        halted = idle.halted[cpu]
        if halted:
            idle.woken(cpu)
        got = wl.tick.got_tick(cpu) if idle.inidle[cpu] else False
        if self.runq[cpu]:
            self._run_queue(cpu)
        if idle.inidle[cpu] and not idle.halted[cpu]:
            idle.halt(cpu, got)

    def _run_queue(self, cpu: int) -> None:
        """schedule() on ``cpu``: the woken kthreads in turn, each until it sleeps, then
        back to what ran (or idle); a runner of another kind switches itself."""
        wl = self.wl
        ws = wl.sched
        sched = wl.k.sched
        q = self.runq[cpu]
        prev = self.running(cpu)
        host = ws.host[cpu]
        cur, state = prev, STATE_RUNNING
        while q:
            task, work = q.pop(0)
            if task is None:
                if cur is not prev:
                    self._switch_back(cpu, prev, host, state)
                    cur = prev
                work(cpu)
                prev = cur = self.running(cpu)
                host = ws.host[cpu]
                continue
            if cur is prev:
                state = STATE_PREEMPTED if prev.pid else STATE_RUNNING
            ws.switch(cpu, task, prev_state=state)
            sched.set_current(cpu, task)
            got = work(cpu)
            state = STATE_S if got is None else got
            cur = task
        if cur is not prev:
            self._switch_back(cpu, prev, host, state)

    def _switch_back(self, cpu: int, prev: Task, host: Task | None, state: int) -> None:
        wl = self.wl
        wl.sched.switch(cpu, prev, prev_state=state)
        if host is prev and prev.pid:
            wl.sched.host[cpu] = host
        wl.k.sched.set_current(cpu, prev)

    # ------------------------------------------------------------------ resync
    def resync(self, now: int) -> None:
        """Rebuild the machine's state for time ``now`` from what runs on each CPU (no
        trace: the machine did not run since it went stale)."""
        wl = self.wl
        k = wl.k
        n = k.nr_cpus
        jiffies = jiffies_of(now)
        idle = [wl.idle.inidle[c] for c in range(n)]
        hrt = wl.hrtimers
        for c in range(n):
            for timer in list(hrt.queues[c]):
                if timer.expires <= now:
                    hrt.drop(timer)
        wl.rcu.flush()
        self.cgroup.flushed()
        for c in range(n):
            wl.irq.softirq_pending[c] = 0
            wl.smp.queue[c] = []
            self.runq[c] = []
            wl.timers.is_idle[c] = idle[c]
            wl.idle.halted[c] = idle[c]
        if self.kthreads:
            self._arm(self.kcompactd_timer, jiffies + 1 + wl.rng.randrange(KCOMPACTD_TIMEOUT),
                      wl.sched.task_cpu.get(KCOMPACTD_PID, 0) % n, jiffies)
            for dw in self.vmstat:
                self._arm(dw.timer, round_jiffies(jiffies + 1 + wl.rng.randrange(HZ), dw.cpu or 0, jiffies),
                          dw.cpu or 0, jiffies)
            self._arm(self.memcg.timer, jiffies + 1 + wl.rng.randrange(FLUSH_TIME),
                      wl.sched.task_cpu.get(UNBOUND_WORKER, 0) % n, jiffies)
        else:
            for timer in (self.kcompactd_timer, self.memcg.timer, *(dw.timer for dw in self.vmstat)):
                if timer.pending:
                    wl.timers.bases[timer.cpu][timer.base].remove(timer)
                    timer.cpu = -1
        for c in range(n):
            wl.tick.set_state(c, idle[c], now)
        basem = now // TICK_NS * TICK_NS
        wl.tmigr.set_state(idle, [wl.timers.global_expiry(c, jiffies, basem) for c in range(n)])
        for c in range(n):
            wake = wl.tmigr.tmc[c].wakeup
            ts = wl.tick.ts[c]
            if idle[c] and wake != KTIME_MAX and (not ts.timer.queued or wake < ts.timer.expires):
                hrt.drop(ts.timer)
                ts.timer.expires = ts.timer.softexpires = max(wake, basem + TICK_NS)
                ts.timer.cpu = c
                hrt.queues[c].append(ts.timer)
                ts.next_tick = ts.timer.expires
            hrt.expires_next[c] = hrt.next_expiry(c)
            hrt.dev_stopped[c] = hrt.expires_next[c] == KTIME_MAX
        self.next_shell = now + int(wl.rng.expovariate(SHELL_RATE) * 1e9) if wl.shell.enabled else KTIME_MAX
        self.done_ns = now
        self.stale = False

    def _arm(self, timer: WheelTimer, expires: int, cpu: int, jiffies: int) -> None:
        """Queue a background timer that is not pending, or whose expiry passed, without
        a trace (the machine did not run meanwhile)."""
        timers = self.wl.timers
        if timer.pending:
            if timer.bucket > jiffies:
                return
            timers.bases[timer.cpu][timer.base].remove(timer)
        base = BASE_DEF if timer.flags & TIMER_DEFERRABLE else \
            BASE_LOCAL if timer.flags & TIMER_PINNED else BASE_GLOBAL
        timer.expires = expires
        timer.bucket, timer.idx = wheel_bucket(expires, jiffies)
        timer.cpu, timer.base = cpu, base
        timers.bases[cpu][base].append(timer)

    # ------------------------------------------------------------------ the tick's part
    def sched_tick(self, cpu: int) -> None:
        """sched_tick(): the running task's runtime (update_curr() of the fair class,
        under the run queue lock); a busy CPU's periodic load balance."""
        wl = self.wl
        cur = wl.k.sched.current
        if cur.pid:
            base = wl.base_depth()
            runtime = TICK_NS - wl.rng.randrange(TICK_NS // 4)
            wl.emit_ctx(HARDIRQ, base + 1, "sched_stat_runtime", cur.comm, cur.pid, runtime)
            self.busy_ticks[cpu] += 1
            if self.busy_ticks[cpu] % BALANCE_TICKS == 0:
                wl.irq.raise_softirq(cpu, SCHED_SOFTIRQ)

    # ------------------------------------------------------------------ softirqs
    def timer_softirq(self, cpu: int, depth: int) -> None:
        self.wl.timers.run_softirq(cpu, depth)

    def sched_softirq(self, cpu: int, depth: int) -> None:
        """sched_balance_softirq(): nothing to pull on this machine."""
        self.wl.sites.call("sched_balance_domains", "sched_balance_softirq")

    def net_rx(self, cpu: int, depth: int) -> None:
        """net_rx_action(): virtio-net's NAPI poll; a packet for the shell's terminal
        session wakes it."""
        wl = self.wl
        wl.sites.call(("__napi_poll", "napi_complete_done"), "net_rx_action")
        if self.shell_due:
            self.shell_due = False
            shell = wl.shell.task
            self.wake(cpu, shell, self._shell_target(cpu), (None, self._shell_runs))

    # ------------------------------------------------------------------ wakeups
    def _target(self, cpu: int, task: Task) -> int:
        """select_task_rq_fair() for a kthread: its bound CPU, else its last CPU if that
        idles (wake_affine_idle() with an idle waker, select_idle_sibling()), else the
        waker's."""
        bound = self.bound.get(task.pid)
        if bound is not None and bound < self.wl.k.nr_cpus:
            return bound
        prev = self.wl.sched.task_cpu.get(task.pid, cpu) % self.wl.k.nr_cpus
        if prev != cpu and self.cpu_idle(prev) and self.wl.traced.hold[prev] is None:
            return prev
        return cpu

    def wake(self, cpu: int, task: Task, target: int, entry: RunEntry) -> None:
        """try_to_wake_up(task) from ``cpu`` (in an interrupt there) onto ``target``: the
        wakeup here, or queued on an idle target's wake list (its IPI activates it);
        then it runs there once the interrupt returns (``entry``)."""
        wl = self.wl
        base = wl.base_depth()
        if target != cpu and self.cpu_idle(target):
            wl.emit_ctx(D, base + 2, "sched_waking", task.comm, task.pid, task.prio, target)
            wl.sites.call(("try_to_wake_up", "ttwu_queue_wakelist"))
            wl.sched.placed(task, target, base + 2)

            def activate() -> None:
                wl.sched.activate(target, task)
                self.runq[target].append(entry)
            wl.smp.ttwu_queue_wakelist(target, task.pid, activate, base + 2)
            return
        wl.sched.wakeup(cpu, task, target)
        self.runq[target].append(entry)
        if target != cpu:
            wl.smp.send_reschedule(target, "check_preempt_wakeup_fair", base + 3)

    def traced_woken(self, t: Thread, target: int) -> None:
        """A traced task woken in an interrupt on its idle CPU runs once the interrupt
        returns there."""
        wl = self.wl
        sched = wl.k.sched
        if (self.live and sched.cpu == target and sched.irq_flags & (HARDIRQ | TRACE_FLAG_SOFTIRQ)
                and wl.idle.inidle[target]):
            self.runq[target].append((None, lambda c: wl.traced.resume(t)))

    def wake_kthread(self, cpu: int, task: Task, work: Callable[[int], int | None]) -> None:
        self.wake(cpu, task, self._target(cpu, task), (task, work))

    def sleep_timeout(self, cpu: int, timer: WheelTimer, timeout: int) -> None:
        """schedule_timeout() in a kthread: an on-stack timer (timer_init), armed for
        ``timeout`` jiffies (process_timeout wakes it), then schedule()."""
        wl = self.wl
        wl.timers.init(timer)
        wl.timers.mod_timer(timer, jiffies_of(wl.k.boot_clock.peek()) + timeout, cpu)

    # ------------------------------------------------------------------ kcompactd
    def _kcompactd_timeout(self, timer: WheelTimer) -> None:
        self.wake_kthread(self.wl.k.sched.cpu, self.kcompactd, self._kcompactd)

    def _kcompactd(self, cpu: int) -> int:
        """kcompactd(): the timeout ended its wait; proactive compaction finds nothing to
        do; it sleeps again (mm_compaction_kcompactd_sleep, schedule_timeout)."""
        wl = self.wl
        wl.sites.call("kcompactd", None)
        wl.emit("mm_compaction_kcompactd_sleep", 0)
        self.sleep_timeout(cpu, self.kcompactd_timer, KCOMPACTD_TIMEOUT)
        return STATE_S

    # ------------------------------------------------------------------ workqueues
    def _dwork_timer(self, timer: WheelTimer) -> None:
        """delayed_work_timer_fn() → __queue_work(): the work is queued on its pool
        (workqueue_queue_work, workqueue_activate_work) and its worker woken."""
        wl = self.wl
        dw = self._dworks[timer.addr]
        cpu = wl.k.sched.cpu
        base = wl.base_depth()
        fn = wl.sites.sym(dw.function)
        if dw.cpu is None:
            req_cpu, pool_cpu = NR_CPUS, -1
        else:
            req_cpu = pool_cpu = dw.cpu
        wl.sites.call("__queue_work", "delayed_work_timer_fn")
        wl.emit_ctx(D, base + 1, "workqueue_queue_work", dw.work, fn, dw.wq, req_cpu, pool_cpu)
        wl.emit_ctx(D, base + 1, "workqueue_activate_work", dw.work, fn)
        self.wake_kthread(cpu, dw.worker, lambda c: self._run_work(c, dw))

    def _run_work(self, cpu: int, dw: DelayedWork) -> int:
        """worker_thread() → process_one_work(): the work function, which re-queues its
        delayed work; the worker then idles (TASK_IDLE)."""
        wl = self.wl
        fn = wl.sites.sym(dw.function)
        wl.emit("workqueue_execute_start", dw.work, fn)
        frames = wl.sites.enter_chain(("process_one_work", dw.function))
        if dw is self.memcg:
            self.cgroup.flush()
        wl.sites.leave_chain(frames)
        jiffies = jiffies_of(wl.k.boot_clock.peek())
        if dw.cpu is None:
            wl.timers.mod_timer(dw.timer, jiffies + dw.period, cpu)
        else:
            wl.timers.mod_timer(dw.timer, round_jiffies(jiffies + dw.period, dw.cpu, jiffies), dw.cpu)
        wl.emit("workqueue_execute_end", dw.work, fn)
        return STATE_I

    # ------------------------------------------------------------------ the shell session
    def _shell_target(self, cpu: int) -> int:
        """Where the woken shell runs: an idle CPU (the scheduler's choice is modelled:
        any idle one)."""
        wl = self.wl
        idle = [c for c in range(wl.k.nr_cpus)
                if self.cpu_idle(c) and wl.sched.host[c] is None and wl.traced.hold[c] is None]
        return wl.rng.choice(idle) if idle else cpu

    def _shell_command(self, t: int) -> None:
        """A keystroke of the shell session arrives: virtio-net's receive interrupt
        (NET_RX for the softirq), which wakes the shell there."""
        wl = self.wl
        self.next_shell = t + max(TICK_NS, int(wl.rng.expovariate(SHELL_RATE) * 1e9))
        if not wl.shell.enabled or any(wl.sched.host):
            return
        if wl.traced.hold[NET_IRQ_CPU] is not None:
            return
        self.shell_due = True

        def action(base: int) -> None:
            wl.irq.raise_softirq(NET_IRQ_CPU, NET_RX_SOFTIRQ)
        wl.irq.device(NET_IRQ_CPU, NET_IRQ, NET_IRQ_NAME, action, ("vring_interrupt", "__napi_schedule"))

    def _shell_runs(self, cpu: int) -> None:
        self.wl.shell.run_child(cpu, woken=True)

    # ------------------------------------------------------------------ boot
    def register(self) -> None:
        """open_softirq() of the vectors the machine raises."""
        irq = self.wl.irq
        irq.register_softirq(TIMER_SOFTIRQ, "run_timer_softirq", self.timer_softirq)
        irq.register_softirq(NET_RX_SOFTIRQ, "net_rx_action", self.net_rx)
        irq.register_softirq(SCHED_SOFTIRQ, "sched_balance_softirq", self.sched_softirq)
        irq.register_softirq(RCU_SOFTIRQ, "rcu_core_si", self.wl.rcu.core)
