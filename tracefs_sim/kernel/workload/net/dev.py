"""The device layer of ``lo`` (net/core/dev.c, drivers/net/loopback.c) and the NET_RX
softirq that receives what it sends (kernel/softirq.c).

``lo`` has no qdisc (noqueue): __dev_queue_xmit() hands the skb straight to
loopback_xmit() under rcu_read_lock_bh(), which passes it to __netif_rx(): the skb joins
the backlog of the sending CPU and NET_RX is raised when the backlog NAPI was idle.  The
rcu_read_unlock_bh() at the end of __dev_queue_xmit() then runs the softirq right there,
in the sender's context (``..s1.``: preemption still off from local_bh_enable()):
net_rx_action() → process_backlog() takes the skbs one by one into the IP layer, which
may send more (the echo reply, a SYN-ACK): those join the same backlog and are received
in the same poll.  Sent from inside the softirq, nothing runs at the unlock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ...sched import TRACE_FLAG_BH_OFF, TRACE_FLAG_IRQS_OFF, TRACE_FLAG_SOFTIRQ
from ..defs import PCPU_BASE, PCPU_STRIDE
from .skbuff import ETH_HLEN
from .sock import ETH_P_IP, Skb

if TYPE_CHECKING:
    from .. import Workload
    from ..syscalls import SyscallCtx
    from .calls import Calls
    from .skbuff import Skbuff

NET_RX_SOFTIRQ = 3
LO_NAME = "lo"
LO_IFINDEX = 1
LOOPBACK_DEV = 0xFFFF888100A8C000     # init_net's loopback net_device
SOFTNET_DATA = 0x2F540                # per-CPU softnet_data (its backlog NAPI at +BACKLOG)
NAPI_NO_DEV = "(no_device)"
DEV_RX_WEIGHT = 64                    # dev_rx_weight: the backlog NAPI's budget
NETDEV_TX_OK = 0
NET_RX_SUCCESS = 0

Deliver = Callable[["SyscallCtx", Skb], None]


class Dev:
    """``lo`` and the per-CPU backlogs of one kernel."""

    def __init__(self, wl: Workload, calls: Calls, skbs: Skbuff) -> None:
        self.wl = wl
        self.c = calls
        self.skbs = skbs
        n = wl.k.nr_cpus
        self.backlog: list[list[Skb]] = [[] for _ in range(n)]   # softnet_data.input_pkt_queue
        self.scheduled = [False] * n        # the backlog NAPI is on the poll list (NAPI_STATE_SCHED)
        self.polling = [False] * n          # NET_RX runs on the CPU now
        self.deliver: Deliver | None = None     # the IP layer's ip_rcv (set by the family)
        self._napi = 0

    def napi(self, cpu: int) -> int:
        """&per_cpu(softnet_data, cpu).backlog."""
        if not self._napi:
            self._napi = self.wl.k.mem.offset("softnet_data", "backlog")
        return PCPU_BASE + cpu * PCPU_STRIDE + SOFTNET_DATA + self._napi

    # ------------------------------------------------------------------ transmit
    def queue_xmit(self, ctx: SyscallCtx, skb: Skb) -> None:
        """__dev_queue_xmit(skb, NULL) on ``lo``: the skb (its Ethernet header pushed) goes
        to loopback_xmit() → __netif_rx(); then the bottom half is enabled again, which
        runs NET_RX here when the caller was not in a softirq already."""
        wl = self.wl
        c = self.c
        sched = wl.k.sched
        cpu = sched.cpu
        length = skb.ip_len + ETH_HLEN
        flags, depth = sched.irq_flags, sched.preempt_count
        c.enter(ctx, "__dev_queue_xmit", skb.addr, 0)
        self.skbs.store(skb, length, LOOPBACK_DEV, skb.sk.sk if skb.sk is not None else 0)
        with c.irq(flags | TRACE_FLAG_BH_OFF, depth):
            c.leaf(ctx, "netdev_core_pick_tx", LOOPBACK_DEV, skb.addr, 0, ret=0)
            wl.emit("net_dev_queue", skb.addr, length, LO_NAME)
            c.leaf(ctx, "validate_xmit_skb", skb.addr, LOOPBACK_DEV, ctx.frame + 0x30, ret=skb.addr)
            c.enter(ctx, "dev_hard_start_xmit", skb.addr, LOOPBACK_DEV, 0, ctx.frame + 0x34)
            tp = wl.tp("net_dev_start_xmit")
            if tp:
                tso = skb.gso_type
                tp.fire(LO_NAME, 0, skb.addr, False, 0, 0, ETH_P_IP, skb.ip_summed, length,
                        skb.data_len, ETH_HLEN, True, ETH_HLEN + 20, 0, 0, skb.gso_segs, tso)
            self._loopback_xmit(ctx, skb, cpu)
            wl.emit("net_dev_xmit", skb.addr, length, NETDEV_TX_OK, LO_NAME)
            c.leave(ctx, "dev_hard_start_xmit", 0)
        # rcu_read_unlock_bh() → local_bh_enable(): pending softirqs run unless this is one
        if not self.polling[cpu] and self.backlog[cpu] and not flags & TRACE_FLAG_SOFTIRQ:
            c.enter(ctx, "__local_bh_enable_ip", wl.sites.site("__dev_queue_xmit"), 0x200)
            self.do_softirq(ctx, cpu, depth + 1)
            c.leave(ctx, "__local_bh_enable_ip")
        c.leave(ctx, "__dev_queue_xmit", 0)

    def _loopback_xmit(self, ctx: SyscallCtx, skb: Skb, cpu: int) -> None:
        """loopback_xmit(): skb_orphan(), eth_type_trans() pulls the Ethernet header,
        __netif_rx() queues it on this CPU's backlog."""
        wl = self.wl
        c = self.c
        sched = wl.k.sched
        length = skb.ip_len
        c.enter(ctx, "loopback_xmit", skb.addr, LOOPBACK_DEV)
        if skb.sk is not None:
            c.leaf(ctx, "sock_wfree", skb.addr)
            skb.sk = None
        c.leaf(ctx, "eth_type_trans", skb.addr, LOOPBACK_DEV, ret=0x0008)
        self.skbs.store(skb, length, LOOPBACK_DEV)
        c.enter(ctx, "__netif_rx", skb.addr)
        tp = wl.tp("netif_rx_entry")
        if tp:
            tp.fire(LO_NAME, 0, 0, skb.addr, False, 0, 0, ETH_P_IP, skb.ip_summed, skb.hash,
                    skb.l4_hash, length, skb.data_len, skb.truesize, True, -ETH_HLEN,
                    1 if skb.data_len else 0, 0, skb.gso_type)
        c.enter(ctx, "netif_rx_internal", skb.addr)
        wl.emit("netif_rx", skb.addr, length, LO_NAME)
        c.enter(ctx, "enqueue_to_backlog", skb.addr, cpu, ctx.frame + 0x38)
        if not self.backlog[cpu] and not self.scheduled[cpu]:
            # napi_schedule_rps() → __napi_schedule_irqoff(): under the backlog's lock
            self.scheduled[cpu] = True
            with c.irq(sched.irq_flags | TRACE_FLAG_IRQS_OFF, sched.preempt_count + 1):
                c.enter(ctx, "__napi_schedule_irqoff", self.napi(cpu))
                c.enter(ctx, "__raise_softirq_irqoff", NET_RX_SOFTIRQ)
                wl.emit("softirq_raise", NET_RX_SOFTIRQ)
                c.leave(ctx, "__raise_softirq_irqoff")
                c.leave(ctx, "__napi_schedule_irqoff")
        self.backlog[cpu].append(skb)
        c.leave(ctx, "enqueue_to_backlog", NET_RX_SUCCESS)
        c.leave(ctx, "netif_rx_internal", NET_RX_SUCCESS)
        wl.emit("netif_rx_exit", NET_RX_SUCCESS)
        c.leave(ctx, "__netif_rx", NET_RX_SUCCESS)
        c.leave(ctx, "loopback_xmit", NETDEV_TX_OK)

    # ------------------------------------------------------------------ NET_RX
    def do_softirq(self, ctx: SyscallCtx, cpu: int, depth: int) -> None:
        """do_softirq() → __do_softirq() → handle_softirqs(): NET_RX on ``cpu`` in the
        current task's context, preemption off (``depth``)."""
        wl = self.wl
        c = self.c
        c.enter(ctx, "do_softirq")
        c.enter(ctx, "__do_softirq")
        c.enter(ctx, "handle_softirqs", 0)
        with c.irq(TRACE_FLAG_SOFTIRQ, depth):
            wl.emit("softirq_entry", NET_RX_SOFTIRQ)
            self.net_rx_action(ctx, cpu)
            wl.emit("softirq_exit", NET_RX_SOFTIRQ)
            c.leaf(ctx, "rcu_softirq_qs")
        c.leave(ctx, "handle_softirqs")
        c.leave(ctx, "__do_softirq")
        c.leave(ctx, "do_softirq")

    def net_rx_action(self, ctx: SyscallCtx, cpu: int) -> None:
        """net_rx_action() → __napi_poll(backlog) → process_backlog(): every skb of the
        backlog, those queued while it runs included, then napi_poll."""
        wl = self.wl
        c = self.c
        napi = self.napi(cpu)
        self.polling[cpu] = True
        c.enter(ctx, "net_rx_action")
        c.enter(ctx, "__napi_poll", napi, ctx.frame + 0x3C)
        c.enter(ctx, "process_backlog", napi, DEV_RX_WEIGHT)
        work = 0
        queue = self.backlog[cpu]
        while queue and work < DEV_RX_WEIGHT:
            skb = queue.pop(0)
            work += 1
            self.netif_receive(ctx, skb)
        if not queue:
            self.scheduled[cpu] = False
        c.leave(ctx, "process_backlog", work)
        wl.emit("napi_poll", napi, NAPI_NO_DEV, work, DEV_RX_WEIGHT)
        c.leave(ctx, "__napi_poll", work)
        c.leave(ctx, "net_rx_action")
        self.polling[cpu] = False

    def netif_receive(self, ctx: SyscallCtx, skb: Skb) -> None:
        """__netif_receive_skb() → __netif_receive_skb_one_core(): the netif_receive_skb
        event, then the packet type's handler (ip_rcv)."""
        wl = self.wl
        c = self.c
        c.enter(ctx, "__netif_receive_skb", skb.addr)
        c.enter(ctx, "__netif_receive_skb_one_core", skb.addr, 0)
        wl.emit("netif_receive_skb", skb.addr, skb.ip_len, LO_NAME)
        assert self.deliver is not None
        self.deliver(ctx, skb)
        c.leave(ctx, "__netif_receive_skb_one_core", NET_RX_SUCCESS)
        c.leave(ctx, "__netif_receive_skb", NET_RX_SUCCESS)
