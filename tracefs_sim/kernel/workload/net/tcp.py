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

from .ip import INIT_NET
from .sock import (
    AF_INET,
    IPPROTO_TCP,
    SOCK_STREAM,
    TCP_CLOSE,
    TCP_CLOSE_WAIT,
    TCP_ESTABLISHED,
    TCP_FIN_WAIT1,
    TCP_LAST_ACK,
    TCP_LISTEN,
    TCP_SYN_RECV,
    TCP_SYN_SENT,
    Sock,
    TcpState,
    real_port,
)
from .tcp_input import TcpInput
from .tcp_output import ACK, ECONNREFUSED, FIN, PSH, SIZE_GOAL, SYN, SYN_HLEN, TS_HLEN

if TYPE_CHECKING:
    from ..syscalls import SyscallCtx


class Tcp(TcpInput):
    """TCP sockets of one kernel: what their syscalls do (tcp.c, tcp_ipv4.c's connect,
    inet_connection_sock.c's listen and accept)."""

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
        child.sk = self.core.new_sk(AF_INET, SOCK_STREAM, IPPROTO_TCP)
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
