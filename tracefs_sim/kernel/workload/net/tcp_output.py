"""TCP's output side over ``lo`` (net/ipv4/tcp_output.c, the helpers of tcp.c): the
socket tables, state changes, segments built and transmitted (a clone each, the original
kept for retransmission), ACKs.  ``TcpInput`` (tcp_input.py) and ``Tcp`` (tcp.py) build
on it; tcp.py's docstring tells the whole exchange.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .ip import ip4
from .sk import InetProto
from .skbuff import CHECKSUM_PARTIAL, GFP_ATOMIC
from .sock import (
    AF_INET,
    IPPROTO_TCP,
    TCP_CLOSE,
    Skb,
    Sock,
    TcpState,
)

if TYPE_CHECKING:
    from .. import Workload
    from ..syscalls import SyscallCtx
    from .calls import Calls
    from .ip import Ip
    from .sk import SockCore
    from .skbuff import Skbuff

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
SYN_HLEN = 40                   # 20 + MSS, SACK_PERM, TS, NOP, WSCALE
TS_HLEN = 32                    # 20 + NOP NOP TS
MAX_TCP_HEADER = 320
SIZE_GOAL = 65483               # tcp_send_mss() on lo: the GSO size, one skb per 64 KB
SND_CWND, SSTHRESH = 10, 0x7FFFFFFF
GSO_TCPV4 = 1
TCP_CA_OPEN = 0
ECONNREFUSED = 111
EINPROGRESS = 115
SK_RST_REASON_NO_SOCKET = 1
QUEUE_PURGE = 91
TCP_SK = 0xFFFF888103F61000     # per-CPU ipv4_tcp_sk (the RST/ACK sender of no socket)
EPHEMERAL = (32768, 60999)
MAPPED = bytes(10) + b"\xff\xff"


def v4mapped(addr: int) -> bytes:
    """ipv6_addr_set_v4mapped(): what the v6 fields of an AF_INET socket hold."""
    return MAPPED + ip4(addr)


def sockaddr(addr: int, port: int) -> bytes:
    """The struct sockaddr_in6-sized field of TP_STORE_ADDR_PORTS_V4 (``%pISpc``)."""
    return (AF_INET.to_bytes(2, "little") + port.to_bytes(2, "big") + ip4(addr)).ljust(28, b"\0")



class TcpOutput(InetProto):
    """TCP sockets of one kernel: their tables and what they send."""

    def __init__(self, wl: Workload, calls: Calls, ip: Ip, core: SockCore, skbs: Skbuff) -> None:
        super().__init__(wl, calls, ip, core, skbs)
        self.listeners: dict[int, Sock] = {}            # port -> listening socket
        self.established: dict[tuple[int, int, int, int], Sock] = {}   # (laddr, lport, raddr, rport)
        self.requests: dict[tuple[int, int, int, int], tuple[Sock, int]] = {}   # -> (listener, iss)
        self.cookie = 0x2000
        self._woken: list = []          # readers asleep on the skb being queued
        ip.handlers[IPPROTO_TCP] = self.v4_rcv

    # ------------------------------------------------------------------ helpers
    def ephemeral(self) -> int:
        rng = self.wl.rng
        used = {k[1] for k in self.established} | set(self.listeners)
        port = rng.randint(*EPHEMERAL)
        while port in used:
            port = rng.randint(*EPHEMERAL)
        return port

    def _listener(self, port: int) -> Sock | None:
        """The listener of ``port`` (one whose process went away is gone)."""
        sock = self.listeners.get(port)
        if sock is not None and not self.core.alive(sock):
            del self.listeners[port]
            return None
        return sock

    def rebind(self, sock: Sock, saddr: int, sport: int) -> None:
        """The socket's real local address (getsockname()): its hash entries move."""
        key = (sock.saddr, sock.sport, sock.daddr, sock.dport)
        if self.established.get(key) is sock:
            del self.established[key]
            self.established[(saddr, sport, sock.daddr, sock.dport)] = sock
        if self.listeners.get(sock.sport) is sock:
            del self.listeners[sock.sport]
            self.listeners[sport] = sock
        sock.saddr, sock.sport = saddr, sport

    def _tp(self, sock: Sock) -> TcpState:
        if sock.tcp is None:
            sock.tcp = TcpState()
        return sock.tcp

    def _cookie(self, sock: Sock) -> int:
        tp = self._tp(sock)
        if not tp.cookie:
            self.cookie += 1
            tp.cookie = self.cookie
        return tp.cookie

    def _addrs(self, sock: Sock) -> tuple[int, int, int, bytes, bytes, bytes, bytes]:
        """sport, dport, family, saddr, daddr, saddr_v6, daddr_v6 of the tcp_event_sk
        templates."""
        return (sock.sport, sock.dport, AF_INET, ip4(sock.saddr), ip4(sock.daddr),
                v4mapped(sock.saddr), v4mapped(sock.daddr))

    def set_state(self, ctx: SyscallCtx, sock: Sock, state: int, fn: str = "tcp_set_state") -> None:
        """tcp_set_state() (or inet_sk_set_state()/inet_sk_state_store()): the
        inet_sock_set_state event, then the new state (CLOSE unhashes)."""
        wl = self.wl
        self.c.enter(ctx, fn, sock.sk, state)
        tp = wl.tp("inet_sock_set_state")
        if tp:
            sport, dport, family, sa, da, sa6, da6 = self._addrs(sock)
            tp.fire(sock.sk, sock.state, state, sport, dport, family, IPPROTO_TCP, sa, da, sa6, da6)
        if state == TCP_CLOSE:
            self._unhash(sock)
        sock.state = state
        self.core.store(sock)
        self.c.leave(ctx, fn)

    def _unhash(self, sock: Sock) -> None:
        key = (sock.saddr, sock.sport, sock.daddr, sock.dport)
        if self.established.get(key) is sock:
            del self.established[key]
        if self.listeners.get(sock.sport) is sock:
            del self.listeners[sock.sport]

    def _event_sk(self, name: str, sock: Sock) -> None:
        """An event of the tcp_event_sk class (tcp_rcv_space_adjust, tcp_destroy_sock,
        tcp_receive_reset)."""
        tp = self.wl.tp(name)
        if tp:
            tp.fire(sock.sk, *self._addrs(sock), self._cookie(sock))

    # ------------------------------------------------------------------ segments out
    def _segment(self, ctx: SyscallCtx, sock: Sock, flags: int, payload: int, thlen: int,
                 gfp: int = 0xCC0) -> Skb:
        """A segment of ``sock`` (tcp_stream_alloc_skb() or the ACK's alloc_skb()): its
        sequence numbers from the socket's state, the data in page fragments."""
        tp = self._tp(sock)
        skb = Skb(0, IPPROTO_TCP, sock.saddr, sock.daddr, sock.sport, sock.dport, thlen, payload,
                  ip_summed=CHECKSUM_PARTIAL, hash=sock.txhash, l4_hash=True, gso_segs=1,
                  gso_type=GSO_TCPV4, tcp_flags=flags, seq=tp.snd_nxt, ack_seq=tp.rcv_nxt, sk=sock)
        self.skbs.alloc(ctx, skb, MAX_TCP_HEADER, gfp)
        skb.truesize += payload
        skb.data_len = payload
        return skb

    def _transmit(self, ctx: SyscallCtx, sock: Sock, skb: Skb, clone: bool) -> None:
        """__tcp_transmit_skb(sk, skb, clone_it): a clone leaves (the original stays in
        the retransmit queue until acked) → ip_queue_xmit() → __ip_queue_xmit() →
        ip_local_out()."""
        c = self.c
        tp = self._tp(sock)
        c.enter(ctx, "__tcp_transmit_skb", sock.sk, skb.addr, int(clone), GFP_ATOMIC, tp.rcv_nxt)
        out = self.skbs.clone(ctx, skb) if clone else skb
        out.sk = sock
        skb.ack_seq = out.ack_seq = tp.rcv_nxt
        if skb.tcp_flags & ACK:
            tp.ack_pending = False
        c.enter(ctx, "ip_queue_xmit", sock.sk, out.addr, sock.sk + 0x300)
        c.enter(ctx, "__ip_queue_xmit", sock.sk, out.addr, sock.sk + 0x300, 0)
        self.ip.local_out(ctx, out, sock)
        c.leave(ctx, "__ip_queue_xmit", 0)
        c.leave(ctx, "ip_queue_xmit", 0)
        c.leave(ctx, "__tcp_transmit_skb", 0)

    def _send_ack(self, ctx: SyscallCtx, sock: Sock) -> None:
        """tcp_send_ack() → __tcp_send_ack(): a bare ACK, not cloned."""
        c = self.c
        c.enter(ctx, "tcp_send_ack", sock.sk)
        c.enter(ctx, "__tcp_send_ack", sock.sk, self._tp(sock).rcv_nxt)
        skb = self._segment(ctx, sock, ACK, 0, TS_HLEN, GFP_ATOMIC)
        self._transmit(ctx, sock, skb, False)
        c.leave(ctx, "__tcp_send_ack")
        c.leave(ctx, "tcp_send_ack")

    def _push(self, ctx: SyscallCtx, sock: Sock, skb: Skb) -> None:
        """tcp_push() → __tcp_push_pending_frames() → tcp_write_xmit()."""
        c = self.c
        c.enter(ctx, "tcp_push", sock.sk, 0, SIZE_GOAL, 0, SIZE_GOAL)
        self._push_pending(ctx, sock, skb)
        c.leave(ctx, "tcp_push")

    def _push_pending(self, ctx: SyscallCtx, sock: Sock, skb: Skb) -> None:
        """__tcp_push_pending_frames() → tcp_write_xmit(): ``skb`` goes out."""
        c = self.c
        c.enter(ctx, "__tcp_push_pending_frames", sock.sk, SIZE_GOAL, 0)
        c.enter(ctx, "tcp_write_xmit", sock.sk, SIZE_GOAL, 0, 0, GFP_ATOMIC)
        self._transmit(ctx, sock, skb, True)
        c.leave(ctx, "tcp_write_xmit", 0)
        c.leave(ctx, "__tcp_push_pending_frames")
