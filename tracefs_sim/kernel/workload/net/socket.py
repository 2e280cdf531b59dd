"""The socket syscalls of traced host tasks (net/socket.c, net/ipv4/af_inet.c) and the
network family that owns the loopback model.

Each body runs the 6.12 path of its syscall with the real arguments: the sockaddr of a
bind/connect/sendto (captured at the entry), the real payload length (the return value),
the socket behind the fd (its kind, family, protocol: files.py's fd table).  Sending on
an inet socket reaches inet_sendmsg() → the protocol's sendmsg (ping_v4_sendmsg,
raw_sendmsg, udp_sendmsg, tcp_sendmsg), then sock_send_length; receiving reaches
inet_recvmsg() → the protocol's recvmsg, which takes the skb the sender queued (or
sleeps for it: its return is the body's ``exit``), then sock_recv_length.  read(2) and
write(2) on a socket come here from fs.py's sock_read_iter/sock_write_iter.

Only 127.0.0.0/8 is routed by the model: a datagram to another address runs the socket
layer only.  A socket of another family (AF_UNIX, netlink) runs the socket layer only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..files import SOCKET, OpenFile
from ..signal import SI_USER, SIGPIPE
from ..syscall_define import SyscallDefines
from ..syscalls import SyscallCtx, arg_int
from .calls import Calls
from .dev import Dev
from .icmp import ICMP_ECHO, Icmp
from .ip import Ip, is_local
from .sk import SockCore
from .skbuff import Skbuff
from .sock import (
    AF_INET,
    IPPROTO_ICMP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    SOCK_DGRAM,
    SOCK_RAW,
    SOCK_STREAM,
    TCP_CLOSE,
    Skb,
    Sock,
    proto_name,
    real_port,
    sockaddr_in,
)
from .tcp import Tcp
from .udp import Udp

if TYPE_CHECKING:
    from .. import Workload

SOL_RAW, ICMP_FILTER = 255, 1
MSG_DONTWAIT, MSG_NOSIGNAL = 0x40, 0x4000
EAGAIN, EINTR, EPIPE = 11, 4, 32
ERESTARTSYS = -512
# errors a socket syscall returns before it reaches the protocol
EARLY = frozenset((-9, -14, -22, -88, -97, -93, -94))   # EBADF EFAULT EINVAL ENOTSOCK EAFNOSUPPORT…
PROTO_SEND = {(SOCK_DGRAM, IPPROTO_ICMP): "ping", (SOCK_RAW, IPPROTO_ICMP): "raw",
              (SOCK_DGRAM, IPPROTO_UDP): "udp", (SOCK_STREAM, IPPROTO_TCP): "tcp"}
RECVMSG = {"ping": "ping_recvmsg", "raw": "raw_recvmsg", "udp": "udp_recvmsg", "tcp": "tcp_recvmsg"}
CREATE = {AF_INET: "inet_create", 1: "unix_create", 10: "inet6_create", 16: "netlink_create"}
PROT_INIT = {"TCP": "tcp_v4_init_sock", "UDP": "udp_init_sock", "RAW": "raw_sk_init",
             "PING": "ping_init_sock"}


class Net:
    """The network family: its parts and the bodies of the socket syscalls.

    A little over 600 lines on purpose: it is net/socket.c's layer, one body per socket
    syscall above inet_*() and the protocols, sharing how a body finds its socket and
    result (``_sock``, ``_proto``, ``_result``); the protocols live in their own modules."""

    SYSCALLS = SyscallDefines()

    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        self.c = Calls(wl)
        self.skbs = Skbuff(wl, self.c)
        self.core = SockCore(wl, self.c, self.skbs)
        self.dev = Dev(wl, self.c, self.skbs)
        self.ip = Ip(wl, self.c, self.dev)
        self.dev.deliver = self.ip.rcv
        self.icmp = Icmp(wl, self.c, self.ip, self.core, self.skbs)
        self.udp = Udp(wl, self.c, self.ip, self.core, self.skbs)
        self.tcp = Tcp(wl, self.c, self.ip, self.core, self.skbs)
        self.SYSCALLS.register(wl.syscalls, self)

    # ------------------------------------------------------------------ helpers
    def _sock(self, ctx: SyscallCtx) -> Sock | None:
        """The socket the fd argument names (its kernel objects made if the model did
        not see it created); None when the fd is no socket or the call failed early."""
        f = ctx.file
        if f is None or f.kind != SOCKET or f.sock is None:
            return None
        if ctx.ret is not None and ctx.ret in EARLY:
            return None
        self.core.ensure(f.sock)
        if f.sock.kind == SOCK_RAW and f.sock.family == AF_INET and f.sock not in self.icmp.raw:
            self.icmp.raw.append(f.sock)      # raw_hash_sk() at inet_create()
        return f.sock

    @staticmethod
    def _proto(sock: Sock) -> str:
        if sock.family != AF_INET:
            return ""
        return PROTO_SEND.get((sock.kind, sock.protocol if sock.kind != SOCK_RAW else IPPROTO_ICMP), "")

    def _result(self, ctx: SyscallCtx, default: int) -> int:
        return default if ctx.ret is None else ctx.ret

    # ------------------------------------------------------------------ socket, bind, listen
    @SYSCALLS.enter("socket")
    def _socket(self, ctx: SyscallCtx) -> None:
        """__sys_socket() → sock_create() → __sock_create() → sock_alloc(), the family's
        create (inet_create() → sk_alloc(), the protocol's init); sock_map_fd()."""
        c = self.c
        family, type_, protocol = (arg_int(a) for a in ctx.args[:3])
        c.enter(ctx, "__sys_socket", family, type_, protocol)
        if ctx.ret is not None and ctx.ret < 0:
            c.leave(ctx, "__sys_socket", ctx.ret)
            return
        name = proto_name(family, type_, protocol)
        sk, socket = self.core.new(family, type_ & 0xF, protocol or
                                   {SOCK_STREAM: IPPROTO_TCP, SOCK_DGRAM: IPPROTO_UDP}.get(type_ & 0xF, 0))
        ctx.data["sk"], ctx.data["socket"] = sk, socket
        c.enter(ctx, "sock_create", family, type_ & 0xF, protocol, ctx.frame + 0x20)
        c.enter(ctx, "__sock_create", 0, family, type_ & 0xF, protocol, ctx.frame + 0x20, 0)
        c.leaf(ctx, "security_socket_create", family, type_ & 0xF, protocol, 0)
        c.leaf(ctx, "sock_alloc", ret=socket)
        create = CREATE.get(family, "")
        c.enter(ctx, create, 0, socket, protocol, 0)
        c.enter(ctx, "sk_alloc", 0, family, 0xCC0, 0, 0)
        c.leaf(ctx, "sk_prot_alloc", 0, 0xCC0, 0xFFFFFFFF, ret=sk)
        c.leave(ctx, "sk_alloc", sk)
        c.leaf(ctx, "sock_init_data", socket, sk)
        if name in PROT_INIT:
            c.leaf(ctx, PROT_INIT[name], sk)
        c.leave(ctx, create, 0)
        c.leaf(ctx, "security_socket_post_create", socket, family, type_ & 0xF, protocol, 0)
        c.leave(ctx, "__sock_create", 0)
        c.leave(ctx, "sock_create", 0)
        fd = ctx.ret if ctx.ret is not None else 0
        c.leaf(ctx, "get_unused_fd_flags", type_ & 0o2004000, ret=fd)
        file = self.wl.k.mem.file_object(name)[0]
        c.leaf(ctx, "sock_alloc_file", socket, type_ & 0o2004000, 0, ret=file)
        c.leaf(ctx, "fd_install", fd, file)
        c.leave(ctx, "__sys_socket", fd)

    @SYSCALLS.enter("bind")
    def _bind(self, ctx: SyscallCtx) -> None:
        """__sys_bind() → move_addr_to_kernel(), __sys_bind_socket() → the family's bind
        (inet_bind() → __inet_bind() → the port; raw_bind, ping_bind)."""
        c = self.c
        sock = self._sock(ctx)
        c.enter(ctx, "__sys_bind", ctx.args[0] & 0xFFFFFFFF, ctx.args[1], ctx.args[2] & 0xFFFFFFFF)
        c.leaf(ctx, "move_addr_to_kernel", ctx.args[1], ctx.args[2] & 0xFFFFFFFF, ctx.frame + 0x40)
        if sock is None:
            c.leave(ctx, "__sys_bind", self._result(ctx, 0))
            return
        c.enter(ctx, "__sys_bind_socket", sock.socket, ctx.frame + 0x40, ctx.args[2] & 0xFFFFFFFF)
        c.leaf(ctx, "security_socket_bind", sock.socket, ctx.frame + 0x40, ctx.args[2] & 0xFFFFFFFF)
        ok = ctx.ret is None or ctx.ret == 0
        addr = sockaddr_in(ctx.caps.get(1))
        proto = self._proto(sock)
        fn = {"raw": "raw_bind", "ping": "ping_bind"}.get(proto, "inet_bind")
        c.enter(ctx, fn, sock.socket if fn == "inet_bind" else sock.sk, ctx.frame + 0x40,
                ctx.args[2] & 0xFFFFFFFF)
        if ok and addr is not None:
            sock.saddr = addr[0]
            if proto == "udp":
                c.enter(ctx, "__inet_bind", sock.sk, ctx.frame + 0x40, ctx.args[2] & 0xFFFFFFFF, 0)
                c.leaf(ctx, "udp_v4_get_port", sock.sk, addr[1])
                self.udp.bind(sock, addr[1] or real_port(ctx))
                c.leave(ctx, "__inet_bind", 0)
            elif proto == "tcp":
                c.enter(ctx, "__inet_bind", sock.sk, ctx.frame + 0x40, ctx.args[2] & 0xFFFFFFFF, 0)
                c.leaf(ctx, "inet_csk_get_port", sock.sk, addr[1])
                sock.sport = addr[1] or real_port(ctx) or self.tcp.ephemeral()
                c.leave(ctx, "__inet_bind", 0)
            elif proto == "ping" and addr[1]:
                self.icmp.ping[addr[1]] = sock
                sock.sport = addr[1]
            self.core.store(sock)
        c.leave(ctx, fn, self._result(ctx, 0))
        c.leave(ctx, "__sys_bind_socket", self._result(ctx, 0))
        c.leave(ctx, "__sys_bind", self._result(ctx, 0))

    @SYSCALLS.enter("listen")
    def _listen(self, ctx: SyscallCtx) -> None:
        """__sys_listen() → __sys_listen_socket() → inet_listen() → __inet_listen_sk() →
        inet_csk_listen_start(): CLOSE → LISTEN."""
        self._tcp_call(ctx, ("__sys_listen", "__sys_listen_socket", "inet_listen"), self._listen_sk, lock=True)

    def _listen_sk(self, ctx: SyscallCtx, sock: Sock, backlog: int) -> None:
        real = real_port(ctx)           # the real port of one bound to 0 (or autobound here)
        if real and real != sock.sport:
            self.tcp.rebind(sock, sock.saddr, real)
        self.tcp.listen(ctx, sock, backlog)

    def _tcp_call(self, ctx: SyscallCtx, names: tuple[str, str, str],
                  body: Callable[[SyscallCtx, Sock, int], None], lock: bool) -> None:
        """The path listen(fd, n) and shutdown(fd, n) share: __sys_X(fd, n) →
        __sys_X_sock*() → inet_X() (``names``) on a TCP socket only, whose ``body`` runs
        when the call succeeds (inside lock_sock()/release_sock() with ``lock``)."""
        c = self.c
        sys_fn, sock_fn, inet_fn = names
        sock = self._sock(ctx)
        n = arg_int(ctx.args[1])
        c.enter(ctx, sys_fn, ctx.args[0] & 0xFFFFFFFF, n)
        if sock is not None and self._proto(sock) == "tcp":
            c.enter(ctx, sock_fn, sock.socket, n)
            c.enter(ctx, inet_fn, sock.socket, n)
            if lock:
                c.leaf(ctx, "lock_sock_nested", sock.sk, 0)
            if ctx.ret is None or ctx.ret == 0:
                body(ctx, sock, n)
            if lock:
                c.leaf(ctx, "release_sock", sock.sk)
            c.leave(ctx, inet_fn, self._result(ctx, 0))
            c.leave(ctx, sock_fn, self._result(ctx, 0))
        c.leave(ctx, sys_fn, self._result(ctx, 0))

    # ------------------------------------------------------------------ connect
    @SYSCALLS.enter("connect")
    def _connect(self, ctx: SyscallCtx) -> None:
        """__sys_connect() → __sys_connect_file() → inet_dgram_connect() (datagram
        sockets: the route, the peer kept) or inet_stream_connect() (TCP: the handshake,
        which on lo completes inside the call)."""
        c = self.c
        sock = self._sock(ctx)
        fd, uaddr, alen = ctx.args[0] & 0xFFFFFFFF, ctx.args[1], ctx.args[2] & 0xFFFFFFFF
        c.enter(ctx, "__sys_connect", fd, uaddr, alen)
        c.leaf(ctx, "move_addr_to_kernel", uaddr, alen, ctx.frame + 0x40)
        addr = sockaddr_in(ctx.caps.get(1))
        proto = self._proto(sock) if sock is not None else ""
        if sock is None or addr is None or not proto:
            c.leave(ctx, "__sys_connect", self._result(ctx, 0))
            return
        c.enter(ctx, "__sys_connect_file", 0, ctx.frame + 0x40, alen, 0)
        c.leaf(ctx, "security_socket_connect", sock.socket, ctx.frame + 0x40, alen)
        if proto == "tcp":
            c.enter(ctx, "inet_stream_connect", sock.socket, ctx.frame + 0x40, alen, 0)
            self.tcp.connect(ctx, sock, addr[0], addr[1])
            ctx.data["tcp"] = 1
            return
        c.enter(ctx, "inet_dgram_connect", sock.socket, ctx.frame + 0x40, alen, 0)
        if proto == "udp" and not sock.sport:
            self._autobind(ctx, sock, proto)
        elif proto == "ping" and not sock.sport:
            self._autobind(ctx, sock, proto)
        ok = ctx.ret is None or ctx.ret == 0
        c.enter(ctx, "ip4_datagram_connect", sock.sk, ctx.frame + 0x40, alen)
        c.enter(ctx, "__ip4_datagram_connect", sock.sk, ctx.frame + 0x40, alen)
        if is_local(addr[0]):
            # ip_route_connect(): a lookup without the source address first, then the flow
            if not sock.saddr:
                c.enter(ctx, "ip_route_output_key_hash", 0, ctx.frame + 0xA0, 0)
                c.enter(ctx, "ip_route_output_key_hash_rcu", 0, ctx.frame + 0xA0, ctx.frame + 0xE0, 0)
                self.ip.fib_lookup(ctx, sock.protocol if proto != "raw" else IPPROTO_ICMP, 0, addr[0],
                                   sock.sport, addr[1], 0, 0)
                c.leave(ctx, "ip_route_output_key_hash_rcu", 0)
                c.leave(ctx, "ip_route_output_key_hash", 0)
            saddr = self.ip.route_output(ctx, sock, sock.protocol if proto != "raw" else IPPROTO_ICMP,
                                         sock.saddr or addr[0], addr[0], sock.sport, addr[1])
            if ok:
                sock.saddr = sock.saddr or saddr
        if ok:
            sock.daddr, sock.dport = addr
            sock.state = 1          # TCP_ESTABLISHED: a connected datagram socket
            self.core.store(sock)
        c.leave(ctx, "__ip4_datagram_connect", self._result(ctx, 0))
        c.leave(ctx, "ip4_datagram_connect", self._result(ctx, 0))
        c.leave(ctx, "inet_dgram_connect", self._result(ctx, 0))
        c.leave(ctx, "__sys_connect_file", self._result(ctx, 0))
        c.leave(ctx, "__sys_connect", self._result(ctx, 0))

    @SYSCALLS.exit("connect")
    def _connect_exit(self, ctx: SyscallCtx, ret: int) -> None:
        """A TCP connect's end (after it waited for the handshake)."""
        if "tcp" not in ctx.data:
            return
        f = ctx.file
        assert f is not None and f.sock is not None
        self.tcp.connect_exit(ctx, f.sock, ret)
        c = self.c
        c.leave(ctx, "inet_stream_connect", ret)
        c.leave(ctx, "__sys_connect_file", ret)
        c.leave(ctx, "__sys_connect", ret)

    def _autobind(self, ctx: SyscallCtx, sock: Sock, proto: str) -> None:
        """inet_autobind(): an unbound socket gets its port (its ping identifier)."""
        c = self.c
        c.enter(ctx, "inet_autobind", sock.sk)
        if proto == "udp":
            c.enter(ctx, "udp_v4_get_port", sock.sk, 0)
            c.leaf(ctx, "udp_lib_get_port", sock.sk, 0, 0)
            self.udp.bind(sock, real_port(ctx))
            c.leave(ctx, "udp_v4_get_port", 0)
        elif proto == "ping":
            c.leaf(ctx, "ping_get_port", sock.sk, 0)
            self.icmp.bind_ping(sock, real_port(ctx))
        self.core.store(sock)
        c.leave(ctx, "inet_autobind", 0)

    # ------------------------------------------------------------------ accept
    @SYSCALLS.enter("accept", "accept4")
    def _accept(self, ctx: SyscallCtx) -> None:
        """__sys_accept4() → do_accept() → inet_accept() → inet_csk_accept(): the first
        established child of the accept queue, or the wait for one."""
        c = self.c
        sock = self._sock(ctx)
        flags = arg_int(ctx.args[3]) if ctx.sc.name == "accept4" else 0
        c.enter(ctx, "__sys_accept4", ctx.args[0] & 0xFFFFFFFF, ctx.args[1], ctx.args[2], flags)
        c.enter(ctx, "do_accept", 0, ctx.frame + 0x20, ctx.args[1], ctx.args[2], flags)
        if sock is None or self._proto(sock) != "tcp" or (ctx.ret is not None and ctx.ret < 0
                                                          and not sock.accept_q):
            return
        newsock = ctx.data["newsock"] = self.core.new_socket()
        c.leaf(ctx, "sock_alloc", ret=newsock)
        c.enter(ctx, "inet_accept", sock.socket, newsock, ctx.frame + 0x30)
        c.enter(ctx, "inet_csk_accept", sock.sk, ctx.frame + 0x30)
        c.leaf(ctx, "lock_sock_nested", sock.sk, 0)
        if sock.accept_q:
            ctx.data["sk"] = sock.accept_q[0].sk
            self._accepted(ctx, sock)
        else:
            self.tcp.wait_connect(ctx, sock)
            ctx.data["wait"] = 1

    def _accepted(self, ctx: SyscallCtx, sock: Sock) -> None:
        c = self.c
        sk = ctx.data.get("sk", 0)
        c.leaf(ctx, "release_sock", sock.sk)
        c.leave(ctx, "inet_csk_accept", sk)
        # lock_sock(sk2), __inet_accept() → sock_graft() (inline) → security_sock_graft()
        newsock = ctx.data["newsock"]
        for child in sock.accept_q:
            if child.sk == sk:
                child.socket = newsock
        self.core.graft(newsock, sk)
        c.leaf(ctx, "lock_sock_nested", sk, 0)
        c.enter(ctx, "__inet_accept", sock.socket, newsock, sk)
        c.leaf(ctx, "security_sock_graft", sk, newsock)
        c.leave(ctx, "__inet_accept")
        c.leaf(ctx, "release_sock", sk)
        c.leave(ctx, "inet_accept", 0)
        file = self.wl.k.mem.file_object("TCP")[0]
        c.leaf(ctx, "alloc_file_pseudo", 0, 0, 0, 2, 0, ret=file)

    @SYSCALLS.exit("accept", "accept4")
    def _accept_exit(self, ctx: SyscallCtx, ret: int) -> None:
        c = self.c
        f = ctx.file
        if "wait" in ctx.data and f is not None and f.sock is not None:
            sock = f.sock
            self.tcp.unwait_connect(ctx, sock)
            if ret >= 0:
                if not sock.accept_q:
                    sock.accept_q.append(self.tcp.foreign_child(ctx, sock))
                ctx.data["sk"] = sock.accept_q[0].sk
                self._accepted(ctx, sock)
            else:
                c.leaf(ctx, "release_sock", sock.sk)
                c.leave(ctx, "inet_csk_accept", 0)
                c.leave(ctx, "inet_accept", ret)
        if ret >= 0:
            c.leaf(ctx, "fd_install", ret, self.wl.k.mem.file_object("TCP")[0])
        c.leave(ctx, "do_accept", ret)
        c.leave(ctx, "__sys_accept4", ret)

    # ------------------------------------------------------------------ sending
    @SYSCALLS.enter("sendto")
    def _sendto(self, ctx: SyscallCtx) -> None:
        """__sys_sendto() → move_addr_to_kernel(), __sock_sendmsg()."""
        c = self.c
        length = ctx.args[2]
        c.enter(ctx, "__sys_sendto", ctx.args[0] & 0xFFFFFFFF, ctx.args[1], length, ctx.args[3],
                ctx.args[4], ctx.args[5] & 0xFFFFFFFF)
        sock = self._sock(ctx)
        if sock is not None:
            if ctx.args[4]:
                c.leaf(ctx, "move_addr_to_kernel", ctx.args[4], ctx.args[5] & 0xFFFFFFFF, ctx.frame + 0x40)
            self.sendmsg(ctx, sock, length, sockaddr_in(ctx.caps.get(4)), arg_int(ctx.args[3]))
        c.leave(ctx, "__sys_sendto", self._result(ctx, length))

    @SYSCALLS.enter("sendmsg")
    def _sendmsg(self, ctx: SyscallCtx) -> None:
        """__sys_sendmsg() → ___sys_sendmsg() → ____sys_sendmsg() → __sock_sendmsg(): the
        length is what it returned (the msghdr is not captured: the destination is the
        connected peer's)."""
        c = self.c
        sock = self._sock(ctx)
        flags = arg_int(ctx.args[2])
        c.enter(ctx, "__sys_sendmsg", ctx.args[0] & 0xFFFFFFFF, ctx.args[1], flags, 1)
        c.enter(ctx, "___sys_sendmsg", sock.socket if sock is not None else 0, ctx.args[1],
                ctx.frame + 0x100, flags, 0, 0)
        c.leaf(ctx, "copy_msghdr_from_user", ctx.frame + 0x100, ctx.args[1], 0, ctx.frame + 0x180)
        if sock is not None:
            c.enter(ctx, "____sys_sendmsg", sock.socket, ctx.frame + 0x100, flags, 0, 0)
            length = ctx.ret if ctx.ret is not None and ctx.ret >= 0 else 0
            self.sendmsg(ctx, sock, length, None, flags)
            c.leave(ctx, "____sys_sendmsg", self._result(ctx, length))
        c.leave(ctx, "___sys_sendmsg", self._result(ctx, 0))
        c.leave(ctx, "__sys_sendmsg", self._result(ctx, 0))

    def write_iter(self, ctx: SyscallCtx, f: OpenFile, length: int) -> None:
        """sock_write_iter() → __sock_sendmsg(): write(2) on a socket."""
        if f.sock is None or (ctx.ret is not None and ctx.ret in EARLY):
            return
        self.core.ensure(f.sock)
        self.sendmsg(ctx, f.sock, length if ctx.ret is None or ctx.ret < 0 else ctx.ret, None, 0)

    def sendmsg(self, ctx: SyscallCtx, sock: Sock, length: int, to: tuple[int, int] | None,
                flags: int) -> None:
        """__sock_sendmsg(): security_socket_sendmsg(), sock_sendmsg_nosec() →
        inet_sendmsg() → the protocol's sendmsg; the sock_send_length event."""
        wl = self.wl
        c = self.c
        proto = self._proto(sock)
        ret = self._result(ctx, length)
        c.leaf(ctx, "security_socket_sendmsg", sock.socket, ctx.frame + 0x100, length)
        if proto:
            c.enter(ctx, "inet_sendmsg", sock.socket, ctx.frame + 0x100, length)
            if not sock.sport and proto in ("udp", "ping"):
                c.enter(ctx, "inet_send_prepare", sock.sk)
                self._autobind(ctx, sock, proto)
                c.leave(ctx, "inet_send_prepare", 0)
            else:
                c.leaf(ctx, "inet_send_prepare", sock.sk)
            daddr, dport = to if to is not None else (sock.daddr, sock.dport)
            known = to is not None or proto == "tcp" or bool(sock.daddr and (sock.dport or proto != "udp"))
            if ret >= 0 and known and (is_local(daddr) or proto == "tcp"):
                daddr = daddr or 0x7F000001
                if proto in ("ping", "raw"):
                    self.icmp.sendmsg(ctx, sock, daddr, ret, ICMP_ECHO)
                elif proto == "udp":
                    self.udp.sendmsg(ctx, sock, daddr, dport, ret)
                else:
                    self.tcp.sendmsg(ctx, sock, ret, flags)
            c.leave(ctx, "inet_sendmsg", ret)
        tp = wl.tp("sock_send_length")
        if tp:
            tp.fire(sock.sk, sock.family, sock.protocol, ret, 0)
        if ret == -EPIPE and not flags & MSG_NOSIGNAL and ctx.sc.name != "write":
            wl.signals.generate(SIGPIPE, 0, SI_USER, ctx.thread.proc, ctx.thread)

    # ------------------------------------------------------------------ receiving
    @SYSCALLS.enter("recvfrom")
    def _recvfrom(self, ctx: SyscallCtx) -> None:
        """__sys_recvfrom() → sock_recvmsg()."""
        c = self.c
        sock = self._sock(ctx)
        flags = arg_int(ctx.args[3])
        c.enter(ctx, "__sys_recvfrom", ctx.args[0] & 0xFFFFFFFF, ctx.args[1], ctx.args[2], flags,
                ctx.args[4], ctx.args[5])
        if sock is not None:
            self.recvmsg(ctx, sock, ctx.args[2], flags)

    @SYSCALLS.enter("recvmsg")
    def _recvmsg(self, ctx: SyscallCtx) -> None:
        """__sys_recvmsg() → ___sys_recvmsg() → ____sys_recvmsg() → sock_recvmsg()."""
        c = self.c
        sock = self._sock(ctx)
        flags = arg_int(ctx.args[2])
        c.enter(ctx, "__sys_recvmsg", ctx.args[0] & 0xFFFFFFFF, ctx.args[1], flags, 1)
        c.enter(ctx, "___sys_recvmsg", sock.socket if sock is not None else 0, ctx.args[1],
                ctx.frame + 0x100, flags, 0)
        c.leaf(ctx, "copy_msghdr_from_user", ctx.frame + 0x100, ctx.args[1], ctx.frame + 0x180,
               ctx.frame + 0x188)
        if sock is not None:
            c.enter(ctx, "____sys_recvmsg", sock.socket, ctx.frame + 0x100, ctx.args[1], ctx.frame + 0x180,
                    flags, 0)
            self.recvmsg(ctx, sock, 1 << 16, flags)

    def read_iter(self, ctx: SyscallCtx, f: OpenFile, size: int) -> None:
        """sock_read_iter() → sock_recvmsg(): read(2) on a socket."""
        if f.sock is None or (ctx.ret is not None and ctx.ret in EARLY):
            return
        self.core.ensure(f.sock)
        self.recvmsg(ctx, f.sock, size, 0)

    def recvmsg(self, ctx: SyscallCtx, sock: Sock, size: int, flags: int) -> None:
        """sock_recvmsg() → security_socket_recvmsg(), inet_recvmsg() → the protocol's
        recvmsg: the skb taken at once, or the wait (the rest at the return)."""
        c = self.c
        proto = self._proto(sock)
        c.enter(ctx, "sock_recvmsg", sock.socket, ctx.frame + 0x100, flags)
        c.leaf(ctx, "security_socket_recvmsg", sock.socket, ctx.frame + 0x100, size, flags)
        ctx.data["size"] = size
        ctx.data["flags"] = flags
        if not proto:
            return
        fn = RECVMSG[proto]
        c.enter(ctx, "inet_recvmsg", sock.socket, ctx.frame + 0x100, size, flags)
        c.enter(ctx, fn, sock.sk, ctx.frame + 0x100, size, flags, ctx.frame + 0x48)
        ret = ctx.ret
        if proto == "tcp":
            got = self.tcp.recvmsg(ctx, sock, size, flags)
            if got is None:
                ctx.data["wait"] = 1
            else:
                self._recv_done(ctx, sock, got)
            return
        if ret is not None and ret < 0:
            if ret in (-EAGAIN, ERESTARTSYS, -EINTR) and not flags & MSG_DONTWAIT:
                self._wait(ctx, sock, proto, flags)      # it waited: a timeout, a signal
            else:
                self._datagram(ctx, sock, proto, size, None)
            return
        if sock.rcvq:
            skb = self.udp.take(ctx, sock, flags) if proto == "udp" else \
                self.core.recv_datagram(ctx, sock, flags)
            self._datagram(ctx, sock, proto, size, skb)
            return
        self._wait(ctx, sock, proto, flags)

    def _wait(self, ctx: SyscallCtx, sock: Sock, proto: str, flags: int) -> None:
        """Nothing queued: the receive waits (it ends at the syscall's return)."""
        c = self.c
        if proto == "udp":
            c.enter(ctx, "__skb_recv_udp", sock.sk, flags, ctx.frame + 0x54, ctx.frame + 0x50)
            c.enter(ctx, "__skb_wait_for_more_packets", sock.sk, sock.sk + 0x300, ctx.frame + 0x50,
                    ctx.frame + 0x5C, 0)
        else:
            self.core.wait_datagram(ctx, sock)
        ctx.data["wait"] = 1

    def _datagram(self, ctx: SyscallCtx, sock: Sock, proto: str, size: int, skb: Skb | None) -> None:
        """The protocol recvmsg's end with ``skb`` (or none: its error)."""
        if skb is None:
            ret = ctx.ret if ctx.ret is not None else -EAGAIN
        elif proto == "udp":
            ret = self.udp.recvmsg(ctx, sock, size, skb)
        else:
            ret = self.icmp.recvmsg(ctx, sock, size, skb)
        if ctx.ret is not None:
            ret = ctx.ret
        self._recv_done(ctx, sock, ret)

    def _recv_done(self, ctx: SyscallCtx, sock: Sock, ret: int) -> None:
        """inet_recvmsg() returns; call_trace_sock_recv_length(); sock_recvmsg() returns;
        the address copied out."""
        wl = self.wl
        c = self.c
        proto = self._proto(sock)
        if proto:
            c.leave(ctx, RECVMSG[proto], ret)
            c.leave(ctx, "inet_recvmsg", ret)
        flags = ctx.data.get("flags", 0)
        c.enter(ctx, "call_trace_sock_recv_length", sock.sk, ret, flags)
        tp = wl.tp("sock_recv_length")
        if tp:
            tp.fire(sock.sk, sock.family, sock.protocol, ret, flags)
        c.leave(ctx, "call_trace_sock_recv_length")
        c.leave(ctx, "sock_recvmsg", ret)
        ctx.data["done"] = 1
        if ctx.sc.name == "recvfrom" and ctx.args[4] and ret >= 0:
            c.leaf(ctx, "move_addr_to_user", ctx.frame + 0x40, 16, ctx.args[4], ctx.args[5])

    @SYSCALLS.exit("recvfrom", "recvmsg")
    def _recv_exit(self, ctx: SyscallCtx, ret: int) -> None:
        """A receive returns: a wait ends with the skb its waker queued (or one an
        untraced sender queued: taken as it is), the rest of the path."""
        f = ctx.file
        sock = f.sock if f is not None else None
        if sock is not None and "wait" in ctx.data and "done" not in ctx.data:
            self.finish_recv(ctx, sock, ret)
        c = self.c
        if ctx.sc.name == "recvmsg":
            c.leave(ctx, "____sys_recvmsg", ret)
            c.leave(ctx, "___sys_recvmsg", ret)
            c.leave(ctx, "__sys_recvmsg", ret)
        elif ctx.sc.name == "recvfrom":
            c.leave(ctx, "__sys_recvfrom", ret)

    def finish_recv(self, ctx: SyscallCtx, sock: Sock, ret: int) -> None:
        """The end of a receive that waited (recvfrom, recvmsg, read)."""
        c = self.c
        proto = self._proto(sock)
        if not proto:
            return
        size = ctx.data.get("size", ret)
        if proto == "tcp":
            self._recv_done(ctx, sock, self.tcp.recv_after_wait(ctx, sock, size, ret))
            return
        if proto == "udp":
            c.leave(ctx, "__skb_wait_for_more_packets", 0)
            skb = sock.rcvq.pop(0) if sock.rcvq and ret >= 0 else None
            c.leave(ctx, "__skb_recv_udp", skb.addr if skb is not None else 0)
        else:
            skb = self.core.unwait_datagram(ctx, sock) if ret >= 0 else None
            if ret < 0:
                c.leave(ctx, "__skb_wait_for_more_packets", 0)
                c.leave(ctx, "__skb_recv_datagram", 0)
                c.leave(ctx, "skb_recv_datagram", 0)
        if skb is None and ret >= 0:
            # queued by a sender the model did not see: as long as what was read
            hdr = {"udp": 0, "ping": 8, "raw": 28}[proto]
            skb = self.skbs.foreign(sock, sock.protocol if proto != "raw" else IPPROTO_ICMP,
                                    max(0, ret - hdr))
        self._datagram(ctx, sock, proto, size, skb)

    # ------------------------------------------------------------------ the rest
    @SYSCALLS.enter("shutdown")
    def _shutdown(self, ctx: SyscallCtx) -> None:
        """__sys_shutdown() → __sys_shutdown_sock() → inet_shutdown() → tcp_shutdown()."""
        self._tcp_call(ctx, ("__sys_shutdown", "__sys_shutdown_sock", "inet_shutdown"), self.tcp.shutdown,
                       lock=False)

    @SYSCALLS.enter("setsockopt")
    def _setsockopt(self, ctx: SyscallCtx) -> None:
        """__sys_setsockopt() → do_sock_setsockopt(): SOL_SOCKET → sock_setsockopt(); other
        levels → sock_common_setsockopt() → the protocol's (raw ICMP_FILTER kept)."""
        c = self.c
        sock = self._sock(ctx)
        level, opt = arg_int(ctx.args[1]), arg_int(ctx.args[2])
        c.enter(ctx, "__sys_setsockopt", ctx.args[0] & 0xFFFFFFFF, level, opt, ctx.args[3], ctx.args[4])
        if sock is not None:
            c.enter(ctx, "do_sock_setsockopt", sock.socket, 0, level, opt, ctx.frame + 0x40,
                    ctx.args[4] & 0xFFFFFFFF)
            if level == 1:
                c.leaf(ctx, "sock_setsockopt", sock.socket, level, opt, ctx.frame + 0x40, ctx.args[4])
            else:
                c.enter(ctx, "sock_common_setsockopt", sock.socket, level, opt, ctx.frame + 0x40,
                        ctx.args[4])
                fn = "raw_setsockopt" if sock.kind == SOCK_RAW else "ip_setsockopt"
                c.leaf(ctx, fn, sock.sk, level, opt, ctx.frame + 0x40, ctx.args[4])
                c.leave(ctx, "sock_common_setsockopt", self._result(ctx, 0))
            raw = ctx.caps.get(3)
            if (level == SOL_RAW and opt == ICMP_FILTER and raw is not None and len(raw) >= 4
                    and (ctx.ret is None or ctx.ret == 0)):
                sock.icmp_filter = int.from_bytes(raw[:4], "little")
            c.leave(ctx, "do_sock_setsockopt", self._result(ctx, 0))
        c.leave(ctx, "__sys_setsockopt", self._result(ctx, 0))

    @SYSCALLS.enter("getsockname", "getpeername")
    def _getname(self, ctx: SyscallCtx) -> None:
        """__sys_getsockname()/__sys_getpeername() → inet_getname(), move_addr_to_user()."""
        c = self.c
        sock = self._sock(ctx)
        top = "__sys_getsockname" if ctx.sc.name == "getsockname" else "__sys_getpeername"
        c.enter(ctx, top, ctx.args[0] & 0xFFFFFFFF, ctx.args[1], ctx.args[2])
        if sock is not None and sock.family == AF_INET:
            c.leaf(ctx, "inet_getname", sock.socket, ctx.frame + 0x40, 0 if top.endswith("sockname") else 1,
                   ret=16)
            c.leaf(ctx, "move_addr_to_user", ctx.frame + 0x40, 16, ctx.args[1], ctx.args[2])
            got = sockaddr_in(ctx.outs.get(1)) if ctx.sc.name == "getsockname" and ctx.ret == 0 else None
            if got is not None and (got[0], got[1]) != (sock.saddr, sock.sport):
                self._rebind(sock, *got)
        c.leave(ctx, top, self._result(ctx, 0))

    def _rebind(self, sock: Sock, saddr: int, sport: int) -> None:
        """getsockname() showed the address the kernel really gave the socket (a bind to
        port 0, an autobind): the model's tables take it from now on."""
        proto = self._proto(sock)
        if proto == "udp":
            sock.saddr = saddr
            self.udp.bind(sock, sport)
        elif proto == "tcp":
            self.tcp.rebind(sock, saddr, sport)
        elif proto == "ping":
            self.icmp.unhash(sock)
            sock.sport = 0
            self.icmp.ping[sport] = sock
            sock.saddr, sock.sport = saddr, sport
        else:
            sock.saddr = saddr
        self.core.store(sock)

    def release(self, ctx: SyscallCtx, f: OpenFile) -> None:
        """sock_close() → __sock_release() → inet_release() → the protocol's close (the
        last close of a socket file, from __fput())."""
        sock = f.sock
        if sock is None or sock.closed:
            return
        c = self.c
        self.core.ensure(sock)
        c.enter(ctx, "sock_close", 0, 0)
        c.enter(ctx, "__sock_release", sock.socket, 0)
        proto = self._proto(sock)
        if sock.family == AF_INET:
            c.enter(ctx, "inet_release", sock.socket)
            if proto == "tcp":
                self.tcp.close(ctx, sock)
            else:
                close = {"ping": "ping_close", "raw": "raw_close"}.get(proto, "udp_lib_close")
                c.enter(ctx, close, sock.sk, 0)
                c.leaf(ctx, "sk_common_release", sock.sk)
                c.leave(ctx, close)
                self.icmp.unhash(sock)
                self.udp.unhash(sock)
                sock.state = TCP_CLOSE
                self._purge(ctx, sock)
            c.leave(ctx, "inet_release", 0)
        sock.closed = True
        if proto != "tcp":
            self.core.free(sock)
        c.leave(ctx, "__sock_release")
        c.leave(ctx, "sock_close", 0)

    def _purge(self, ctx: SyscallCtx, sock: Sock) -> None:
        """sk_common_release() → … → inet_sock_destruct(): what was never read is purged."""
        for skb in sock.rcvq:
            self.skbs.drop(ctx, skb, "inet_sock_destruct", 91)    # QUEUE_PURGE
        sock.rcvq.clear()

    def shared(self, f: OpenFile) -> bool:
        """Does another fd of a traced process still hold ``f`` (its close is not the
        last: no release)?  The fd being closed is still in its table."""
        n = 0
        seen: set[int] = set()
        for proc in self.wl.traced.procs.values():
            if id(proc.files) in seen or proc.released:
                continue
            seen.add(id(proc.files))
            for g in proc.files.fds.values():
                if g is f:
                    n += 1
                    if n > 1:
                        return True
        return False
