"""The per-CPU timer interrupt and what runs after it (kernel/time/hrtimer.c,
tick-sched.c, timer.c; kernel/softirq.c; kernel/workqueue.c; the RCU kthread).

Each tick: the local APIC timer hardirq (hrtimer_interrupt → tick_nohz_handler →
update_process_times), the softirqs it raised on the way out (TIMER, RCU, now and then
NET_RX from a virtio-net interrupt), and a kthread whose timer expired: a kworker runs
its work item and re-arms it, kcompactd or the RCU grace-period thread sleeps again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..clock import HZ, TICK_NS, jiffies_of
from ..sched import TRACE_FLAG_SOFTIRQ, Task
from .defs import (
    HARDIRQ,
    HOST_TICKS,
    HRTIMER_MODE_ABS,
    KTHREAD_STACK,
    KTHREADS,
    MEMCG_FLUSH_WORK,
    NET_IRQ,
    NET_IRQ_NAME,
    NR_CPUS,
    PCPU_BASE,
    PCPU_STRIDE,
    PWR_EVENT_EXIT,
    SOFTIRQ,
    STATE_I,
    STATE_PREEMPTED,
    STATE_RUNNING,
    STATE_S,
    TICK_SCHED_TIMER,
    TIMER_DEFERRABLE,
    TIMER_IRQSAFE,
    TIMER_PINNED,
    TIMER_VECTOR,
    VMSTAT_WORK,
    WORK,
    D,
    wheel_bucket,
)

if TYPE_CHECKING:
    from . import Workload


class Timers:
    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        kernel = wl.k
        self.kthreads: list[Task] = []
        self.kthread_cpu: dict[int, int | None] = {}
        for comm, pid, cpu in KTHREADS:
            t = kernel.sched.task(pid, comm, kthread=True)
            t.prio = 120
            if cpu is not None and cpu >= kernel.nr_cpus:
                continue
            self.kthreads.append(t)
            self.kthread_cpu[pid] = cpu
        self.rcu = kernel.sched.task(18, "rcu_preempt", kthread=True)

    def tick(self, cpu: int) -> None:
        wl = self.wl
        k = wl.k
        sched = k.sched
        ws = wl.sched
        saved = (sched.cpu, sched.current, sched.irq_flags, sched.preempt_count)
        sched.run_on(cpu)
        host = ws.host[cpu]
        if host is not None and wl.ticks - ws.host_tick[cpu] >= HOST_TICKS:
            ws.host_off(cpu, STATE_S)    # no request for a while: it blocked
        elif host is not None:
            sched.set_current(cpu, host)    # interrupted in user space
        cur = sched.current
        idle = cur is sched.idle[cpu]
        base = 1 if idle else 0
        now = k.boot_clock.ns()
        jiffies = jiffies_of(now)
        # ---- hardirq: the local APIC timer
        sched.irq_flags = HARDIRQ
        sched.preempt_count = base
        wl.emit("local_timer_entry", TIMER_VECTOR)
        frames = wl.sites.enter_chain(("__sysvec_apic_timer_interrupt", "hrtimer_interrupt"))
        tick_timer = PCPU_BASE + cpu * PCPU_STRIDE + TICK_SCHED_TIMER
        nohz = wl.sites.sym("tick_nohz_handler")
        wl.emit_ctx(HARDIRQ, base + 1, "hrtimer_cancel", tick_timer)
        inner = wl.sites.enter_chain(("__hrtimer_run_queues",), "hrtimer_interrupt")
        wl.emit("hrtimer_expire_entry", tick_timer, now, nohz)
        upt = wl.sites.enter_chain(("tick_nohz_handler", "update_process_times"), "__hrtimer_run_queues")
        wl.sites.call("account_process_tick", "update_process_times")
        r = wl.rng.random()
        kt = self._timer_task(cpu, r)
        vecs = [1]                                       # run_local_timers(): TIMER_SOFTIRQ
        wl.emit("softirq_raise", 1)
        wl.sites.call("rcu_sched_clock_irq", "update_process_times")
        if kt is self.rcu or wl.ticks % 2 == 0 or wl.rcu_cbs[cpu]:
            vecs.append(9)                               # rcu_sched_clock_irq(): RCU_SOFTIRQ
            wl.emit("softirq_raise", 9)
        sched_tick = wl.sites.enter_chain(("sched_tick",), "update_process_times")
        if not idle:
            runtime = TICK_NS - wl.rng.randrange(TICK_NS // 4)
            wl.emit_ctx(HARDIRQ, base + 1, "sched_stat_runtime", cur.comm, cur.pid, runtime)
        wl.sites.leave_chain(sched_tick)
        wl.sites.leave_chain(upt)
        wl.emit("hrtimer_expire_exit", tick_timer)
        expires = (now // TICK_NS + 1) * TICK_NS
        wl.emit_ctx(HARDIRQ, base + 1, "hrtimer_start", tick_timer, nohz, expires, expires,
                      HRTIMER_MODE_ABS, 0)
        wl.sites.leave_chain(inner)
        wl.sites.call("_raw_spin_lock", "hrtimer_interrupt")
        wl.sites.call("_raw_spin_unlock", "hrtimer_interrupt")
        wl.sites.leave_chain(frames)
        wl.emit("local_timer_exit", TIMER_VECTOR)
        if r > 0.97:
            # a virtio-net receive interrupt: NET_RX work for the softirq
            wl.emit("irq_handler_entry", NET_IRQ, NET_IRQ_NAME)
            wl.emit_ctx(HARDIRQ, base, "softirq_raise", 3)
            wl.emit("irq_handler_exit", NET_IRQ, 1)
            vecs.insert(0, 3)
        # ---- softirqs on the way out of the interrupt
        sched.irq_flags = TRACE_FLAG_SOFTIRQ
        sched.preempt_count = base
        woken: Task | None = None
        for vec in vecs:
            wl.emit("softirq_entry", vec)
            if vec == 1:
                wl.sites.call(SOFTIRQ)
                if kt is not None:
                    woken = kt
                    self._expire_timer(cpu, kt, jiffies, base)
            elif vec == 9:
                wl.sites.call("rcu_core")
                wl.rcu_core(cpu)
                if r < 0.1:   # a grace period ended: kfree_rcu() callbacks run
                    wl.slab.kfree("rcu_do_batch", wl.slab.alloc_obj(64))
            else:
                wl.sites.call("net_rx_action")
            wl.emit("softirq_exit", vec)
        sched.irq_flags, sched.preempt_count = 0, 0
        if idle:
            wl.emit_ctx(D, 1, "cpu_idle", PWR_EVENT_EXIT, cpu)
        # ---- the woken kthread runs, or the shell runs a child
        if woken is not None:
            self._run_kthread(cpu, woken, jiffies)
        elif r < 0.35 and wl.rng.random() < 0.4 and ws.host[cpu] is None and wl.shell.enabled:
            wl.shell.run_child(cpu)
        if sched.curr[cpu] is sched.idle[cpu]:
            wl.emit_ctx(D, 1, "cpu_idle", 1, cpu)
        sched.cpu, sched.current, sched.irq_flags, sched.preempt_count = saved

    def _timer_task(self, cpu: int, r: float) -> Task | None:
        """The kthread whose timer expires in this tick on ``cpu``, if any: the RCU
        grace-period kthread every other jiffy, now and then a kworker or kcompactd."""
        wl = self.wl
        if self.rcu in self.kthreads and wl.ticks % 2 == 1 and \
                cpu == (wl.ticks // 2) % wl.k.nr_cpus:
            return self.rcu
        if r < 0.2:
            cands = [t for t in self.kthreads if t is not self.rcu
                     and self.kthread_cpu.get(t.pid) in (None, cpu) and not t.comm.startswith("ksoftirqd")]
            if cands:
                return wl.rng.choice(cands)
        return None

    def _work_of(self, kt: Task, cpu: int) -> tuple[int, str, str, int, int]:
        """(work struct, function, workqueue, req_cpu, pool cpu) a kworker runs."""
        if self.kthread_cpu.get(kt.pid) is None:
            return MEMCG_FLUSH_WORK, "flush_memcg_stats_dwork", "events_unbound", NR_CPUS, -1
        work = PCPU_BASE + cpu * PCPU_STRIDE + VMSTAT_WORK
        return work, "vmstat_update", "mm_percpu_wq", cpu, cpu

    def _expire_timer(self, cpu: int, kt: Task, jiffies: int, base: int) -> None:
        """expire_timers() in the timer softirq: the timer of ``kt`` runs."""
        wl = self.wl
        worker = kt.comm.startswith("kworker")
        if worker:
            work, fn, wq, req_cpu, pool_cpu = self._work_of(kt, cpu)
            timer, tfn = work + 0x20, "delayed_work_timer_fn"
        else:
            timer, tfn = KTHREAD_STACK + kt.pid * 0x4000 + 0x3D60, "process_timeout"
        tfn_addr = wl.sites.sym(tfn)
        wl.emit_ctx(D, base + 1, "timer_cancel", timer)
        wl.emit("timer_expire_entry", timer, jiffies, tfn_addr, jiffies)
        if worker:
            wl.emit_ctx(D, base + 1, "workqueue_queue_work", work, wl.sites.sym(fn), wq, req_cpu, pool_cpu)
            wl.emit_ctx(D, base + 1, "workqueue_activate_work", work, wl.sites.sym(fn))
        wl.sched.wakeup(cpu, kt)
        wl.emit("timer_expire_exit", timer)

    def _run_kthread(self, cpu: int, kt: Task, jiffies: int) -> None:
        wl = self.wl
        sched = wl.k.sched
        host = wl.sched.host[cpu]
        prev = sched.curr[cpu]
        wl.sched.switch(cpu, kt, prev_state=STATE_PREEMPTED if prev.pid else STATE_RUNNING)
        sched.set_current(cpu, kt)
        state = STATE_S
        if kt.comm.startswith("kworker"):
            work, fn, wq, req_cpu, _ = self._work_of(kt, cpu)
            fn_addr = wl.sites.sym(fn)
            wl.emit("workqueue_execute_start", work, fn_addr)
            wl.sites.call(WORK)
            # the work re-arms itself: queue_delayed_work() → add_timer()
            timer = work + 0x20
            expires = jiffies + HZ
            bucket, idx = wheel_bucket(expires, jiffies)
            flags = cpu | TIMER_DEFERRABLE | TIMER_IRQSAFE | (TIMER_PINNED if req_cpu != NR_CPUS else 0)
            wl.emit_ctx(D, 1, "timer_start", timer, wl.sites.sym("delayed_work_timer_fn"), expires,
                          bucket, jiffies, flags | idx << 22)
            wl.emit("workqueue_execute_end", work, fn_addr)
            state = STATE_I
        else:
            # schedule_timeout(): an on-stack timer that wakes the thread again
            timer = KTHREAD_STACK + kt.pid * 0x4000 + 0x3D60
            delay = 2 if kt is self.rcu else HZ // 2
            expires = jiffies + delay
            bucket, idx = wheel_bucket(expires, jiffies)
            wl.emit("timer_init", timer)
            wl.emit_ctx(D, 1, "timer_start", timer, wl.sites.sym("process_timeout"), expires, bucket,
                          jiffies, cpu | idx << 22)
            if kt is self.rcu:
                state = STATE_I
        if host is not None and prev is host:
            wl.sched.switch(cpu, host, prev_state=state)   # the preempted host task resumes
            wl.sched.host[cpu] = host
        elif prev.pid in wl.sched.traced:
            wl.sched.switch(cpu, prev, prev_state=state)   # so does a traced one
        else:
            wl.sched.switch(cpu, sched.idle[cpu], prev_state=state)

