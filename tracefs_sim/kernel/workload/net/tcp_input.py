"""TCP's input side over ``lo`` (net/ipv4/tcp_ipv4.c, tcp_input.c, tcp_minisocks.c,
release_sock()'s backlog): a segment received in the NET_RX softirq, found its socket
(listener, request, established), and the state machine it drives; tcp.py's docstring
tells the whole exchange.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .sk import ACCEPTS
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
)
from .tcp_output import (
    ACK,
    ECONNREFUSED,
    FIN,
    QUEUE_PURGE,
    RST,
    SK_RST_REASON_NO_SOCKET,
    SND_CWND,
    SSTHRESH,
    SYN,
    SYN_HLEN,
    TCP_CA_OPEN,
    TCP_SK,
    TcpOutput,
    sockaddr,
)

if TYPE_CHECKING:
    from .. import Workload
    from ..syscalls import SyscallCtx
    from .calls import Calls
    from .ip import Ip
    from .sk import SockCore
    from .skbuff import Skbuff

class TcpInput(TcpOutput):
    """The segments a TCP socket receives, and its owner's lock (a segment for an owned
    socket waits in its backlog)."""

    def __init__(self, wl: Workload, calls: Calls, ip: Ip, core: SockCore, skbs: Skbuff) -> None:
        super().__init__(wl, calls, ip, core, skbs)
        ip.handlers[IPPROTO_TCP] = self.v4_rcv

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
        child.sk = self.core.new_sk(AF_INET, SOCK_STREAM, IPPROTO_TCP)     # its socket: accept()'s
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
