"""UDP over ``lo`` (net/ipv4/udp.c, ip_output.c's ip_make_skb()).

udp_sendmsg() without MSG_MORE takes the lockless path: the route (looked up per
datagram unless the socket is connected: then sk_dst_cache), ip_make_skb() builds the
skb (CHECKSUM_PARTIAL: lo offloads the checksum), udp_send_skb() → ip_send_skb().  The
receive softirq's __udp4_lib_rcv() looks the socket up by address and port and
__udp_enqueue_schedule_skb() queues the skb and calls sk_data_ready.  udp_recvmsg()
takes it with __skb_recv_udp(), copies a linear skb with copy_linear_skb() (no
skb_copy_datagram_iovec event: only a paged one goes through skb_copy_datagram_msg())
and frees it with skb_consume_udp() → __consume_stateless_skb().

A datagram to a port no traced socket has is taken by a socket of an untraced process
(its receive is that process's, unseen): the model does not invent a port unreachable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .ip import INIT_NET
from .sk import InetProto
from .skbuff import CHECKSUM_PARTIAL
from .sock import AF_INET, IPPROTO_UDP, SOCK_DGRAM, Skb, Sock

if TYPE_CHECKING:
    from .. import Workload
    from ..syscalls import SyscallCtx
    from .calls import Calls
    from .ip import Ip
    from .sk import SockCore
    from .skbuff import Skbuff

UDP_HLEN = 8
HH_ALLOC = 31
SKB_MAX_ALLOC = 16064           # SKB_MAX_ORDER(0, 2): a bigger datagram's data goes in pages
UDP_TABLE = 0xFFFFFFFFB3C2E440  # udp_table (.data)
EPHEMERAL = (32768, 60999)      # ip_local_port_range


class Udp(InetProto):
    """UDP sockets of one kernel."""

    def __init__(self, wl: Workload, calls: Calls, ip: Ip, core: SockCore, skbs: Skbuff) -> None:
        super().__init__(wl, calls, ip, core, skbs)
        self.ports: dict[int, Sock] = {}        # udp_table: local port -> socket
        ip.handlers[IPPROTO_UDP] = self.rcv

    def bind(self, sock: Sock, port: int) -> int:
        """udp_v4_get_port(): ``port``, or a free ephemeral one for 0."""
        if not port:
            rng = self.wl.rng
            port = rng.randint(*EPHEMERAL)
            while port in self.ports:
                port = rng.randint(*EPHEMERAL)
        old = self.ports.get(sock.sport)
        if old is sock:
            del self.ports[sock.sport]
        sock.sport = port
        self.ports[port] = sock
        return port

    def unhash(self, sock: Sock) -> None:
        if self.ports.get(sock.sport) is sock:
            del self.ports[sock.sport]

    # ------------------------------------------------------------------ sending
    def sendmsg(self, ctx: SyscallCtx, sock: Sock, daddr: int, dport: int, length: int) -> None:
        """udp_sendmsg(sk, msg, len) to ``daddr``:``dport``."""
        c = self.c
        c.enter(ctx, "udp_sendmsg", sock.sk, ctx.frame + 0x100, length)
        connected = bool(sock.dport) and daddr == sock.daddr and dport == sock.dport
        saddr = sock.saddr or daddr
        if not connected:
            saddr = self.ip.route_output(ctx, sock, IPPROTO_UDP, sock.saddr, daddr, sock.sport, dport)
        skb = Skb(0, IPPROTO_UDP, saddr, daddr, sock.sport, dport, UDP_HLEN, length,
                  ip_summed=CHECKSUM_PARTIAL, sk=sock)
        c.enter(ctx, "ip_make_skb", sock.sk, ctx.frame + 0xA0, 0, ctx.frame + 0x100, length + UDP_HLEN,
                UDP_HLEN)
        c.leaf(ctx, "ip_setup_cork", sock.sk, ctx.frame + 0x180, ctx.frame + 0x1C0, ctx.frame + 0x1C8)
        c.enter(ctx, "__ip_append_data", sock.sk, ctx.frame + 0xA0, ctx.frame + 0x1D0, ctx.frame + 0x180)
        size = min(length + UDP_HLEN + 20, SKB_MAX_ALLOC) + HH_ALLOC
        c.enter(ctx, "sock_alloc_send_pskb", sock.sk, size, 0, 0, ctx.frame + 0x6C, 0)
        c.enter(ctx, "alloc_skb_with_frags", size, 0, 0, ctx.frame + 0x6C, 0xCC0)
        self.skbs.alloc(ctx, skb, size)
        c.leave(ctx, "alloc_skb_with_frags", skb.addr)
        c.leave(ctx, "sock_alloc_send_pskb", skb.addr)
        c.leaf(ctx, "ip_generic_getfrag", ctx.frame + 0x100, 0, 0, length, 0, skb.addr)
        c.leave(ctx, "__ip_append_data", 0)
        c.leaf(ctx, "__ip_make_skb", sock.sk, ctx.frame + 0xA0, ctx.frame + 0x1D0, ctx.frame + 0x180,
               ret=skb.addr)
        c.leave(ctx, "ip_make_skb", skb.addr)
        c.enter(ctx, "udp_send_skb", skb.addr, ctx.frame + 0xA0, ctx.frame + 0x180)
        c.leaf(ctx, "udp4_hwcsum", skb.addr, saddr, daddr)
        self.ip.send_skb(ctx, skb, sock)
        c.leave(ctx, "udp_send_skb", 0)
        c.leave(ctx, "udp_sendmsg", length)

    # ------------------------------------------------------------------ receiving
    def rcv(self, ctx: SyscallCtx, skb: Skb) -> None:
        """udp_rcv() → __udp4_lib_rcv(): the socket of the destination port gets the skb
        (udp_unicast_rcv_skb() → udp_queue_rcv_skb() → __udp_enqueue_schedule_skb())."""
        c = self.c
        c.enter(ctx, "udp_rcv", skb.addr)
        c.enter(ctx, "__udp4_lib_rcv", skb.addr, UDP_TABLE, IPPROTO_UDP)
        sock = self.ports.get(skb.dport)
        if sock is not None and not self.core.alive(sock):
            del self.ports[skb.dport]
            sock = None
        if sock is None:
            sock = Sock(AF_INET, SOCK_DGRAM, IPPROTO_UDP, outside=True)    # an untraced process'
            self.bind(sock, skb.dport)
            self.core.ensure(sock)
        c.enter(ctx, "__udp4_lib_lookup", INIT_NET, skb.saddr, skb.sport, skb.daddr, skb.dport, 1)
        c.leaf(ctx, "udp4_lib_lookup2", INIT_NET, skb.saddr, skb.sport, skb.daddr, skb.dport, 1,
               ret=sock.sk)
        c.leave(ctx, "__udp4_lib_lookup", sock.sk)
        c.enter(ctx, "udp_unicast_rcv_skb", sock.sk, skb.addr, ctx.frame + 0x70)
        c.enter(ctx, "udp_queue_rcv_skb", sock.sk, skb.addr)
        c.enter(ctx, "udp_queue_rcv_one_skb", sock.sk, skb.addr)
        c.leaf(ctx, "sk_filter_trim_cap", sock.sk, skb.addr, UDP_HLEN, ret=0)
        c.enter(ctx, "__udp_enqueue_schedule_skb", sock.sk, skb.addr)
        self.core.enqueue(ctx, sock, skb, "__udp_enqueue_schedule_skb")
        c.leave(ctx, "__udp_enqueue_schedule_skb", 0)
        c.leave(ctx, "udp_queue_rcv_one_skb", 0)
        c.leave(ctx, "udp_queue_rcv_skb", 0)
        c.leave(ctx, "udp_unicast_rcv_skb", 0)
        c.leave(ctx, "__udp4_lib_rcv", 0)
        c.leave(ctx, "udp_rcv", 0)

    def take(self, ctx: SyscallCtx, sock: Sock, flags: int) -> Skb | None:
        """__skb_recv_udp(): the first queued datagram (None: none)."""
        c = self.c
        skb = sock.rcvq.pop(0) if sock.rcvq else None
        c.enter(ctx, "__skb_recv_udp", sock.sk, flags, ctx.frame + 0x54, ctx.frame + 0x50)
        c.leaf(ctx, "__skb_try_recv_from_queue", sock.sk, sock.sk + 0x300, flags, ctx.frame + 0x54,
               ctx.frame + 0x50, ret=skb.addr if skb is not None else 0)
        c.leave(ctx, "__skb_recv_udp", skb.addr if skb is not None else 0)
        return skb

    def recvmsg(self, ctx: SyscallCtx, sock: Sock, size: int, skb: Skb) -> int:
        """The part of udp_recvmsg() after the datagram was taken: the copy, then
        skb_consume_udp(). The bytes copied."""
        copied = min(skb.payload, size)
        if skb.payload + UDP_HLEN + 20 + HH_ALLOC > SKB_MAX_ALLOC:
            self.skbs.copy_datagram(ctx, skb, UDP_HLEN, copied)
        self.c.enter(ctx, "skb_consume_udp", sock.sk, skb.addr, copied)
        self.skbs.consume(ctx, skb, "udp_recvmsg", "__consume_stateless_skb")
        self.c.leave(ctx, "skb_consume_udp")
        return copied
