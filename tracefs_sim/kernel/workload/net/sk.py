"""A socket's receive side (net/core/sock.c, datagram.c): queueing an skb, the
sk_data_ready wake-up of the task waiting for it, and skb_recv_datagram().

The waiter is observed: a traced thread inside a receive on the same socket (recvfrom,
recvmsg, read, readv; accept on a listener) that entered before the sender.  It blocked
in its receive (its path runs up to the wait first, with the queue still empty), and
sock_def_readable()'s wake_up_interruptible_sync_poll() wakes it from the sender's
softirq, on the sender's CPU.  Its receive then returns with the skb the sender queued.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from ..defs import T_ASLEEP
from .sock import Skb, Sock

if TYPE_CHECKING:
    from .. import Workload
    from ..syscalls import SyscallCtx
    from .calls import Calls
    from .ip import Ip
    from .skbuff import Skbuff

RECEIVES = frozenset(("recvfrom", "recvmsg", "recvmmsg", "read", "readv", "pread64"))
ACCEPTS = frozenset(("accept", "accept4"))
MAX_QUEUED = 256            # the model keeps no more skbs per socket (the oldest go)
SOCK_SIZE = {1: 2368, 17: 1152}     # sizeof(struct tcp_sock), (struct udp_sock); else inet_sock
SOCKET_ALLOC = 768                  # sizeof(struct socket_alloc)


class SockCore:
    """The receive side shared by the protocols, and the struct sock objects."""

    def __init__(self, wl: Workload, calls: Calls, skbs: Skbuff) -> None:
        self.wl = wl
        self.c = calls
        self.skbs = skbs
        self._off: tuple[int, ...] | None = None

    # ------------------------------------------------------------------ objects
    def new(self, family: int, type_: int, protocol: int) -> tuple[int, int]:
        """sk_alloc() and sock_alloc(): a struct sock (its common fields stored, as probes
        read them: family, state, type, protocol) and its struct socket."""
        sk = self.new_sk(family, type_, protocol)
        socket = self.new_socket()
        self.graft(socket, sk)
        return sk, socket

    def new_sk(self, family: int, type_: int, protocol: int) -> int:
        """sk_alloc() (sk_clone_lock() for a listener's child): a struct sock."""
        mem = self.wl.k.mem
        sk = mem.alloc(SOCK_SIZE.get(protocol if protocol != 1 or type_ == 1 else 0, 1000)
                       if protocol != 6 else 2368)
        off = self._offsets()
        mem.write(sk + off[0], struct.pack("<H", family))
        mem.write(sk + off[1], bytes((7,)))
        mem.write(sk + off[2], struct.pack("<HH", type_, protocol))
        return sk

    def new_socket(self) -> int:
        """sock_alloc(): a struct socket (accept() makes one before it has the child)."""
        return self.wl.k.mem.alloc(SOCKET_ALLOC)

    def graft(self, socket: int, sk: int) -> None:
        """sock_graft(): the struct socket's ``sk``."""
        self.wl.k.mem.put_u64(socket + self._offsets()[3], sk)

    def _offsets(self) -> tuple[int, ...]:
        off = self._off
        if off is None:
            mem = self.wl.k.mem
            off = self._off = (mem.offset("sock", "__sk_common.skc_family"),
                               mem.offset("sock", "__sk_common.skc_state"),
                               mem.offset("sock", "sk_type"), mem.offset("socket", "sk"),
                               mem.offset("sock", "__sk_common.skc_daddr"),
                               mem.offset("sock", "__sk_common.skc_dport"))
        return off

    def ensure(self, sock: Sock) -> None:
        """A socket the model did not see made gets its objects now."""
        if not sock.sk:
            sock.sk, sock.socket = self.new(sock.family, sock.type, sock.protocol)

    def store(self, sock: Sock) -> None:
        """The addresses and state of ``sock`` in its struct sock (skc_daddr,
        skc_rcv_saddr, skc_dport, skc_num, skc_state); nothing once it is freed."""
        if sock.closed and (sock.tcp is None or sock.tcp.destroyed):
            return
        self.ensure(sock)
        mem = self.wl.k.mem
        off = self._offsets()
        mem.write(sock.sk + off[4], struct.pack(">II", sock.daddr, sock.saddr))
        mem.write(sock.sk + off[5], struct.pack(">H", sock.dport) + struct.pack("<H", sock.sport))
        mem.write(sock.sk + off[1], bytes((sock.state,)))

    def alive(self, sock: Sock) -> bool:
        """Is ``sock`` still open: an untraced process's, or in the fd table of a traced
        process (one that exited without closing it had it closed by its exit)."""
        if sock.outside:
            return True
        if sock.closed:
            return False
        for proc in self.wl.traced.procs.values():
            if proc.released:
                continue
            for f in proc.files.fds.values():
                if f.sock is sock:
                    return True
        return False

    def free(self, sock: Sock) -> None:
        """The struct sock and struct socket of a released socket go (sk_free())."""
        mem = self.wl.k.mem
        if sock.sk:
            mem.free(sock.sk)
        if sock.socket:
            mem.free(sock.socket)

    # ------------------------------------------------------------------ queueing
    def waiters(self, sock: Sock, names: frozenset[str] = RECEIVES) -> list:
        """The traced threads waiting to receive on ``sock`` (in one of ``names``)."""
        out = []
        for t in self.wl.traced.sleepers():
            p = t.pending
            if (p is not None and p.ctx.sc.name in names and p.ctx.file is not None
                    and p.ctx.file.sock is sock):
                out.append(t)
        return out

    def sleepers(self, ctx: SyscallCtx, sock: Sock, names: frozenset[str] = RECEIVES) -> list:
        """The receivers waiting on ``sock`` that entered before this sender: they had
        blocked (their paths run up to the wait now, in their own context)."""
        waiting = [t for t in self.waiters(sock, names) if t.pending.t0 <= ctx.t0]
        if waiting:
            with self.c.irq(0, 0):
                for t in waiting:
                    self.wl.traced.ensure_asleep(t)
        return waiting

    def queue_rcv(self, ctx: SyscallCtx, sock: Sock, skb: Skb, caller: str) -> None:
        """sock_queue_rcv_skb_reason() → __sock_queue_rcv_skb() (from ``caller``): the
        skb joins the receive queue, then sk->sk_data_ready()."""
        c = self.c
        c.enter(ctx, "sock_queue_rcv_skb_reason", sock.sk, skb.addr, ctx.frame + 0x4C)
        c.leaf(ctx, "sk_filter_trim_cap", sock.sk, skb.addr, 1, ret=0)
        c.enter(ctx, "__sock_queue_rcv_skb", sock.sk, skb.addr)
        self.enqueue(ctx, sock, skb, "__sock_queue_rcv_skb")
        c.leave(ctx, "__sock_queue_rcv_skb", 0)
        c.leave(ctx, "sock_queue_rcv_skb_reason", 0)

    def enqueue(self, ctx: SyscallCtx, sock: Sock, skb: Skb, caller: str,
                names: frozenset[str] = RECEIVES) -> None:
        """The skb on ``sock``'s receive queue, then sk_data_ready from ``caller``; a
        traced receiver entered before this sender was asleep waiting for it."""
        waiting = self.sleepers(ctx, sock, names)
        sock.rcvq.append(skb)
        if len(sock.rcvq) > MAX_QUEUED:
            del sock.rcvq[0]
        self.data_ready(ctx, sock, caller, waiting)

    def data_ready(self, ctx: SyscallCtx, sock: Sock, caller: str, waiting: list | None = None) -> None:
        """sock_def_readable(sk): the sk_data_ready event, the waiters woken."""
        wl = self.wl
        c = self.c
        c.enter(ctx, "sock_def_readable", sock.sk)
        tp = wl.tp("sk_data_ready")
        if tp:
            tp.fire(sock.sk, sock.family, sock.protocol, wl.sites.call_ret(caller, "sock_def_readable"))
        woken = [t for t in (waiting or []) if t.state == T_ASLEEP]
        if woken:
            sched = wl.k.sched
            c.enter(ctx, "__wake_up_sync_key", 0, 1, 0x59)
            for t in woken:
                wl.traced.wake(t, sched.cpu, locks=sched.preempt_count + 1)
            c.leave(ctx, "__wake_up_sync_key")
        c.leave(ctx, "sock_def_readable")

    # ------------------------------------------------------------------ receiving
    def recv_datagram(self, ctx: SyscallCtx, sock: Sock, flags: int) -> Skb | None:
        """skb_recv_datagram() → __skb_recv_datagram() → __skb_try_recv_datagram(): the
        first skb of the queue (None: empty, -EAGAIN or the wait)."""
        c = self.c
        c.enter(ctx, "skb_recv_datagram", sock.sk, flags, ctx.frame + 0x50)
        c.enter(ctx, "__skb_recv_datagram", sock.sk, sock.sk + 0xB0, flags, ctx.frame + 0x54,
                ctx.frame + 0x50)
        skb = sock.rcvq.pop(0) if sock.rcvq else None
        c.enter(ctx, "__skb_try_recv_datagram", sock.sk, sock.sk + 0xB0, flags, ctx.frame + 0x54,
                ctx.frame + 0x50, ctx.frame + 0x58)
        c.leaf(ctx, "__skb_try_recv_from_queue", sock.sk, sock.sk + 0xB0, flags, ctx.frame + 0x54,
               ctx.frame + 0x50, ret=skb.addr if skb is not None else 0)
        c.leave(ctx, "__skb_try_recv_datagram", skb.addr if skb is not None else 0)
        c.leave(ctx, "__skb_recv_datagram", skb.addr if skb is not None else 0)
        c.leave(ctx, "skb_recv_datagram", skb.addr if skb is not None else 0)
        return skb

    def wait_datagram(self, ctx: SyscallCtx, sock: Sock) -> None:
        """__skb_wait_for_more_packets(): the open chain where a datagram receive sleeps."""
        c = self.c
        c.enter(ctx, "skb_recv_datagram", sock.sk, 0, ctx.frame + 0x50)
        c.enter(ctx, "__skb_recv_datagram", sock.sk, sock.sk + 0xB0, 0, ctx.frame + 0x54,
                ctx.frame + 0x50)
        c.enter(ctx, "__skb_wait_for_more_packets", sock.sk, sock.sk + 0xB0, ctx.frame + 0x50,
                ctx.frame + 0x5C, 0)

    def unwait_datagram(self, ctx: SyscallCtx, sock: Sock) -> Skb | None:
        """The wait returns (woken: an skb is queued) and the datagram is taken."""
        c = self.c
        c.leave(ctx, "__skb_wait_for_more_packets", 0)
        skb = sock.rcvq.pop(0) if sock.rcvq else None
        c.leaf(ctx, "__skb_try_recv_datagram", sock.sk, sock.sk + 0xB0, 0, ctx.frame + 0x54,
               ctx.frame + 0x50, ctx.frame + 0x58, ret=skb.addr if skb is not None else 0)
        c.leave(ctx, "__skb_recv_datagram", skb.addr if skb is not None else 0)
        c.leave(ctx, "skb_recv_datagram", skb.addr if skb is not None else 0)
        return skb


class InetProto:
    """What each transport protocol (icmp, udp, tcp) works with: the machine, its call
    sites, the IP layer below it, the shared socket core and the skbs."""

    def __init__(self, wl: Workload, calls: Calls, ip: Ip, core: SockCore, skbs: Skbuff) -> None:
        self.wl = wl
        self.c = calls
        self.ip = ip
        self.core = core
        self.skbs = skbs
