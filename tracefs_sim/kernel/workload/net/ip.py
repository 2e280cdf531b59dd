"""IPv4 over ``lo`` (net/ipv4/route.c, fib_trie.c, ip_output.c, ip_input.c; the
neighbour of net/core/neighbour.c and arp.c).

Routing: every output lookup goes through fib_table_lookup() of the main table (254:
without custom rules, the local routes are merged into it), which records the flow it
looked up and the nexthop it found (``dev lo`` for a local address).  A connected socket
keeps its route (sk_dst_cache) and looks nothing up per packet; the receive side finds
the route the sender left on the skb (lo keeps the dst), so it looks nothing up either.

Neighbours: the first packet to an address on ``lo`` creates its neighbour
(``neigh_create``, exempt from GC: lo is IFF_LOOPBACK; NUD_NOARP), output then goes
through neigh_resolve_output() once, later through the cached header.  The neighbour
lives as long as the kernel here (NOARP entries below gc_thresh1 are never collected).

Addresses are host-order ints; only 127.0.0.0/8 is routed over ``lo`` by this model
(anything else leaves by a device the model does not have: its path is not run).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .dev import LO_IFINDEX, LO_NAME, LOOPBACK_DEV
from .sock import IPPROTO_TCP, IPPROTO_UDP, Skb, Sock

if TYPE_CHECKING:
    from .. import Workload
    from ..syscalls import SyscallCtx
    from .calls import Calls
    from .dev import Dev

RT_TABLE_MAIN = 254
AF_INET = 2
INIT_NET = 0xFFFFFFFFB3B0C2C0       # init_net (.data)
ARP_TBL = 0xFFFFFFFFB3B4A3A0        # arp_tbl (.data)
NEIGH_ENTRIES = 1                   # arp_tbl.gc_entries: the gateway's entry (lo's are exempt)
LOOPBACK = 0x7F000001
GW6_ANY = bytes(16)

Handler = Callable[["SyscallCtx", Skb], None]


def is_local(addr: int) -> bool:
    """Routed over lo by this model: 127.0.0.0/8 (and INADDR_ANY, which means it)."""
    return addr >> 24 == 127 or addr == 0


def ip4(addr: int) -> bytes:
    """An address as the network-order bytes events store (``%pI4``)."""
    return addr.to_bytes(4, "big")


class Ip:
    """Routing, neighbours and the IPv4 layer of one kernel."""

    def __init__(self, wl: Workload, calls: Calls, dev: Dev) -> None:
        self.wl = wl
        self.c = calls
        self.dev = dev
        self.neighbours: set[int] = set()
        self.handlers: dict[int, Handler] = {}      # inet_protos[]: icmp_rcv, udp_rcv, tcp_v4_rcv
        self.raw_deliver: Callable[[SyscallCtx, Skb], None] | None = None
        self.ip_id = 0

    # ------------------------------------------------------------------ routing
    def route_output(self, ctx: SyscallCtx, sk: Sock | None, proto: int, saddr: int, daddr: int,
                     sport: int = 0, dport: int = 0, tos: int = 0) -> int:
        """ip_route_output_flow(net, fl4, sk): the output route of a flow; the source
        address it chose (the destination itself on lo, unless one was given)."""
        c = self.c
        fl4 = ctx.frame + 0xA0
        c.enter(ctx, "ip_route_output_flow", INIT_NET, fl4, sk.sk if sk is not None else 0)
        c.enter(ctx, "ip_route_output_key_hash", INIT_NET, fl4, 0)
        c.enter(ctx, "ip_route_output_key_hash_rcu", INIT_NET, fl4, ctx.frame + 0xE0, 0)
        self.fib_lookup(ctx, proto, saddr, daddr, sport, dport, tos, 0)
        c.leave(ctx, "ip_route_output_key_hash_rcu", 0)
        c.leave(ctx, "ip_route_output_key_hash", 0)
        c.enter(ctx, "xfrm_lookup_route", INIT_NET, 0, fl4, sk.sk if sk is not None else 0, 0)
        c.leaf(ctx, "xfrm_lookup", INIT_NET, 0, fl4, sk.sk if sk is not None else 0, 0)
        c.leave(ctx, "xfrm_lookup_route", 0)
        c.leave(ctx, "ip_route_output_flow", 0)
        return saddr or daddr

    def fib_lookup(self, ctx: SyscallCtx, proto: int, saddr: int, daddr: int, sport: int,
                   dport: int, tos: int, oif: int) -> None:
        """fib_table_lookup() of the main table, found: the local route's nexthop (lo)."""
        wl = self.wl
        self.c.enter(ctx, "fib_table_lookup", 0, ctx.frame + 0xA0, ctx.frame + 0xE0, 1)
        tp = wl.tp("fib_table_lookup")
        if tp:
            ports = proto in (IPPROTO_TCP, IPPROTO_UDP)
            tp.fire(RT_TABLE_MAIN, 0, oif, LO_IFINDEX, proto, tos, 0, 0, ip4(saddr), ip4(daddr),
                    bytes(4), GW6_ANY, sport if ports else 0, dport if ports else 0, LO_NAME)
        self.c.leave(ctx, "fib_table_lookup", 0)

    # ------------------------------------------------------------------ output
    def local_out(self, ctx: SyscallCtx, skb: Skb, sk: Sock | None) -> None:
        """ip_local_out() → __ip_local_out(), ip_output() → ip_finish_output() →
        __ip_finish_output() → ip_finish_output2(): the neighbour, then the device."""
        c = self.c
        sk_addr = sk.sk if sk is not None else 0
        c.enter(ctx, "ip_local_out", INIT_NET, sk_addr, skb.addr)
        c.leaf(ctx, "__ip_local_out", INIT_NET, sk_addr, skb.addr, ret=1)
        c.enter(ctx, "ip_output", INIT_NET, sk_addr, skb.addr)
        c.enter(ctx, "ip_finish_output", INIT_NET, sk_addr, skb.addr)
        c.enter(ctx, "__ip_finish_output", INIT_NET, sk_addr, skb.addr)
        c.enter(ctx, "ip_finish_output2", INIT_NET, sk_addr, skb.addr)
        if skb.daddr not in self.neighbours:
            self._neigh_create(ctx, skb.daddr)
            c.enter(ctx, "neigh_resolve_output", 0, skb.addr)
            c.leaf(ctx, "eth_header", skb.addr, LOOPBACK_DEV, 0x0800, 0, 0, skb.ip_len, ret=14)
            self.dev.queue_xmit(ctx, skb)
            c.leave(ctx, "neigh_resolve_output", 0)
        else:
            self.dev.queue_xmit(ctx, skb)
        c.leave(ctx, "ip_finish_output2", 0)
        c.leave(ctx, "__ip_finish_output", 0)
        c.leave(ctx, "ip_finish_output", 0)
        c.leave(ctx, "ip_output", 0)
        c.leave(ctx, "ip_local_out", 0)

    def _neigh_create(self, ctx: SyscallCtx, daddr: int) -> None:
        """__neigh_create(&arp_tbl, &daddr, lo, false) → ___neigh_create(): the first
        packet to ``daddr`` on lo."""
        wl = self.wl
        c = self.c
        self.neighbours.add(daddr)
        c.enter(ctx, "__neigh_create", ARP_TBL, ctx.frame + 0x44, LOOPBACK_DEV, 0)
        c.enter(ctx, "___neigh_create", ARP_TBL, ctx.frame + 0x44, LOOPBACK_DEV, 0, 1, 0)
        wl.emit("neigh_create", AF_INET, LO_NAME, NEIGH_ENTRIES, True, True, ip4(daddr), GW6_ANY)
        c.leaf(ctx, "arp_constructor", 0)
        c.leave(ctx, "___neigh_create", 0)
        c.leave(ctx, "__neigh_create", 0)

    def push_pending_frames(self, ctx: SyscallCtx, skb: Skb, sk: Sock) -> None:
        """ip_push_pending_frames(sk, fl4) → __ip_make_skb(), ip_send_skb()."""
        c = self.c
        c.enter(ctx, "ip_push_pending_frames", sk.sk, ctx.frame + 0xA0)
        c.leaf(ctx, "__ip_make_skb", sk.sk, ctx.frame + 0xA0, 0, 0, ret=skb.addr)
        self.send_skb(ctx, skb, sk)
        c.leave(ctx, "ip_push_pending_frames", 0)

    def send_skb(self, ctx: SyscallCtx, skb: Skb, sk: Sock | None) -> None:
        """ip_send_skb(net, skb) → ip_local_out()."""
        self.c.enter(ctx, "ip_send_skb", INIT_NET, skb.addr)
        self.local_out(ctx, skb, sk)
        self.c.leave(ctx, "ip_send_skb", 0)

    def next_id(self) -> int:
        self.ip_id = (self.ip_id + 1) & 0xFFFF
        return self.ip_id

    # ------------------------------------------------------------------ input
    def rcv(self, ctx: SyscallCtx, skb: Skb) -> None:
        """ip_rcv() → ip_rcv_core(), ip_rcv_finish() (the route is on the skb already) →
        ip_local_deliver() → ip_local_deliver_finish() → ip_protocol_deliver_rcu(): raw
        sockets first, then the protocol's handler."""
        c = self.c
        c.enter(ctx, "ip_rcv", skb.addr, LOOPBACK_DEV, 0, LOOPBACK_DEV)
        c.leaf(ctx, "ip_rcv_core", skb.addr, INIT_NET, ret=skb.addr)
        c.enter(ctx, "ip_rcv_finish", INIT_NET, 0, skb.addr)
        c.enter(ctx, "ip_local_deliver", skb.addr)
        c.enter(ctx, "ip_local_deliver_finish", INIT_NET, 0, skb.addr)
        c.enter(ctx, "ip_protocol_deliver_rcu", INIT_NET, skb.addr, skb.proto)
        if self.raw_deliver is not None:
            self.raw_deliver(ctx, skb)
        handler = self.handlers.get(skb.proto)
        if handler is not None:
            handler(ctx, skb)
        c.leave(ctx, "ip_protocol_deliver_rcu")
        c.leave(ctx, "ip_local_deliver_finish", 0)
        c.leave(ctx, "ip_local_deliver", 0)
        c.leave(ctx, "ip_rcv_finish", 0)
        c.leave(ctx, "ip_rcv", 0)
