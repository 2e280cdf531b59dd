"""TCP over ``lo`` (net/ipv4/tcp*.c, inet_connection_sock.c, inet_hashtables.c).

On ``lo`` a segment is received in the sender's own softirq, so a whole exchange runs
inside the syscalls of its two ends:

* connect(): tcp_v4_connect() routes (ip_route_connect(): without the source address,
  then with it; once more with the new port when the socket was not bound) and goes
  SYN_SENT; the SYN's softirq has the listener answer it (tcp_conn_request(): the route
  back, the SYN-ACK) and the SYN consumed.  The SYN-ACK finds the client owned by its
  user (lock_sock() in inet_stream_connect()): it waits in the socket's backlog until
  inet_wait_for_connect()'s release_sock() processes it: ESTABLISHED, the ACK.  The
  ACK's softirq has the listener make the child (inet_csk_clone_lock(): LISTEN →
  SYN_RECV with the listener's addresses; tcp_v4_syn_recv_sock(): the child's route,
  tcp_cong_state_set Open), SYN_RECV → ESTABLISHED, the accept queue, sk_data_ready on
  the listener (the accept() waiting wakes).
* send: tcp_sendmsg() → tcp_push() → tcp_write_xmit() sends a clone; the peer's
  tcp_rcv_established() (tcp_probe) queues it, acks it at once (quick ACKs) and wakes
  its reader; the ACK waits in the sender's backlog until its release_sock().
* recv: tcp_recvmsg_locked() copies (skb_copy_datagram_iovec, tcp_rcv_space_adjust per
  skb) and frees what it used up without a tracepoint (skb_attempt_defer_free()).
* close(): FIN_WAIT1 and the FIN; the peer goes CLOSE_WAIT and owes the ACK (pingpong:
  it rides on the peer's own FIN when it closes: LAST_ACK); the first closer, orphaned,
  goes FIN_WAIT2 → TIME_WAIT's CLOSE and is destroyed (tcp_destroy_sock; its unread FIN
  purged: kfree_skb QUEUE_PURGE); the last ACK closes the other end.
* a SYN to a port nobody listens on (connect() failed with ECONNREFUSED): the RST
  (tcp_send_reset), the client's tcp_reset() (tcp_receive_reset, CLOSE,
  inet_sk_error_report).

The delayed-ACK and retransmission timers are not modelled: an ACK owed is sent with
the next segment of its socket.  A peer the model has no socket for (an untraced
process) is made up from what the traced end observed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .ip import INIT_NET, ip4
from .sk import ACCEPTS, InetProto
from .skbuff import CHECKSUM_PARTIAL, GFP_ATOMIC, NO_SOCKET
from .sock import (
    AF_INET,
    IPPROTO_TCP,
    SOCK_STREAM,
    TCP_CLOSE,
    TCP_CLOSE_WAIT,
    TCP_ESTABLISHED,
    TCP_FIN_WAIT1,
    TCP_FIN_WAIT2,
    TCP_LAST_ACK,
    TCP_LISTEN,
    TCP_SYN_RECV,
    TCP_SYN_SENT,
    Skb,
    Sock,
    TcpState,
    real_port,
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


class Tcp(InetProto):
    """TCP sockets of one kernel."""

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

    # ------------------------------------------------------------------ the owner's lock
    def lock(self, ctx: SyscallCtx, sock: Sock) -> None:
        """lock_sock(): segments for it wait in its backlog until release_sock()."""
        self.c.leaf(ctx, "lock_sock_nested", sock.sk, 0)
        sock.owned = True

    def release(self, ctx: SyscallCtx, sock: Sock) -> None:
        """release_sock() → __release_sock(): the backlog's segments processed (the
        bottom half enabled: what they send is received at once)."""
        c = self.c
        c.enter(ctx, "release_sock", sock.sk)
        if sock.backlog:
            c.enter(ctx, "__release_sock", sock.sk)
            while sock.backlog:
                skb = sock.backlog.pop(0)
                self.do_rcv(ctx, sock, skb)
            c.leave(ctx, "__release_sock")
        sock.owned = False
        c.leave(ctx, "release_sock")

    # ------------------------------------------------------------------ listen, connect
    def listen(self, ctx: SyscallCtx, sock: Sock, backlog: int) -> None:
        """__inet_listen_sk() → inet_csk_listen_start(): LISTEN, the port, the hash."""
        c = self.c
        c.enter(ctx, "__inet_listen_sk", sock.sk, backlog)
        c.enter(ctx, "inet_csk_listen_start", sock.sk)
        self.set_state(ctx, sock, TCP_LISTEN, "inet_sk_state_store")
        if not sock.sport:
            sock.sport = self.ephemeral()
        c.leaf(ctx, "inet_csk_get_port", sock.sk, sock.sport)
        c.leaf(ctx, "inet_hash", sock.sk)
        self.listeners[sock.sport] = sock
        self.core.store(sock)
        c.leave(ctx, "inet_csk_listen_start", 0)
        c.leave(ctx, "__inet_listen_sk", 0)

    def connect(self, ctx: SyscallCtx, sock: Sock, daddr: int, dport: int) -> None:
        """inet_stream_connect() (entered) → lock_sock(), __inet_stream_connect() →
        tcp_v4_connect(); the wait for the handshake's end (release_sock() processes the
        SYN-ACK).  The chain is left open for the return (``connect_exit``)."""
        c = self.c
        ret = ctx.ret
        self.lock(ctx, sock)
        c.enter(ctx, "__inet_stream_connect", sock.socket, ctx.frame + 0x40, 16, 0, 0)
        c.enter(ctx, "tcp_v4_connect", sock.sk, ctx.frame + 0x40, 16)
        tp = self._tp(sock)
        bound = bool(sock.sport)
        if not sock.saddr:
            c.enter(ctx, "ip_route_output_key_hash", INIT_NET, ctx.frame + 0xA0, 0)
            self.ip.fib_lookup(ctx, IPPROTO_TCP, 0, daddr, sock.sport, dport, 0, 0)
            c.leave(ctx, "ip_route_output_key_hash", 0)
        sock.saddr = self.ip.route_output(ctx, sock, IPPROTO_TCP, sock.saddr or daddr, daddr, sock.sport,
                                          dport)
        sock.daddr, sock.dport = daddr, dport
        self.set_state(ctx, sock, TCP_SYN_SENT)
        c.enter(ctx, "inet_hash_connect", 0, sock.sk)
        c.leaf(ctx, "__inet_hash_connect", 0, sock.sk, 0, 0)
        if not bound:
            sock.sport = real_port(ctx) or self.ephemeral()
        self.established[(sock.saddr, sock.sport, daddr, dport)] = sock
        c.leave(ctx, "inet_hash_connect", 0)
        if not bound:
            self.ip.route_output(ctx, sock, IPPROTO_TCP, sock.saddr, daddr, sock.sport, dport)
        self.core.store(sock)
        sock.txhash = self.wl.rng.getrandbits(32)
        tp.iss = self.wl.rng.getrandbits(32)
        tp.snd_una = tp.snd_nxt = tp.iss
        refused = ret is not None and ret == -ECONNREFUSED
        if not refused and self._listener(dport) is None:
            self._outside_listener(daddr, dport)
        c.enter(ctx, "tcp_connect", sock.sk)
        syn = self._segment(ctx, sock, SYN, 0, SYN_HLEN)
        tp.snd_nxt += 1
        tp.t_syn = self.wl.k.boot_clock.ns()
        tp.rtx = syn
        self._transmit(ctx, sock, syn, True)
        c.leave(ctx, "tcp_connect", 0)
        c.leave(ctx, "tcp_v4_connect", 0)
        # inet_wait_for_connect() → release_sock(): the SYN-ACK (or the RST) is processed
        self.release(ctx, sock)

    def connect_exit(self, ctx: SyscallCtx, sock: Sock, ret: int) -> None:
        self.c.leave(ctx, "__inet_stream_connect", ret)

    def _outside_listener(self, addr: int, port: int) -> None:
        """A listener of an untraced process (a connect to it succeeded)."""
        sock = Sock(AF_INET, SOCK_STREAM, IPPROTO_TCP, saddr=addr, sport=port, state=TCP_LISTEN,
                    outside=True)
        self.core.ensure(sock)
        self.core.store(sock)
        self.listeners[port] = sock

    # ------------------------------------------------------------------ segments in
    def v4_rcv(self, ctx: SyscallCtx, skb: Skb) -> None:
        """tcp_v4_rcv(): the socket of the segment (established, a request, a listener)
        or none (the RST)."""
        c = self.c
        c.enter(ctx, "tcp_v4_rcv", skb.addr)
        key = (skb.daddr, skb.dport, skb.saddr, skb.sport)
        sock = self.established.get(key)
        req = self.requests.get(key)
        if sock is not None:
            if sock.owned:
                c.leaf(ctx, "tcp_add_backlog", sock.sk, skb.addr, ctx.frame + 0x74)
                sock.backlog.append(skb)
            else:
                self.do_rcv(ctx, sock, skb)
        elif req is not None and skb.tcp_flags & ACK and not skb.tcp_flags & SYN:
            self._req_ack(ctx, key, req, skb)
        elif skb.tcp_flags & SYN and self._listener(skb.dport) is not None:
            self.do_rcv(ctx, self.listeners[skb.dport], skb)
        else:
            self._no_socket(ctx, skb)
        c.leave(ctx, "tcp_v4_rcv", 0)

    def do_rcv(self, ctx: SyscallCtx, sock: Sock, skb: Skb) -> None:
        """tcp_v4_do_rcv(): tcp_rcv_established() for an established socket, else
        tcp_rcv_state_process()."""
        c = self.c
        c.enter(ctx, "tcp_v4_do_rcv", sock.sk, skb.addr)
        if sock.state == TCP_ESTABLISHED:
            self._rcv_established(ctx, sock, skb)
        else:
            self._state_process(ctx, sock, skb)
        c.leave(ctx, "tcp_v4_do_rcv", 0)

    def _ack(self, ctx: SyscallCtx, sock: Sock, skb: Skb) -> None:
        """tcp_ack(): what it acks leaves the retransmit queue (freed, no tracepoint)."""
        tp = self._tp(sock)
        self.c.leaf(ctx, "tcp_ack", sock.sk, skb.addr, 0)
        if skb.tcp_flags & ACK and skb.ack_seq - tp.snd_una & 0xFFFFFFFF <= 1 << 30:
            tp.snd_una = skb.ack_seq
            rtx = tp.rtx
            if rtx is not None and rtx.seq != skb.ack_seq:
                tp.rtx = None
                self.skbs.free_quiet(ctx, rtx)

    def _rcv_established(self, ctx: SyscallCtx, sock: Sock, skb: Skb) -> None:
        """tcp_rcv_established(): tcp_probe; an ACK; data queued, acked at once (quick
        ACKs), sk_data_ready; a FIN (tcp_data_queue() → tcp_fin())."""
        wl = self.wl
        c = self.c
        tp = self._tp(sock)
        c.enter(ctx, "tcp_rcv_established", sock.sk, skb.addr)
        probe = wl.tp("tcp_probe")
        if probe:
            probe.fire(sockaddr(sock.saddr, sock.sport), sockaddr(sock.daddr, sock.dport), sock.sport,
                       sock.dport, AF_INET, 0, skb.payload, tp.snd_nxt, tp.snd_una, SND_CWND, SSTHRESH,
                       tp.snd_wnd, tp.srtt_us >> 3, tp.rcv_wnd, self._cookie(sock), skb.addr, sock.sk)
        c.leaf(ctx, "tcp_mstamp_refresh", sock.sk)
        self._ack(ctx, sock, skb)
        if skb.tcp_flags & FIN:
            c.leaf(ctx, "tcp_validate_incoming", sock.sk, skb.addr, ctx.frame + 0x78, 1)
            self._data_queue(ctx, sock, skb)
        elif skb.payload:
            c.leaf(ctx, "tcp_queue_rcv", sock.sk, skb.addr, ctx.frame + 0x7C)
            tp.rcv_nxt = (tp.rcv_nxt + skb.payload) & 0xFFFFFFFF
            self._queue(ctx, sock, skb)
            c.leaf(ctx, "tcp_event_data_recv", sock.sk, skb.addr)
            if tp.quick > 0:
                tp.quick -= 1
                c.enter(ctx, "__tcp_ack_snd_check", sock.sk, 0)
                self._send_ack(ctx, sock)
                c.leave(ctx, "__tcp_ack_snd_check")
            else:
                tp.ack_pending = True
            self._data_ready(ctx, sock)
        else:
            self.skbs.free_quiet(ctx, skb)
        c.leave(ctx, "tcp_rcv_established")

    def _queue(self, ctx: SyscallCtx, sock: Sock, skb: Skb) -> None:
        """The skb on the receive queue; a traced reader entered before the sender was
        asleep waiting for it."""
        self._woken = self.core.sleepers(ctx, sock)
        sock.rcvq.append(skb)

    def _data_ready(self, ctx: SyscallCtx, sock: Sock) -> None:
        """tcp_data_ready() → sk->sk_data_ready()."""
        self.c.enter(ctx, "tcp_data_ready", sock.sk)
        self.core.data_ready(ctx, sock, "tcp_data_ready", self._woken)
        self._woken = []
        self.c.leave(ctx, "tcp_data_ready")

    def _data_queue(self, ctx: SyscallCtx, sock: Sock, skb: Skb) -> None:
        """tcp_data_queue() of a FIN: queued (its data too), tcp_fin(), sk_data_ready."""
        c = self.c
        tp = self._tp(sock)
        c.enter(ctx, "tcp_data_queue", sock.sk, skb.addr)
        tp.rcv_nxt = (tp.rcv_nxt + skb.payload + 1) & 0xFFFFFFFF
        self._queue(ctx, sock, skb)
        tp.fin_rcvd = True
        self._fin(ctx, sock)
        if not tp.orphan:
            self._data_ready(ctx, sock)
        else:
            self._woken = []
        c.leave(ctx, "tcp_data_queue")

    def _fin(self, ctx: SyscallCtx, sock: Sock) -> None:
        """tcp_fin(): ESTABLISHED → CLOSE_WAIT (the ACK owed: pingpong); FIN_WAIT2 → the
        ACK, TIME_WAIT (the socket itself CLOSE)."""
        c = self.c
        tp = self._tp(sock)
        c.enter(ctx, "tcp_fin", sock.sk)
        if sock.state == TCP_ESTABLISHED:
            self.set_state(ctx, sock, TCP_CLOSE_WAIT)
            tp.ack_pending = True
        elif sock.state == TCP_FIN_WAIT2:
            self._send_ack(ctx, sock)
            c.enter(ctx, "tcp_time_wait", sock.sk, 6, 0)
            c.leaf(ctx, "inet_twsk_alloc", sock.sk, 0, 6)
            self._done(ctx, sock)
            c.leave(ctx, "tcp_time_wait")
        c.leave(ctx, "tcp_fin")

    def _done(self, ctx: SyscallCtx, sock: Sock) -> None:
        """tcp_done(): CLOSE; an orphan is destroyed (inet_csk_destroy_sock())."""
        c = self.c
        c.enter(ctx, "tcp_done", sock.sk)
        self.set_state(ctx, sock, TCP_CLOSE)
        if self._tp(sock).orphan:
            self._destroy(ctx, sock)
        else:
            c.leaf(ctx, "sock_def_wakeup", sock.sk)
        c.leave(ctx, "tcp_done")

    def _destroy(self, ctx: SyscallCtx, sock: Sock) -> None:
        """inet_csk_destroy_sock() → tcp_v4_destroy_sock() (tcp_destroy_sock),
        sk_stream_kill_queues(): what was never read is purged."""
        c = self.c
        tp = self._tp(sock)
        if tp.destroyed:
            return
        tp.destroyed = True
        c.enter(ctx, "inet_csk_destroy_sock", sock.sk)
        c.enter(ctx, "tcp_v4_destroy_sock", sock.sk)
        self._event_sk("tcp_destroy_sock", sock)
        c.leave(ctx, "tcp_v4_destroy_sock")
        c.enter(ctx, "sk_stream_kill_queues", sock.sk)
        for skb in sock.rcvq:
            self.skbs.drop(ctx, skb, "sk_stream_kill_queues", QUEUE_PURGE)
        sock.rcvq.clear()
        c.leave(ctx, "sk_stream_kill_queues")
        if tp.rtx is not None:
            self.skbs.free_quiet(ctx, tp.rtx)
            tp.rtx = None
        c.leave(ctx, "inet_csk_destroy_sock")
        if sock.closed or tp.orphan:
            self.core.free(sock)

    def _state_process(self, ctx: SyscallCtx, sock: Sock, skb: Skb) -> None:
        """tcp_rcv_state_process(): LISTEN (a SYN), SYN_SENT (the SYN-ACK or an RST),
        SYN_RECV, FIN_WAIT1, FIN_WAIT2, LAST_ACK, CLOSE_WAIT."""
        c = self.c
        tp = self._tp(sock)
        c.enter(ctx, "tcp_rcv_state_process", sock.sk, skb.addr)
        state = sock.state
        if state == TCP_LISTEN:
            self._conn_request(ctx, sock, skb)
            self.skbs.consume(ctx, skb, "tcp_rcv_state_process")
        elif state == TCP_SYN_SENT:
            c.leaf(ctx, "tcp_mstamp_refresh", sock.sk)
            if skb.tcp_flags & RST:
                self._reset(ctx, sock)
            else:
                self._ack(ctx, sock, skb)
                tp.rcv_nxt = (skb.seq + 1) & 0xFFFFFFFF
                rtt = max(1, (self.wl.k.boot_clock.ns() - tp.t_syn) // 1000)
                tp.srtt_us = rtt << 3
                c.enter(ctx, "tcp_finish_connect", sock.sk, skb.addr)
                self.set_state(ctx, sock, TCP_ESTABLISHED)
                c.leaf(ctx, "tcp_init_transfer", sock.sk, 1, skb.addr)
                c.leaf(ctx, "sock_def_wakeup", sock.sk)
                c.leave(ctx, "tcp_finish_connect")
                self._send_ack(ctx, sock)
            self.skbs.free_quiet(ctx, skb)
        else:
            self._ack(ctx, sock, skb)
            acked = tp.snd_una == tp.snd_nxt
            if state == TCP_SYN_RECV and acked:
                self.set_state(ctx, sock, TCP_ESTABLISHED)
            elif state == TCP_FIN_WAIT1 and acked:
                self.set_state(ctx, sock, TCP_FIN_WAIT2)
            elif state == TCP_LAST_ACK and acked:
                self._done(ctx, sock)
            if skb.tcp_flags & FIN and sock.state in (TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_ESTABLISHED):
                self._data_queue(ctx, sock, skb)
            else:
                self.skbs.free_quiet(ctx, skb)
        c.leave(ctx, "tcp_rcv_state_process", 0)

    def _conn_request(self, ctx: SyscallCtx, lsk: Sock, syn: Skb) -> None:
        """tcp_v4_conn_request() → tcp_conn_request(): the request socket, the route
        back (its flow out of the SYN's interface), tcp_v4_send_synack()."""
        c = self.c
        c.enter(ctx, "tcp_v4_conn_request", lsk.sk, syn.addr)
        c.enter(ctx, "tcp_conn_request", 0, 0, lsk.sk, syn.addr)
        req = self.wl.slab.alloc_obj(256)
        c.leaf(ctx, "inet_reqsk_alloc", 0, lsk.sk, 1, ret=req)
        c.enter(ctx, "tcp_v4_route_req", lsk.sk, syn.addr, ctx.frame + 0xA0, req, 0)
        c.enter(ctx, "inet_csk_route_req", lsk.sk, ctx.frame + 0xA0, req)
        self.ip.route_output(ctx, lsk, IPPROTO_TCP, syn.daddr, syn.saddr, syn.dport, syn.sport)
        c.leave(ctx, "inet_csk_route_req", 0)
        c.leave(ctx, "tcp_v4_route_req", 0)
        iss = self.wl.rng.getrandbits(32)
        key = (syn.daddr, syn.dport, syn.saddr, syn.sport)
        self.requests[key] = (lsk, iss)
        c.enter(ctx, "tcp_v4_send_synack", lsk.sk, 0, ctx.frame + 0xA0, req, 0, 0, syn.addr)
        peer = Sock(AF_INET, SOCK_STREAM, IPPROTO_TCP, saddr=syn.daddr, sport=syn.dport, daddr=syn.saddr,
                    dport=syn.sport, sk=lsk.sk)
        peer.tcp = TcpState(iss=iss, snd_una=iss, snd_nxt=iss, rcv_nxt=(syn.seq + 1) & 0xFFFFFFFF)
        c.enter(ctx, "tcp_make_synack", lsk.sk, 0, req, 0, 0, syn.addr)
        synack = self._segment(ctx, peer, SYN | ACK, 0, SYN_HLEN, GFP_ATOMIC)
        synack.sk = None
        c.leave(ctx, "tcp_make_synack", synack.addr)
        c.enter(ctx, "ip_build_and_send_pkt", synack.addr, lsk.sk, syn.daddr, syn.saddr, 0, 0)
        self.ip.local_out(ctx, synack, lsk)
        c.leave(ctx, "ip_build_and_send_pkt", 0)
        c.leave(ctx, "tcp_v4_send_synack", 0)
        c.leave(ctx, "tcp_conn_request", 0)
        c.leave(ctx, "tcp_v4_conn_request", 0)

    def _req_ack(self, ctx: SyscallCtx, key: tuple[int, int, int, int], req: tuple[Sock, int],
                 skb: Skb) -> None:
        """The handshake's ACK to a request socket: tcp_check_req() →
        tcp_v4_syn_recv_sock() makes the child, which tcp_child_process() makes
        ESTABLISHED; the listener's accept queue gets it (sk_data_ready)."""
        c = self.c
        lsk, iss = req
        del self.requests[key]
        c.enter(ctx, "tcp_check_req", lsk.sk, skb.addr, 0, 0, ctx.frame + 0x80)
        c.enter(ctx, "tcp_v4_syn_recv_sock", lsk.sk, skb.addr, 0, 0, 0, ctx.frame + 0x84)
        child = Sock(AF_INET, SOCK_STREAM, IPPROTO_TCP, saddr=lsk.saddr, sport=lsk.sport,
                     state=TCP_LISTEN, outside=lsk.outside, listener=lsk)
        child.sk, child.socket = self.core.new(AF_INET, SOCK_STREAM, IPPROTO_TCP)
        child.socket = 0
        c.enter(ctx, "tcp_create_openreq_child", lsk.sk, 0, skb.addr)
        c.enter(ctx, "inet_csk_clone_lock", lsk.sk, 0, GFP_ATOMIC)
        c.leaf(ctx, "sk_clone_lock", lsk.sk, GFP_ATOMIC, ret=child.sk)
        self.set_state(ctx, child, TCP_SYN_RECV, "inet_sk_set_state")
        child.dport = skb.sport
        c.leave(ctx, "inet_csk_clone_lock", child.sk)
        c.leave(ctx, "tcp_create_openreq_child", child.sk)
        child.saddr, child.daddr = key[0], key[2]
        child.tcp = TcpState(iss=iss, snd_una=(iss + 1) & 0xFFFFFFFF, snd_nxt=(iss + 1) & 0xFFFFFFFF,
                             rcv_nxt=skb.seq, srtt_us=8)
        child.txhash = self.wl.rng.getrandbits(32)
        c.enter(ctx, "inet_csk_route_child_sock", lsk.sk, child.sk, 0)
        self.ip.route_output(ctx, child, IPPROTO_TCP, child.saddr, child.daddr, child.sport, child.dport)
        c.leave(ctx, "inet_csk_route_child_sock", 0)
        c.enter(ctx, "tcp_ca_openreq_child", child.sk, 0)
        c.enter(ctx, "tcp_set_ca_state", child.sk, TCP_CA_OPEN)
        tp = self.wl.tp("tcp_cong_state_set")
        if tp:
            tp.fire(child.sk, *self._addrs(child), TCP_CA_OPEN)
        c.leave(ctx, "tcp_set_ca_state")
        c.leave(ctx, "tcp_ca_openreq_child")
        c.leaf(ctx, "__inet_inherit_port", lsk.sk, child.sk)
        c.leaf(ctx, "inet_ehash_nolisten", child.sk, 0, ctx.frame + 0x88)
        self.established[(child.saddr, child.sport, child.daddr, child.dport)] = child
        self.core.store(child)
        c.leave(ctx, "tcp_v4_syn_recv_sock", child.sk)
        c.enter(ctx, "inet_csk_complete_hashdance", lsk.sk, child.sk, 0, 1)
        c.leaf(ctx, "inet_csk_reqsk_queue_add", lsk.sk, 0, child.sk)
        c.leave(ctx, "inet_csk_complete_hashdance", child.sk)
        c.leave(ctx, "tcp_check_req", child.sk)
        c.enter(ctx, "tcp_child_process", lsk.sk, child.sk, skb.addr)
        self._state_process(ctx, child, skb)
        # the parent's sk_data_ready: the accept() waiting wakes
        waiting = self.core.sleepers(ctx, lsk, ACCEPTS)
        lsk.accept_q.append(child)
        self.core.data_ready(ctx, lsk, "tcp_child_process", waiting)
        c.leave(ctx, "tcp_child_process", 0)

    def _no_socket(self, ctx: SyscallCtx, skb: Skb) -> None:
        """No socket for the segment: tcp_v4_send_reset() answers a segment that is not
        an RST, then the skb is dropped (NO_SOCKET)."""
        c = self.c
        if not skb.tcp_flags & RST:
            c.enter(ctx, "tcp_v4_send_reset", 0, skb.addr, SK_RST_REASON_NO_SOCKET)
            tp = self.wl.tp("tcp_send_reset")
            if tp:
                tp.fire(skb.addr, 0, 0, SK_RST_REASON_NO_SOCKET, sockaddr(skb.daddr, skb.dport),
                        sockaddr(skb.saddr, skb.sport))
            ctl = Sock(AF_INET, SOCK_STREAM, IPPROTO_TCP, saddr=skb.daddr, sport=skb.dport,
                       daddr=skb.saddr, dport=skb.sport, sk=TCP_SK + self.wl.k.sched.cpu * 0x1000)
            ctl.tcp = TcpState(snd_nxt=skb.ack_seq if skb.tcp_flags & ACK else 0,
                               rcv_nxt=(skb.seq + skb.payload + (1 if skb.tcp_flags & (SYN | FIN) else 0))
                               & 0xFFFFFFFF)
            c.enter(ctx, "ip_send_unicast_reply", ctl.sk, skb.addr, 0, ctx.frame + 0x90, skb.daddr,
                    skb.saddr, ctx.frame + 0x98, 20)
            rst = Skb(0, IPPROTO_TCP, skb.daddr, skb.saddr, skb.dport, skb.sport, 20, 0,
                      ip_summed=CHECKSUM_PARTIAL, tcp_flags=RST | ACK, seq=ctl.tcp.snd_nxt,
                      ack_seq=ctl.tcp.rcv_nxt)
            self.skbs.alloc(ctx, rst, 20 + 20 + 31, GFP_ATOMIC)
            self.ip.push_pending_frames(ctx, rst, ctl)
            c.leave(ctx, "ip_send_unicast_reply")
            c.leave(ctx, "tcp_v4_send_reset")
        self.skbs.drop(ctx, skb, "tcp_v4_rcv", NO_SOCKET)

    def _reset(self, ctx: SyscallCtx, sock: Sock) -> None:
        """tcp_reset(): tcp_receive_reset, the error (ECONNREFUSED in SYN_SENT), CLOSE,
        sk_error_report → inet_sk_error_report."""
        wl = self.wl
        c = self.c
        c.enter(ctx, "tcp_reset", sock.sk, 0)
        self._event_sk("tcp_receive_reset", sock)
        rtx = self._tp(sock).rtx
        if rtx is not None:             # tcp_write_queue_purge()
            self._tp(sock).rtx = None
            self.skbs.free_quiet(ctx, rtx)
        self._done(ctx, sock)
        c.enter(ctx, "sk_error_report", sock.sk)
        tp = wl.tp("inet_sk_error_report")
        if tp:
            sport, dport, family, sa, da, sa6, da6 = self._addrs(sock)
            tp.fire(ECONNREFUSED, sport, dport, family, IPPROTO_TCP, sa, da, sa6, da6)
        c.leave(ctx, "sk_error_report")
        c.leave(ctx, "tcp_reset")

    # ------------------------------------------------------------------ accept
    def wait_connect(self, ctx: SyscallCtx, sock: Sock) -> None:
        """inet_csk_wait_for_connect(): release_sock(), schedule_timeout() (left open)."""
        self.c.leaf(ctx, "release_sock", sock.sk)
        self.c.enter(ctx, "schedule_timeout", 0x7FFFFFFFFFFFFFFF)

    def unwait_connect(self, ctx: SyscallCtx, sock: Sock) -> None:
        self.c.leave(ctx, "schedule_timeout", 0)
        self.c.leaf(ctx, "lock_sock_nested", sock.sk, 0)

    def foreign_child(self, ctx: SyscallCtx, lsk: Sock) -> Sock:
        """A connection an untraced client made (its handshake ran in its own context,
        unseen): the child as accept() returns it."""
        child = Sock(AF_INET, SOCK_STREAM, IPPROTO_TCP, saddr=lsk.saddr or 0x7F000001, sport=lsk.sport,
                     daddr=0x7F000001, dport=self.ephemeral(), state=TCP_ESTABLISHED)
        child.sk, _ = self.core.new(AF_INET, SOCK_STREAM, IPPROTO_TCP)
        child.tcp = TcpState(iss=self.wl.rng.getrandbits(32))
        child.tcp.snd_una = child.tcp.snd_nxt = (child.tcp.iss + 1) & 0xFFFFFFFF
        self.established[(child.saddr, child.sport, child.daddr, child.dport)] = child
        self.core.store(child)
        return child

    # ------------------------------------------------------------------ data
    def sendmsg(self, ctx: SyscallCtx, sock: Sock, length: int, flags: int) -> None:
        """tcp_sendmsg() → lock_sock(), tcp_sendmsg_locked(): skbs of up to the size goal,
        pushed; release_sock() processes the ACKs that came back."""
        c = self.c
        tp = self._tp(sock)
        c.enter(ctx, "tcp_sendmsg", sock.sk, ctx.frame + 0x100, length)
        self.lock(ctx, sock)
        c.enter(ctx, "tcp_sendmsg_locked", sock.sk, ctx.frame + 0x100, length)
        if sock.state in (TCP_ESTABLISHED, TCP_CLOSE_WAIT):
            left = length
            while left > 0:
                n = min(left, SIZE_GOAL)
                left -= n
                c.enter(ctx, "tcp_stream_alloc_skb", sock.sk, 0xCC0, 1)
                skb = self._segment(ctx, sock, ACK | PSH, n, TS_HLEN)
                c.leave(ctx, "tcp_stream_alloc_skb", skb.addr)
                tp.snd_nxt = (tp.snd_nxt + n) & 0xFFFFFFFF
                tp.rtx = skb
                self._push(ctx, sock, skb)
        c.leave(ctx, "tcp_sendmsg_locked", length)
        self.release(ctx, sock)
        c.leave(ctx, "tcp_sendmsg", length)

    def recvmsg(self, ctx: SyscallCtx, sock: Sock, size: int, flags: int) -> int | None:
        """tcp_recvmsg() → lock_sock(), tcp_recvmsg_locked(): the queued data copied (or
        the EOF of a FIN); None when it waits (sk_wait_data(), left open)."""
        c = self.c
        c.leaf(ctx, "lock_sock_nested", sock.sk, 0)
        c.enter(ctx, "tcp_recvmsg_locked", sock.sk, ctx.frame + 0x100, size, flags, ctx.frame + 0x60,
                ctx.frame + 0x5C)
        ret = ctx.ret
        if ret is not None and ret < 0 and ret != -11:
            c.leaf(ctx, "tcp_cleanup_rbuf", sock.sk, 0)
            c.enter(ctx, "sk_wait_data", sock.sk, ctx.frame + 0x64, 0)
            return None
        if sock.rcvq or (ret is not None and ret == -11):
            return self._copy(ctx, sock, size, ret)
        c.leaf(ctx, "tcp_cleanup_rbuf", sock.sk, 0)
        c.enter(ctx, "sk_wait_data", sock.sk, ctx.frame + 0x64, 0)
        return None

    def recv_after_wait(self, ctx: SyscallCtx, sock: Sock, size: int, ret: int) -> int:
        """sk_wait_data() returns (woken by the data, a FIN or a signal): the copy."""
        self.c.leave(ctx, "sk_wait_data", 0)
        if ret > 0 and sum(s.payload for s in sock.rcvq) < ret:
            sock.rcvq.append(self.skbs.foreign(sock, IPPROTO_TCP, ret))
        return self._copy(ctx, sock, size, ret)

    def _copy(self, ctx: SyscallCtx, sock: Sock, size: int, ret: int | None) -> int:
        """The copy loop of tcp_recvmsg_locked() up to ``ret`` bytes (the real result):
        per skb skb_copy_datagram_msg(), tcp_rcv_space_adjust(); a used-up skb freed (no
        tracepoint); a FIN ends it (0 at EOF)."""
        c = self.c
        want = size if ret is None else max(0, ret)
        copied = 0
        if ret is None or ret >= 0:
            while sock.rcvq and copied < want:
                skb = sock.rcvq[0]
                left = skb.payload - skb.seq_off
                if left <= 0:
                    if skb.tcp_flags & FIN:
                        sock.rcvq.pop(0)
                        self.skbs.free_quiet(ctx, skb)
                    break
                used = min(left, want - copied)
                self.skbs.copy_datagram(ctx, skb, skb.seq_off + skb.thlen, used)
                c.enter(ctx, "tcp_rcv_space_adjust", sock.sk)
                self._event_sk("tcp_rcv_space_adjust", sock)
                c.leaf(ctx, "tcp_mstamp_refresh", sock.sk)
                c.leave(ctx, "tcp_rcv_space_adjust")
                copied += used
                skb.seq_off += used
                if skb.seq_off >= skb.payload and not skb.tcp_flags & FIN:
                    sock.rcvq.pop(0)
                    c.enter(ctx, "skb_attempt_defer_free", skb.addr)
                    self.skbs.free_napi(ctx, skb)
                    c.leave(ctx, "skb_attempt_defer_free")
            if copied == 0 and sock.rcvq and sock.rcvq[0].tcp_flags & FIN:
                skb = sock.rcvq.pop(0)
                c.enter(ctx, "skb_attempt_defer_free", skb.addr)
                self.skbs.free_napi(ctx, skb)
                c.leave(ctx, "skb_attempt_defer_free")
        c.leaf(ctx, "tcp_cleanup_rbuf", sock.sk, copied)
        result = copied if ret is None else ret
        c.leave(ctx, "tcp_recvmsg_locked", result)
        self.release(ctx, sock)
        return result

    # ------------------------------------------------------------------ shutdown, close
    def shutdown(self, ctx: SyscallCtx, sock: Sock, how: int) -> None:
        """tcp_shutdown(): SHUT_WR (or RDWR) closes the sending side: the FIN."""
        c = self.c
        c.enter(ctx, "tcp_shutdown", sock.sk, how + 1)
        if (how + 1) & 2 and sock.state in (TCP_ESTABLISHED, TCP_CLOSE_WAIT):
            self._close_state(ctx, sock)
        c.leave(ctx, "tcp_shutdown")

    def _close_state(self, ctx: SyscallCtx, sock: Sock) -> None:
        """tcp_close_state() (the new state), tcp_send_fin()."""
        c = self.c
        tp = self._tp(sock)
        self.set_state(ctx, sock, TCP_FIN_WAIT1 if sock.state == TCP_ESTABLISHED else TCP_LAST_ACK)
        c.enter(ctx, "tcp_send_fin", sock.sk)
        skb = self._segment(ctx, sock, FIN | ACK, 0, TS_HLEN)
        tp.snd_nxt = (tp.snd_nxt + 1) & 0xFFFFFFFF
        tp.fin_sent = True
        tp.rtx = skb
        self._push_pending(ctx, sock, skb)
        c.leave(ctx, "tcp_send_fin")

    def close(self, ctx: SyscallCtx, sock: Sock) -> None:
        """tcp_close() → lock_sock(), __tcp_close(): a listener closes at once; an
        established end sends its FIN; the orphan keeps going until CLOSE, then is
        destroyed; release_sock()."""
        c = self.c
        tp = self._tp(sock)
        c.enter(ctx, "tcp_close", sock.sk, 0)
        self.lock(ctx, sock)
        c.enter(ctx, "__tcp_close", sock.sk, 0)
        if sock.state == TCP_LISTEN:
            self.set_state(ctx, sock, TCP_CLOSE)
            c.leaf(ctx, "inet_csk_listen_stop", sock.sk)
        elif sock.state in (TCP_ESTABLISHED, TCP_CLOSE_WAIT):
            unread = [s for s in sock.rcvq if s.payload - s.seq_off > 0]
            for skb in list(sock.rcvq):
                self.skbs.free_quiet(ctx, skb)
            sock.rcvq.clear()
            if unread:
                self.set_state(ctx, sock, TCP_CLOSE)
            else:
                self._close_state(ctx, sock)
        elif sock.state in (TCP_SYN_SENT, TCP_SYN_RECV):
            self.set_state(ctx, sock, TCP_CLOSE)
        tp.orphan = True
        if sock.backlog:
            c.enter(ctx, "__release_sock", sock.sk)
            while sock.backlog:
                self.do_rcv(ctx, sock, sock.backlog.pop(0))
            c.leave(ctx, "__release_sock")
        if sock.state == TCP_CLOSE:
            self._destroy(ctx, sock)
        c.leave(ctx, "__tcp_close")
        sock.owned = False
        c.leaf(ctx, "release_sock", sock.sk)
        c.leave(ctx, "tcp_close")
