"""ICMP over ``lo``: ping sockets and raw sockets sending, the echo answered in the
receive softirq, the reply delivered (net/ipv4/icmp.c, ping.c, raw.c).

A ping of 127.0.0.1 is one sendto(): ping_v4_sendmsg() (an ICMP datagram socket) or
raw_sendmsg() (a raw socket: ping without the ping_group_range permission) routes the
echo request and pushes it through ip_push_pending_frames() to ``lo``.  The NET_RX
softirq that runs at the end of the transmit receives it: icmp_rcv() → icmp_echo() →
icmp_reply() routes and sends the echo reply from the per-CPU ICMP socket (queued on
the same backlog), then consumes the request.  The reply is received in the same poll:
every raw ICMP socket whose ICMP_FILTER lets echo replies through gets a clone
(raw_rcv()), then icmp_rcv() → ping_rcv() looks the ping socket up by the echo
identifier: found, it gets a clone and the reply is consumed; not found (a raw ping),
the reply is dropped with NO_SOCKET.  The queued clone is what the next recvmsg() takes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...sched import TRACE_FLAG_BH_OFF
from .ip import INIT_NET
from .sk import InetProto
from .skbuff import CHECKSUM_NONE, GFP_ATOMIC, NO_SOCKET
from .sock import IPPROTO_ICMP, SOCK_RAW, Skb, Sock

if TYPE_CHECKING:
    from .. import Workload
    from ..syscalls import SyscallCtx
    from .calls import Calls
    from .ip import Ip
    from .sk import SockCore
    from .skbuff import Skbuff

ICMP_ECHOREPLY, ICMP_DEST_UNREACH, ICMP_ECHO = 0, 3, 8
ICMP_PORT_UNREACH = 3
ICMP_HLEN = 8
HH_ALLOC = 31                   # __ip_append_data()'s alloc_extra on lo: hh_len 16 + 15
ICMP_SK = 0xFFFF888103F21000    # per-CPU ipv4_icmp_sk: base + cpu * stride
ICMP_SK_STRIDE = 0x1000


class Icmp(InetProto):
    """ICMP, ping sockets and raw sockets of one kernel."""

    def __init__(self, wl: Workload, calls: Calls, ip: Ip, core: SockCore, skbs: Skbuff) -> None:
        super().__init__(wl, calls, ip, core, skbs)
        self.raw: list[Sock] = []               # raw_v4_hashinfo (ICMP raw sockets)
        self.ping: dict[int, Sock] = {}         # ping_table: ident -> socket
        self.rover = 0                          # ping_port_rover
        ip.handlers[IPPROTO_ICMP] = self.rcv
        ip.raw_deliver = self.raw_local_deliver

    # ------------------------------------------------------------------ sockets
    def bind_ping(self, sock: Sock, real: int = 0) -> int:
        """ping_get_port(sk, 0) (inet_autobind): the identifier the host gave it
        (``real``), else the next free one."""
        if sock.sport:
            return sock.sport
        if real:
            sock.sport = real
            self.ping[real] = sock
            return real
        ident = self.rover
        while True:
            ident = (ident + 1) & 0xFFFF or 1
            if ident not in self.ping:
                break
        self.rover = ident
        sock.sport = ident
        self.ping[ident] = sock
        return ident

    def unhash(self, sock: Sock) -> None:
        if sock in self.raw:
            self.raw.remove(sock)
        if self.ping.get(sock.sport) is sock:
            del self.ping[sock.sport]

    # ------------------------------------------------------------------ sending
    def sendmsg(self, ctx: SyscallCtx, sock: Sock, daddr: int, length: int, icmp_type: int) -> None:
        """ping_v4_sendmsg() / raw_sendmsg() of ``length`` bytes (the ICMP header and
        the payload) to ``daddr``."""
        c = self.c
        raw = sock.kind == SOCK_RAW
        fn = "raw_sendmsg" if raw else "ping_v4_sendmsg"
        c.enter(ctx, fn, sock.sk, ctx.frame + 0x100, length)
        if not raw:     # (raw_sendmsg()'s raw_probe_proto_opt() is inlined)
            c.leaf(ctx, "ping_common_sendmsg", 2, ctx.frame + 0x100, length, ctx.frame + 0x60, 8)
        saddr = self.ip.route_output(ctx, sock, IPPROTO_ICMP, sock.saddr, daddr)
        c.leaf(ctx, "lock_sock_nested", sock.sk, 0)
        skb = Skb(0, IPPROTO_ICMP, saddr, daddr, sock.sport, 0, ICMP_HLEN, max(0, length - ICMP_HLEN),
                  ip_summed=CHECKSUM_NONE, icmp_type=icmp_type, sk=sock)
        self._append_data(ctx, sock, skb, length, "raw_getfrag" if raw else "ping_getfrag", raw)
        c.leaf(ctx, "release_sock", sock.sk)
        c.leave(ctx, fn, length)

    def _append_data(self, ctx: SyscallCtx, sock: Sock, skb: Skb, length: int, getfrag: str,
                     raw: bool) -> None:
        """ip_append_data() → __ip_append_data(): the skb (alloc_skb() for a raw
        socket, sock_alloc_send_skb() with a transport header), filled by ``getfrag``;
        then ip_push_pending_frames() (ping_v4_push_pending_frames() first for ping)."""
        c = self.c
        c.enter(ctx, "ip_append_data", sock.sk, ctx.frame + 0xA0, 0, ctx.frame + 0x68, length,
                0 if raw else ICMP_HLEN)
        c.enter(ctx, "__ip_append_data", sock.sk, ctx.frame + 0xA0, sock.sk + 0x2C0, 0)
        size = length + 20 + HH_ALLOC
        if raw:
            self.skbs.alloc(ctx, skb, size)
        else:
            c.enter(ctx, "sock_alloc_send_pskb", sock.sk, size, 0, 0, ctx.frame + 0x6C, 0)
            c.enter(ctx, "alloc_skb_with_frags", size, 0, 0, ctx.frame + 0x6C, 0xCC0)
            self.skbs.alloc(ctx, skb, size)
            c.leave(ctx, "alloc_skb_with_frags", skb.addr)
            c.leave(ctx, "sock_alloc_send_pskb", skb.addr)
        c.leaf(ctx, getfrag, ctx.frame + 0x68, 0, 0, length, 0, skb.addr)
        c.leave(ctx, "__ip_append_data", 0)
        c.leave(ctx, "ip_append_data", 0)
        self.ip.push_pending_frames(ctx, skb, sock)

    # ------------------------------------------------------------------ receiving
    def raw_local_deliver(self, ctx: SyscallCtx, skb: Skb) -> None:
        """raw_local_deliver() → raw_v4_input(): a clone for each raw socket of the
        protocol whose filter lets the packet through (raw_rcv() → raw_rcv_skb())."""
        c = self.c
        c.enter(ctx, "raw_local_deliver", skb.addr, skb.proto)
        self.raw = [s for s in self.raw if self.core.alive(s)]
        for sock in [s for s in self.raw if s.protocol == skb.proto]:
            if skb.proto == IPPROTO_ICMP and sock.icmp_filter >> (skb.icmp_type & 31) & 1:
                continue
            clone = self.skbs.clone(ctx, skb)
            clone.thlen, clone.payload = skb.thlen, skb.payload
            c.enter(ctx, "raw_rcv", sock.sk, clone.addr)
            c.enter(ctx, "raw_rcv_skb", sock.sk, clone.addr)
            c.leaf(ctx, "ipv4_pktinfo_prepare", sock.sk, clone.addr, 1)
            self.core.queue_rcv(ctx, sock, clone, "raw_rcv_skb")
            c.leave(ctx, "raw_rcv_skb", 0)
            c.leave(ctx, "raw_rcv", 0)
        c.leave(ctx, "raw_local_deliver", 0)

    def rcv(self, ctx: SyscallCtx, skb: Skb) -> None:
        """icmp_rcv(): the echo answered, a reply handed to its ping socket; the skb
        consumed, or dropped when nothing took it."""
        c = self.c
        c.enter(ctx, "icmp_rcv", skb.addr)
        reason = 0
        if skb.icmp_type == ICMP_ECHO:
            c.enter(ctx, "icmp_echo", skb.addr)
            self._reply(ctx, skb)
            c.leave(ctx, "icmp_echo", 0)
        elif skb.icmp_type == ICMP_ECHOREPLY:
            reason = self._ping_rcv(ctx, skb)
        if reason:
            self.skbs.drop(ctx, skb, "icmp_rcv", reason)
        else:
            self.skbs.consume(ctx, skb, "icmp_rcv")
        c.leave(ctx, "icmp_rcv", 1 if reason else 0)

    def _reply(self, ctx: SyscallCtx, req: Skb) -> None:
        """icmp_reply(): under local_bh_disable() and the ICMP socket's lock, the route
        back and icmp_push_reply() → ip_append_data(), ip_push_pending_frames()."""
        wl = self.wl
        c = self.c
        sched = wl.k.sched
        cpu = sched.cpu
        icmp_sk = Sock(2, SOCK_RAW, IPPROTO_ICMP, sk=ICMP_SK + cpu * ICMP_SK_STRIDE)
        c.enter(ctx, "icmp_reply", ctx.frame + 0x200, req.addr)
        with c.irq(sched.irq_flags | TRACE_FLAG_BH_OFF, sched.preempt_count + 1):
            c.leaf(ctx, "icmpv4_global_allow", INIT_NET, ICMP_ECHOREPLY, 0, ctx.frame + 0x210, ret=1)
            c.leaf(ctx, "fib_compute_spec_dst", req.addr, ret=req.daddr)
            self.ip.route_output(ctx, None, IPPROTO_ICMP, req.daddr, req.saddr)
            length = ICMP_HLEN + req.payload
            c.enter(ctx, "icmp_push_reply", icmp_sk.sk, ctx.frame + 0x200, ctx.frame + 0xA0,
                    ctx.frame + 0x220, ctx.frame + 0x228)
            c.enter(ctx, "ip_append_data", icmp_sk.sk, ctx.frame + 0xA0, 0, ctx.frame + 0x200,
                    length, ICMP_HLEN)
            c.enter(ctx, "__ip_append_data", icmp_sk.sk, ctx.frame + 0xA0, icmp_sk.sk + 0x2C0, 0)
            size = length + 20 + HH_ALLOC
            reply = Skb(0, IPPROTO_ICMP, req.daddr, req.saddr, req.sport, 0, ICMP_HLEN, req.payload,
                        ip_summed=CHECKSUM_NONE, icmp_type=ICMP_ECHOREPLY)
            c.enter(ctx, "sock_alloc_send_pskb", icmp_sk.sk, size, 0, 1, ctx.frame + 0x6C, 0)
            c.enter(ctx, "alloc_skb_with_frags", size, 0, 0, ctx.frame + 0x6C, GFP_ATOMIC)
            self.skbs.alloc(ctx, reply, size, GFP_ATOMIC)
            c.leave(ctx, "alloc_skb_with_frags", reply.addr)
            c.leave(ctx, "sock_alloc_send_pskb", reply.addr)
            c.leaf(ctx, "icmp_glue_bits", ctx.frame + 0x200, 0, 0, length, 0, reply.addr)
            c.leave(ctx, "__ip_append_data", 0)
            c.leave(ctx, "ip_append_data", 0)
            self.ip.push_pending_frames(ctx, reply, icmp_sk)
            c.leave(ctx, "icmp_push_reply")
        c.leave(ctx, "icmp_reply")

    def _ping_rcv(self, ctx: SyscallCtx, skb: Skb) -> int:
        """ping_rcv(): the ping socket of the echo identifier gets a clone
        (__ping_queue_rcv_skb()); the drop reason when there is none."""
        c = self.c
        c.enter(ctx, "ping_rcv", skb.addr)
        sock = self.ping.get(skb.sport)
        if sock is not None and not self.core.alive(sock):
            del self.ping[skb.sport]
            sock = None
        c.leaf(ctx, "ping_lookup", INIT_NET, skb.addr, skb.sport, ret=sock.sk if sock is not None else 0)
        if sock is None:
            c.leave(ctx, "ping_rcv", NO_SOCKET)
            return NO_SOCKET
        clone = self.skbs.clone(ctx, skb)
        c.enter(ctx, "__ping_queue_rcv_skb", sock.sk, clone.addr)
        self.core.queue_rcv(ctx, sock, clone, "__ping_queue_rcv_skb")
        c.leave(ctx, "__ping_queue_rcv_skb", 0)
        c.leave(ctx, "ping_rcv", 0)
        return 0

    def recvmsg(self, ctx: SyscallCtx, sock: Sock, size: int, skb: Skb) -> int:
        """The part of ping_recvmsg()/raw_recvmsg() after the datagram was taken: the copy
        (a raw socket reads the IP header too), then skb_free_datagram() → consume_skb().
        The bytes copied."""
        raw = sock.kind == SOCK_RAW
        length = skb.ip_len if raw else skb.ip_len - 20
        copied = min(length, size)
        self.skbs.copy_datagram(ctx, skb, 0, copied)
        if not raw:
            self.c.leaf(ctx, "ip_cmsg_recv_offset", ctx.frame + 0x100, sock.sk, skb.addr, 0, 0)
        self.c.enter(ctx, "skb_free_datagram", sock.sk, skb.addr)
        self.skbs.consume(ctx, skb, "raw_recvmsg" if raw else "ping_recvmsg")
        self.c.leave(ctx, "skb_free_datagram")
        return copied
