"""The model's network objects: a ``Sock`` (struct sock, with the struct socket that owns
it) and an ``Skb`` (struct sk_buff), and the constants of their fields.

A ``Sock`` is what an open file of kind SOCKET holds (files.py); the protocol parts fill
its addresses and queues as the traced tasks bind, connect, send and receive.  Kernel
addresses (``sk``, ``socket``, ``Skb.addr``) are 0 until the network model gives the
object one: they stay the same for the object's life, so every event naming it agrees.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..syscalls import SyscallCtx

AF_UNIX, AF_INET, AF_INET6 = 1, 2, 10
SOCK_STREAM, SOCK_DGRAM, SOCK_RAW = 1, 2, 3
SOCK_TYPE_MASK = 0xF
IPPROTO_IP, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP = 0, 1, 6, 17
ETH_P_IP = 0x0800

# include/net/tcp_states.h
TCP_ESTABLISHED, TCP_SYN_SENT, TCP_SYN_RECV, TCP_FIN_WAIT1, TCP_FIN_WAIT2 = 1, 2, 3, 4, 5
TCP_TIME_WAIT, TCP_CLOSE, TCP_CLOSE_WAIT, TCP_LAST_ACK, TCP_LISTEN = 6, 7, 8, 9, 10
TCP_CLOSING, TCP_NEW_SYN_RECV = 11, 12

# the sk_prot->name of each kind of inet socket: the dentry name of its file
PROTO_NAMES = {(AF_INET, SOCK_STREAM, IPPROTO_TCP): "TCP", (AF_INET, SOCK_DGRAM, IPPROTO_UDP): "UDP",
               (AF_INET, SOCK_DGRAM, IPPROTO_ICMP): "PING", (AF_INET, SOCK_RAW, -1): "RAW",
               (AF_INET6, SOCK_STREAM, IPPROTO_TCP): "TCPv6", (AF_INET6, SOCK_DGRAM, IPPROTO_UDP): "UDPv6",
               (AF_INET6, SOCK_DGRAM, IPPROTO_ICMP): "PINGv6", (AF_INET6, SOCK_RAW, -1): "RAWv6"}
DOMAIN_NAMES = {AF_UNIX: "UNIX", 16: "NETLINK", 17: "PACKET"}
UNIX_NAMES = {SOCK_STREAM: "UNIX-STREAM", SOCK_DGRAM: "UNIX", 5: "UNIX-SEQPACKET"}


def inet_protocol(family: int, type_: int, protocol: int) -> int:
    """The protocol inet_create() gives a socket asked for with ``protocol`` (0: the
    type's default)."""
    if family not in (AF_INET, AF_INET6) or protocol:
        return protocol
    return {SOCK_STREAM: IPPROTO_TCP, SOCK_DGRAM: IPPROTO_UDP}.get(type_ & SOCK_TYPE_MASK, 0)


def proto_name(family: int, type_: int, protocol: int) -> str:
    """sk->sk_prot_creator->name: the dentry name sock_alloc_file() gives the file."""
    kind = type_ & SOCK_TYPE_MASK
    if family == AF_UNIX:
        return UNIX_NAMES.get(kind, "UNIX")
    proto = inet_protocol(family, kind, protocol)
    name = PROTO_NAMES.get((family, kind, -1 if kind == SOCK_RAW else proto))
    return name or DOMAIN_NAMES.get(family, "")


# what /proc/PID/fd's protocol name says of a socket the model did not see made
FROM_NAME = {"TCP": (AF_INET, SOCK_STREAM, IPPROTO_TCP), "UDP": (AF_INET, SOCK_DGRAM, IPPROTO_UDP),
             "PING": (AF_INET, SOCK_DGRAM, IPPROTO_ICMP), "RAW": (AF_INET, SOCK_RAW, IPPROTO_ICMP),
             "TCPv6": (AF_INET6, SOCK_STREAM, IPPROTO_TCP), "UDPv6": (AF_INET6, SOCK_DGRAM, IPPROTO_UDP),
             "UNIX-STREAM": (AF_UNIX, SOCK_STREAM, 0), "UNIX": (AF_UNIX, SOCK_DGRAM, 0)}


@dataclass(slots=True, eq=False)
class Skb:
    """A struct sk_buff on its way through the stack.  ``ip_len`` is the IP packet's
    length (header, transport header, payload): skb->len is that plus the Ethernet header
    on the transmit side of ``lo`` and less the headers pulled on the receive side."""

    addr: int
    proto: int                  # the IP protocol
    saddr: int                  # IPv4 addresses, host order
    daddr: int
    sport: int = 0              # TCP/UDP ports; ICMP echo: the identifier
    dport: int = 0
    thlen: int = 0              # transport header bytes
    payload: int = 0            # bytes after the transport header
    truesize: int = 0
    ip_summed: int = 0          # CHECKSUM_NONE / CHECKSUM_PARTIAL
    hash: int = 0
    l4_hash: bool = False
    gso_segs: int = 0
    gso_type: int = 0
    icmp_type: int = 0
    icmp_code: int = 0
    tcp_flags: int = 0
    seq: int = 0
    ack_seq: int = 0
    cpu: int = 0                # skb->alloc_cpu
    sk: Sock | None = None      # the sending socket (skb->sk until skb_orphan())
    clone: bool = False         # a clone (shares its data with another skb)
    data_len: int = 0           # payload bytes in page fragments (a TCP send's)
    seq_off: int = 0            # payload bytes a TCP reader took already

    @property
    def ip_len(self) -> int:
        return 20 + self.thlen + self.payload


@dataclass(slots=True, eq=False)
class TcpState:
    """The sequence space of a TCP socket (struct tcp_sock's snd_una/snd_nxt/rcv_nxt…)."""

    iss: int = 0
    snd_una: int = 0
    snd_nxt: int = 0
    rcv_nxt: int = 0
    snd_wnd: int = 65536
    rcv_wnd: int = 65536
    srtt_us: int = 0            # tp->srtt_us (8 x the smoothed RTT in us)
    quick: int = 16             # quick ACKs left (TCP_MAX_QUICKACKS after the first data)
    ack_pending: bool = False   # an ACK owed, sent with the next segment (pingpong after a FIN)
    fin_sent: bool = False
    fin_rcvd: bool = False
    orphan: bool = False        # closed by the user: destroyed when it reaches CLOSE
    cookie: int = 0             # sock_gen_cookie()
    t_syn: int = 0              # boot ns the SYN left (the first RTT sample)
    destroyed: bool = False     # inet_csk_destroy_sock() ran
    rtx: Skb | None = None      # the head of the retransmit queue (what is not acked yet)


@dataclass(slots=True, eq=False)
class Sock:
    """A struct sock (with its struct socket): addresses in host order, the receive
    queue, the listener's accept queue, segments held while its owner has it locked."""

    family: int
    type: int
    protocol: int
    sk: int = 0                         # struct sock *
    socket: int = 0                     # struct socket *
    saddr: int = 0
    sport: int = 0
    daddr: int = 0
    dport: int = 0
    state: int = TCP_CLOSE
    rcvq: list[Skb] = field(default_factory=list)
    accept_q: list[Sock] = field(default_factory=list)
    backlog: list[Skb] = field(default_factory=list)
    owned: bool = False                 # lock_sock() held by the task in a syscall on it
    icmp_filter: int = 0                # ICMP_FILTER: the types a raw ICMP socket drops
    txhash: int = 0
    tcp: TcpState | None = None
    listener: Sock | None = None        # a child's listening socket, until accept()
    peer: Sock | None = None            # the other end of a connection over lo
    outside: bool = False               # a socket of an untraced process (only its kernel side runs)
    closed: bool = False                # released (sock_close), its port free

    @property
    def kind(self) -> int:
        return self.type & SOCK_TYPE_MASK

    @property
    def name(self) -> str:
        return proto_name(self.family, self.type, self.protocol)

    def accepted(self, sk: int) -> Sock:
        """The child accept() returned (``sk`` its struct sock, as its path said): taken
        off the accept queue; a new one when the model did not see it made."""
        for i, child in enumerate(self.accept_q):
            if child.sk == sk:
                del self.accept_q[i]
                child.listener = None
                return child
        return Sock(self.family, self.type, self.protocol, state=TCP_ESTABLISHED)


def sock_for(family: int, type_: int, protocol: int, sk: int = 0, socket: int = 0) -> Sock:
    """The Sock of a new socket (socket(2), socketpair(2))."""
    return Sock(family, type_ & SOCK_TYPE_MASK, inet_protocol(family, type_ & SOCK_TYPE_MASK, protocol),
                sk=sk, socket=socket)


def sock_from_name(name: str) -> Sock:
    """The Sock of a socket opened before the model saw it, from its protocol's name."""
    family, type_, protocol = FROM_NAME.get(name, (AF_UNIX, SOCK_STREAM, 0))
    s = Sock(family, type_, protocol)
    if type_ == SOCK_STREAM and family != AF_UNIX:
        s.state = TCP_ESTABLISHED       # most likely: a connection in use
    return s


SOCKADDR_IN = struct.Struct(">HI")         # sin_port, sin_addr (after the LE family)


def sockaddr_in(raw: bytes | None) -> tuple[int, int] | None:
    """(address, port) of a captured struct sockaddr_in (None: not AF_INET)."""
    if raw is None or len(raw) < 8 or int.from_bytes(raw[:2], "little") != AF_INET:
        return None
    port, addr = SOCKADDR_IN.unpack_from(raw, 2)
    return addr, port


def real_port(ctx: SyscallCtx) -> int:
    """The port (ping identifier) the kernel really gave the socket of the fd argument:
    the tracer's getsockname() at the exit stop of bind, listen, connect, sendto and
    sendmsg (the SOCKNAME capture); 0: not known (the path runs before the return, or no
    capture): the model picks one."""
    got = sockaddr_in(ctx.outs.get(0))
    return got[1] if got is not None else 0
