"""The 9P transport of the root file system (net/9p/trans_virtio.c): a request is put
on the device's virtqueue and the host (qemu's 9P server) is notified; the requester
sleeps in ``wait_event_killable()`` until the device's interrupt reports the reply
(``vring_interrupt`` → ``req_done`` → ``p9_client_cb`` → ``wake_up``).

The interrupt is delivered to the CPU the requester sleeps on.  The reference VM's
``virtio1-requests`` vector has one CPU as its effective affinity; which one is not
observable, and placing the reply on the other CPU would put its records into that
CPU's past (its timeline was already written up to the time the traced record is
processed), so the model keeps a request's round trip on the requester's CPU.

The round trip's length is modelled (``RTT_NS`` plus the payload at
``BYTES_PER_US``); when the syscall's real exit time is known, a round trip never
runs past it, so a path of many requests stays inside the syscall the host really
made.  A work item queued for a kworker (netfs's write collector) runs while the
requester sleeps, on the same CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ...sched import TRACE_FLAG_HARDIRQ, TRACE_FLAG_IRQS_OFF, Task
from ..defs import PWR_EVENT_EXIT, STATE_D, STATE_I, D

if TYPE_CHECKING:
    from .. import Workload
    from ..syscalls import SyscallCtx

P9_IRQ = 29                     # the MSI-X vector of the 9P device's request queue
P9_IRQ_NAME = "virtio1-requests"
VIRTIO_CHAN = 0xFFFF888103F4C000   # struct virtio_chan * of the root mount
VQ = 0xFFFF888103F4D800            # its struct virtqueue *
RTT_NS = 22_000                 # a request's round trip through the host's 9P server
BYTES_PER_US = 2048             # payload copied per microsecond of the round trip
MIN_RTT_NS = 2_000              # the shortest round trip, when the syscall's end is near
HARDIRQ = TRACE_FLAG_HARDIRQ | TRACE_FLAG_IRQS_OFF
IRQ_HANDLED = 1

REQUEST_TREE = ("p9_virtio_request", "_raw_spin_lock_irqsave", "pack_sg_list.constprop.0",
                "pack_sg_list.constprop.0", "virtqueue_add_sgs",
                ("virtqueue_kick", "virtqueue_kick_prepare", ("virtqueue_notify", "vp_notify")),
                "_raw_spin_unlock_irqrestore")
ZC_REQUEST_TREE = ("p9_virtio_zc_request", "p9_get_mapped_pages.part.0.constprop.0",
                   "_raw_spin_lock_irqsave", "pack_sg_list.constprop.0", "pack_sg_list_p.constprop.0",
                   "pack_sg_list.constprop.0", "virtqueue_add_sgs",
                   ("virtqueue_kick", "virtqueue_kick_prepare", ("virtqueue_notify", "vp_notify")),
                   "_raw_spin_unlock_irqrestore")
IRQ_CHAIN = ("__common_interrupt", "handle_edge_irq", "handle_irq_event", "__handle_irq_event_percpu")
WAKE_CHAIN = ("p9_client_cb", "__wake_up", "__wake_up_common", "autoremove_wake_function",
              "default_wake_function")


class VirtioChan:
    """The root mount's virtio channel: requests, the requester's sleep, the reply's
    interrupt."""

    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        # work queued for a kworker by the code running on a CPU: runs at its next sleep
        self.deferred: list[tuple[Task, Callable[[], bool]]] = []

    def request(self, ctx: SyscallCtx, zc: bool) -> None:
        """c->trans_mod->request() / zc_request(): the buffers on the virtqueue, the
        device notified (the zero-copy variant pins the user pages first)."""
        name = "p9_virtio_zc_request" if zc else "p9_virtio_request"
        ctx.rets[name] = 0
        self.wl.syscalls.call(ctx, ZC_REQUEST_TREE if zc else REQUEST_TREE)

    def defer(self, worker: Task, fn: Callable[[], bool]) -> None:
        """A work item was queued for ``worker``: it runs while the current task sleeps
        (``fn`` returns True when it woke the sleeper)."""
        self.deferred.append((worker, fn))

    # ------------------------------------------------------------------ the wait
    def wait(self, ctx: SyscallCtx, nbytes: int) -> None:
        """wait_event_killable(req->wq, status >= RCVD): the requester is switched out
        (TASK_KILLABLE reports as D), the reply's interrupt wakes it, it runs again."""
        self.sleep(ctx, self.rtt(ctx, nbytes))

    def sleep(self, ctx: SyscallCtx, ns: int, irq: bool = True) -> None:
        """The current task of ``ctx`` sleeps in D: kworkers woken before run first
        (one whose work woke the sleeper hands the CPU straight back), else the CPU
        idles ``ns`` until the device's interrupt (``irq``) wakes it."""
        wl = self.wl
        k = wl.k
        sched = k.sched
        t = ctx.thread
        task = t.task
        c = t.cpu if t.cpu >= 0 else sched.cpu
        if sched.curr[c] is not task:
            return          # not running where the model placed it: no sleep to show
        clock = k.boot_clock
        was_pinned = clock.pinned
        s = wl.syscalls
        s.call(ctx, "prepare_to_wait_event")
        sched.run_on(c)
        prev_state = STATE_D
        woke = False
        work, self.deferred = self.deferred, []
        for worker, fn in work:
            wl.sched.switch(c, worker, prev_state=prev_state)
            sched.set_current(c, worker)
            woke = fn() or woke
            sched.run_on(c)
            prev_state = STATE_I
        if not woke:
            wl.sched.switch(c, sched.idle[c], prev_state=prev_state)
            sched.set_current(c, sched.idle[c])
            wl.emit_ctx(D, 1, "cpu_idle", 1, c)
            self._advance(c, ns)
            if irq:
                self.interrupt(c, task)
            else:
                wl.sched.wakeup(c, task)
            sched.run_on(c)
            wl.emit_ctx(D, 1, "cpu_idle", PWR_EVENT_EXIT, c)
            prev_state = 0
        wl.sched.switch(c, task, prev_state=prev_state)
        sched.set_current(c, task)
        s.call(ctx, "finish_wait")
        if was_pinned is None and not clock.deterministic:
            clock.unpin()

    def interrupt(self, cpu: int, task: Task) -> None:
        """The device's interrupt on idle ``cpu``: vring_interrupt() → req_done() takes
        the reply off the ring and p9_client_cb() wakes the requester."""
        wl = self.wl
        sched = wl.k.sched
        sites = wl.sites
        sched.run_on(cpu)
        saved = sched.irq_flags, sched.preempt_count
        sched.irq_flags = HARDIRQ
        sched.preempt_count = wl.base_depth()
        try:
            frames = sites.enter_chain(IRQ_CHAIN, sites.ret_in("common_interrupt", 0x4E))
            wl.emit("irq_handler_entry", P9_IRQ, P9_IRQ_NAME)
            inner = sites.enter_chain(("vring_interrupt", "req_done"), "__handle_irq_event_percpu")
            sites.call("_raw_spin_lock_irqsave", "req_done")
            sites.call(("virtqueue_get_buf", "virtqueue_get_buf_ctx"), "req_done")
            wake = sites.enter_chain(WAKE_CHAIN, "req_done")
            wl.sched.wakeup(cpu, task)
            sites.leave_chain(wake)
            sites.call("p9_req_put", "p9_client_cb")
            sites.call(("virtqueue_get_buf", "virtqueue_get_buf_ctx"), "req_done")
            sites.call("_raw_spin_unlock_irqrestore", "req_done")
            sites.leave_chain(inner)
            wl.emit("irq_handler_exit", P9_IRQ, IRQ_HANDLED)
            sites.call("add_interrupt_randomness", "handle_irq_event")
            sites.leave_chain(frames)
        finally:
            sched.irq_flags, sched.preempt_count = saved

    def _advance(self, cpu: int, ns: int) -> None:
        """Time passes on ``cpu`` while the request is with the host."""
        clock = self.wl.k.boot_clock
        if clock.deterministic:
            clock.advance(ns)
            return
        base = clock.pinned if clock.pinned is not None else clock.peek()
        clock.pin(max(base, clock.floor(cpu)) + ns)

    def rtt(self, ctx: SyscallCtx, nbytes: int) -> int:
        """A round trip carrying ``nbytes``, inside the syscall's real duration when its
        exit is known (half of what is left, at least ``MIN_RTT_NS``)."""
        ns = RTT_NS + nbytes * 1000 // BYTES_PER_US
        if ctx.ret is None:
            return ns
        clock = self.wl.k.boot_clock
        end = self.wl.traced.now
        t = ctx.thread
        now = clock.floor(t.cpu) if t.cpu >= 0 else clock.peek()
        return max(MIN_RTT_NS, min(ns, (end - now) // 2))
