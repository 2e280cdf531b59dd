"""The loopback network path (kernel/workload/net): tracer record sequences of traced
tasks pinging 127.0.0.1, exchanging a UDP datagram and a TCP connection over lo, fed
through ``TracedTasks``; the events Linux 6.12 records for them, their fields, and the
consistency the model keeps (one skb address from net_dev_queue to its end, the TCP
state machine, the sequence numbers); then a real program under the real tracer.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest
from test_traced_tasks import Env, args, build_with_tracer, trace_program

from tracefs_sim.kernel import Kernel
from tracefs_sim.tracefs import build_tree
from tracefs_sim.tracefs.files import read_file, write_file

TESTS = Path(__file__).resolve().parent
A, B = 1000, 2000
NR = {"read": 0, "write": 1, "close": 3, "socket": 41, "connect": 42, "accept4": 288, "sendto": 44,
      "recvfrom": 45, "recvmsg": 47, "bind": 49, "listen": 50, "getsockname": 51, "setsockopt": 54,
      "fork": 57}
NET = ("net", "napi", "skb", "sock", "fib", "neigh", "tcp", "udp", "icmp", "irq/softirq_raise",
       "irq/softirq_entry", "irq/softirq_exit")
SKB = re.compile(r"skbaddr=([0-9a-f]{16})")
ICMP_FILTER = struct.pack("<I", ~((1 << 0) | (1 << 3) | (1 << 11) | (1 << 12)) & 0xFFFFFFFF)


def sin(port: int, addr: int = 0x7F000001) -> bytes:
    """A struct sockaddr_in as the tracer captures it."""
    return struct.pack("<H", 2) + struct.pack(">HI", port, addr) + bytes(8)


def events(env: Env) -> list[str]:
    """``event: fields`` of the lines (the syscall events and the ticks left out)."""
    out = []
    for ln in env.lines():
        text = ln.split(None, 4)[4]
        if text.startswith(("sys_", "hrtimer_", "local_timer", "timer_")) or "vec=1 " in text or "vec=9 " in text:
            continue
        out.append(text)
    return out


def names(lines: list[str]) -> list[str]:
    return [ln.split(":", 1)[0] for ln in lines]


def ping(env: Env, tid: int, sock_type: int, t: float, rounds: int = 2) -> None:
    """A ping of 127.0.0.1 as iputils does it: the socket (and its ICMP filter for a raw
    one), per round a sendto of 64 bytes, the reply's recvmsg, a recvmsg that times out."""
    tr = env.tr
    tr.sys_enter(env.at(t), 1, tid, tid, NR["socket"], args(2, sock_type, 1), {})
    tr.sys_exit(env.at(t + 2), 1, tid, tid, NR["socket"], 3, {}, 0, 0)
    if sock_type == 3:
        tr.sys_enter(env.at(t + 5), 1, tid, tid, NR["setsockopt"], args(3, 255, 1, 0x7FFC00, 4), {3: ICMP_FILTER})
        tr.sys_exit(env.at(t + 6), 1, tid, tid, NR["setsockopt"], 0, {}, 0, 0)
    reply = 84 if sock_type == 3 else 64
    for i in range(rounds):
        at = t + 100 + 1000 * i
        tr.sys_enter(env.at(at), 1, tid, tid, NR["sendto"], args(3, 0x7FFC0100, 64, 0, 0x7FFC0200, 16), {4: sin(0)})
        tr.sys_exit(env.at(at + 30), 1, tid, tid, NR["sendto"], 64, {}, 0, 0)
        tr.sys_enter(env.at(at + 40), 1, tid, tid, NR["recvmsg"], args(3, 0x7FFC0300, 0), {})
        tr.sys_exit(env.at(at + 45), 1, tid, tid, NR["recvmsg"], reply, {}, 0, 0)
        tr.sys_enter(env.at(at + 50), 1, tid, tid, NR["recvmsg"], args(3, 0x7FFC0300, 0x40), {})
        tr.sys_exit(env.at(at + 55), 1, tid, tid, NR["recvmsg"], -11, {}, 0, 0)


# ------------------------------------------------------------------ ICMP
def test_a_raw_ping_of_127_0_0_1() -> None:
    """The echo request goes out and comes back in the sender's NET_RX softirq: routed,
    its neighbour created once, transmitted, received, answered (the reply routed back
    from 127.0.0.1 to 127.0.0.1), consumed; the reply is cloned to the raw socket (its
    filter lets replies through), then dropped by ping_rcv (no ping socket); recvmsg
    copies the clone with its IP header (84 bytes) and consumes it."""
    env = Env(*NET)
    env.tr.attached(env.at(0), 1, A, A, "ping")
    ping(env, A, 3, 10)
    got = events(env)
    first = got[:got.index(next(ln for ln in got if ln.startswith("sock_send_length"))) + 1]
    assert names(first) == [
        "fib_table_lookup", "neigh_create", "net_dev_queue", "net_dev_start_xmit", "netif_rx_entry",
        "netif_rx", "softirq_raise", "netif_rx_exit", "net_dev_xmit", "softirq_entry",
        "netif_receive_skb", "fib_table_lookup", "net_dev_queue", "net_dev_start_xmit",
        "netif_rx_entry", "netif_rx", "netif_rx_exit", "net_dev_xmit", "consume_skb",
        "netif_receive_skb", "sk_data_ready", "kfree_skb", "napi_poll", "softirq_exit",
        "sock_send_length"]
    assert first[0] == ("fib_table_lookup: table 254 oif 0 iif 1 proto 1 0.0.0.0/0 -> 127.0.0.1/0 tos 0 "
                        "scope 0 flags 0 ==> dev lo gw 0.0.0.0/:: err 0")
    assert first[11].startswith("fib_table_lookup: table 254 oif 0 iif 1 proto 1 127.0.0.1/0 -> 127.0.0.1/0")
    assert first[1] == ("neigh_create: family 2 dev lo entries 1 primary_key4 127.0.0.1 primary_key6 :: "
                        "created 1 gc_exempt 1")
    req, rep = SKB.search(first[2]).group(1), SKB.search(first[12]).group(1)
    assert req != rep
    assert f"skbaddr={req} len=98" in first[2] and f"skbaddr={req} len=84" in first[10]
    assert first[18].startswith(f"consume_skb: skbaddr={req} location=icmp_rcv+")
    assert first[21].startswith(f"kfree_skb: skbaddr={rep} rx_sk=(null) protocol=2048 location=icmp_rcv+")
    assert first[21].endswith("reason: NO_SOCKET")
    assert "truesize=896" in first[4] and "ip_summed=0" in first[4] and "mac_header=-14" in first[4]
    assert first[6] == "softirq_raise: vec=3 [action=NET_RX]"
    assert first[20] == "sk_data_ready: family=2 protocol=1 func=__sock_queue_rcv_skb"
    assert first[22] == ("napi_poll: napi poll on napi struct " + first[22].split()[6] +
                         " for device (no_device) work 2 budget 64")
    assert first[24].endswith("length = 64, error = 0, flags = 0x0")
    # the reader takes the clone queued in the softirq; the next recvmsg finds nothing
    rest = got[len(first):]
    clone = SKB.search(rest[0]).group(1)
    assert rest[:4] == [f"skb_copy_datagram_iovec: skbaddr={clone} len=84",
                        rest[1], rest[2], rest[3]]
    assert rest[1].startswith(f"consume_skb: skbaddr={clone} location=raw_recvmsg+")
    assert rest[2].endswith("length = 84, error = 0, flags = 0x0")
    assert rest[3].endswith("length = 0, error = -11, flags = 0x40")
    # the second ping: the neighbour exists
    assert names(got).count("neigh_create") == 1 and names(got).count("net_dev_queue") == 4


def test_a_ping_socket_gets_the_reply_and_the_record_context() -> None:
    """An ICMP datagram socket: ping_rcv() finds it by its identifier, the reply is
    consumed after its clone is queued; the records' context columns are those of the
    call sites (bottom halves off around the transmit, the softirq with preemption off,
    irqs off under the backlog's lock)."""
    env = Env(*NET)
    env.tr.attached(env.at(0), 1, A, A, "ping")
    ping(env, A, 2, 10, rounds=1)
    lines = [ln for ln in env.lines() if not ln.split(None, 4)[4].startswith(("sys_", "hrtimer", "local_t"))]
    ctx = {ln.split(None, 4)[4].split(":")[0] + "@" + str(i): ln.split()[3] for i, ln in enumerate(lines)}
    flags = [v for k, v in ctx.items()]
    assert flags[:3] == [".....", ".....", "b...."]      # fib, neigh, net_dev_queue
    assert "D..1." in flags                                 # softirq_raise under the backlog lock
    entry = next(i for i, k in enumerate(ctx) if k.startswith("softirq_entry"))
    assert flags[entry] == "..s1." and "b.s2." in flags      # icmp_reply: BH off + the ICMP lock
    text = [ln.split(None, 4)[4] for ln in lines]
    ready = text.index("sk_data_ready: family=2 protocol=1 func=__sock_queue_rcv_skb")
    assert text[ready + 1].startswith("consume_skb") and "icmp_rcv+" in text[ready + 1]
    assert not any(t.startswith("kfree_skb") for t in text)
    assert any(t.startswith("skb_copy_datagram_iovec") and t.endswith("len=64") for t in text)
    assert any(t.startswith("consume_skb") and "ping_recvmsg+" in t for t in text)


def test_every_skb_ends_once_and_addresses_are_reused() -> None:
    """Consistency: each skb that was queued to lo is received, and ends (consume_skb or
    kfree_skb) exactly once before its address is handed out again."""
    env = Env(*NET)
    env.tr.attached(env.at(0), 1, A, A, "ping")
    ping(env, A, 3, 10, rounds=3)
    live: set[str] = set()
    received: set[str] = set()
    for ln in events(env):
        m = SKB.search(ln)
        if m is None:
            continue
        addr = m.group(1)
        if ln.startswith("net_dev_queue"):
            assert addr not in live
            live.add(addr)
        elif ln.startswith("netif_receive_skb"):
            received.add(addr)
        elif ln.startswith(("consume_skb", "kfree_skb")):
            live.discard(addr)
    assert not live and received


# ------------------------------------------------------------------ UDP
def udp_pair(env: Env) -> None:
    tr = env.tr
    tr.attached(env.at(0), 1, A, A, "udp")
    tr.sys_enter(env.at(5), 1, A, A, NR["fork"], args(), {})
    tr.new_task(env.at(6), 1, A, B, B, 1, 17, "udp", 0)
    tr.sys_exit(env.at(7), 1, A, A, NR["fork"], B, {}, 0, 0)
    tr.sys_enter(env.at(10), 1, A, A, NR["socket"], args(2, 2, 0), {})
    tr.sys_exit(env.at(12), 1, A, A, NR["socket"], 3, {}, 0, 0)
    tr.sys_enter(env.at(20), 1, A, A, NR["bind"], args(3, 0x7FFC00, 16), {1: sin(0)})
    tr.sys_exit(env.at(22), 1, A, A, NR["bind"], 0, {}, 0, 0)
    # getsockname tells the port the kernel gave
    tr.sys_enter(env.at(25), 1, A, A, NR["getsockname"], args(3, 0x7FFC00, 0x7FFC40), {})
    tr.sys_exit(env.at(26), 1, A, A, NR["getsockname"], 0, {1: sin(5353)}, 0, 0)
    tr.sys_enter(env.at(40), 1, A, A, NR["recvfrom"], args(3, 0x7FFE00, 100, 0, 0, 0), {})
    tr.sys_enter(env.at(100), 0, B, B, NR["socket"], args(2, 2, 0), {})
    tr.sys_exit(env.at(102), 0, B, B, NR["socket"], 4, {}, 0, 0)
    tr.sys_enter(env.at(200), 0, B, B, NR["sendto"], args(4, 0x7FFD00, 5, 0, 0x7FFD40, 16), {4: sin(5353)})
    tr.sys_exit(env.at(230), 0, B, B, NR["sendto"], 5, {}, 0, 0)
    tr.sys_exit(env.at(240), 1, A, A, NR["recvfrom"], 5, {}, 150_000, 1)


def test_a_udp_datagram_wakes_the_reader_in_the_senders_softirq() -> None:
    """The reader blocked in recvfrom (its path up to the wait, then switched out); the
    sender's autobind, route (with the source port it got), the datagram, received on
    the sender's CPU: the queue's sk_data_ready wakes the reader from the softirq; the
    reader copies it (linear: no skb_copy_datagram_iovec) and consumes it."""
    env = Env(*NET, "sched/sched_switch", "sched/sched_waking", "sched/sched_wakeup")
    udp_pair(env)
    got = [ln for ln in env.lines() if not ln.split(None, 4)[4].startswith(("sys_", "hrtimer", "local_t"))
           and "vec=1 " not in ln and "vec=9 " not in ln]
    text = [ln.split(None, 4)[4] for ln in got]
    sleep = next(i for i, t in enumerate(text) if t.startswith("sched_switch") and "prev_pid=1000" in t)
    assert "prev_state=S" in text[sleep] and got[sleep].split()[0] == "42.0"
    fib = next(t for t in text if t.startswith("fib_table_lookup"))
    m = re.search(r"proto 17 0\.0\.0\.0/(\d+) -> 127\.0\.0\.1/5353", fib)
    assert m and 32768 <= int(m.group(1)) <= 60999
    ready = text.index("sk_data_ready: family=2 protocol=17 func=__udp_enqueue_schedule_skb")
    assert text[ready + 1].startswith("sched_waking: comm=udp pid=1000") and got[ready + 1].split()[3] == "d.s4."
    skb = SKB.search(next(t for t in text if t.startswith("net_dev_queue"))).group(1)
    assert "ip_summed=3" in next(t for t in text if t.startswith("netif_rx_entry"))
    assert f"skbaddr={skb} len=47" in next(t for t in text if t.startswith("net_dev_queue"))
    end = next(i for i, t in enumerate(text) if t.startswith(f"consume_skb: skbaddr={skb}"))
    assert "location=udp_recvmsg+" in text[end] and got[end].split()[1] == "udp-1000"
    assert not any(t.startswith("skb_copy_datagram_iovec") for t in text)
    assert text[end + 1].endswith("protocol = 0x11, length = 5, error = 0, flags = 0x0")


# ------------------------------------------------------------------ TCP
def tcp_session(env: Env, refused: bool = False) -> None:
    """A server (A) listening on 8080 and accepting; a client (B) connecting, writing 5
    bytes, closing; the server reading them, reading the EOF, closing."""
    tr = env.tr
    tr.attached(env.at(0), 1, A, A, "srv")
    tr.sys_enter(env.at(5), 1, A, A, NR["fork"], args(), {})
    tr.new_task(env.at(6), 1, A, B, B, 1, 17, "srv", 0)
    tr.sys_exit(env.at(7), 1, A, A, NR["fork"], B, {}, 0, 0)
    if not refused:
        tr.sys_enter(env.at(10), 1, A, A, NR["socket"], args(2, 1, 0), {})
        tr.sys_exit(env.at(12), 1, A, A, NR["socket"], 3, {}, 0, 0)
        tr.sys_enter(env.at(20), 1, A, A, NR["bind"], args(3, 0x7FFC00, 16), {1: sin(8080, 0)})
        tr.sys_exit(env.at(22), 1, A, A, NR["bind"], 0, {}, 0, 0)
        tr.sys_enter(env.at(30), 1, A, A, NR["listen"], args(3, 5), {})
        tr.sys_exit(env.at(32), 1, A, A, NR["listen"], 0, {}, 0, 0)
        tr.sys_enter(env.at(40), 1, A, A, NR["accept4"], args(3, 0, 0, 0x80000), {})
    tr.sys_enter(env.at(100), 0, B, B, NR["socket"], args(2, 1, 0), {})
    tr.sys_exit(env.at(102), 0, B, B, NR["socket"], 4, {}, 0, 0)
    tr.sys_enter(env.at(110), 0, B, B, NR["connect"], args(4, 0x7FFD00, 16), {1: sin(8080)})
    tr.sys_exit(env.at(150), 0, B, B, NR["connect"], -111 if refused else 0, {}, 0, 0)
    if refused:
        return
    tr.sys_exit(env.at(160), 1, A, A, NR["accept4"], 5, {}, 120_000, 1)
    tr.sys_enter(env.at(170), 1, A, A, NR["read"], args(5, 0x7FFE00, 100), {})
    tr.sys_enter(env.at(200), 0, B, B, NR["write"], args(4, 0x7FFD00, 5), {})
    tr.sys_exit(env.at(230), 0, B, B, NR["write"], 5, {}, 0, 0)
    tr.sys_exit(env.at(240), 1, A, A, NR["read"], 5, {}, 60_000, 1)
    tr.sys_enter(env.at(300), 0, B, B, NR["close"], args(4), {})
    tr.sys_exit(env.at(330), 0, B, B, NR["close"], 0, {}, 0, 0)
    tr.sys_enter(env.at(340), 1, A, A, NR["read"], args(5, 0x7FFE00, 100), {})
    tr.sys_exit(env.at(345), 1, A, A, NR["read"], 0, {}, 0, 0)
    tr.sys_enter(env.at(400), 1, A, A, NR["close"], args(5), {})
    tr.sys_exit(env.at(430), 1, A, A, NR["close"], 0, {}, 0, 0)
    tr.sys_enter(env.at(500), 1, A, A, NR["close"], args(3), {})
    tr.sys_exit(env.at(510), 1, A, A, NR["close"], 0, {}, 0, 0)


STATE = re.compile(r"inet_sock_set_state: .* sport=(\d+) dport=(\d+) saddr=(\S+) daddr=(\S+) .* "
                   r"oldstate=TCP_(\w+) newstate=TCP_(\w+)")


def test_a_tcp_connection_over_lo() -> None:
    """The states of the listener, the client and the child in 6.12's order (the
    child's SYN_RECV shows the listener's addresses: inet_csk_clone_lock() records it
    before it sets the ports), the data's tcp_probe and its ACK, the reader's copy, the
    FIN exchange (the first closer's unread FIN purged when it is destroyed)."""
    env = Env(*NET)
    tcp_session(env)
    text = events(env)
    states = [m.groups() for m in map(STATE.search, text) if m]
    client = states[1][0]
    assert states[0] == ("8080", "0", "0.0.0.0", "0.0.0.0", "CLOSE", "LISTEN")
    assert states[1] == ("0", "8080", "127.0.0.1", "127.0.0.1", "CLOSE", "SYN_SENT")
    assert [s[4:] for s in states[2:]] == [
        ("SYN_SENT", "ESTABLISHED"), ("LISTEN", "SYN_RECV"), ("SYN_RECV", "ESTABLISHED"),
        ("ESTABLISHED", "FIN_WAIT1"), ("ESTABLISHED", "CLOSE_WAIT"), ("CLOSE_WAIT", "LAST_ACK"),
        ("FIN_WAIT1", "FIN_WAIT2"), ("FIN_WAIT2", "CLOSE"), ("LAST_ACK", "CLOSE"), ("LISTEN", "CLOSE")]
    sport = states[2][0]
    assert 32768 <= int(sport) <= 60999 and client == "0"
    assert states[3][:4] == ("8080", "0", "0.0.0.0", "0.0.0.0")
    assert states[4][:4] == ("8080", sport, "127.0.0.1", "127.0.0.1")
    assert names(text).count("tcp_destroy_sock") == 3 and "tcp_cong_state_set" in names(text)
    # the handshake's three lookups on the client's side, the SYN-ACK's and the child's route
    fibs = [t for t in text if t.startswith("fib_table_lookup")]
    assert "0.0.0.0/0 -> 127.0.0.1/8080" in fibs[0] and "127.0.0.1/0 -> 127.0.0.1/8080" in fibs[1]
    assert f"127.0.0.1/{sport} -> 127.0.0.1/8080" in fibs[2]
    # inet_csk_route_req()/inet_csk_route_child_sock(): oif ir_iif, 0 for an unbound listener
    assert len(fibs) == 5
    assert all(f"oif 0 iif 1 proto 6 127.0.0.1/8080 -> 127.0.0.1/{sport}" in f for f in fibs[3:5])
    probe = next(t for t in text if t.startswith("tcp_probe"))
    assert f"src=127.0.0.1:8080 dest=127.0.0.1:{sport}" in probe and "data_len=5" in probe
    data = SKB.search(probe).group(1)
    assert text.index(next(t for t in text if t.startswith(f"skb_copy_datagram_iovec: skbaddr={data} len=5"))) \
        < text.index(next(t for t in text if t.startswith("tcp_rcv_space_adjust")))
    syn = SKB.search(next(t for t in text if t.startswith("net_dev_queue"))).group(1)
    assert f"skbaddr={syn} len=74" in text[text.index(next(t for t in text if t.startswith("net_dev_queue")))]
    assert any(t.startswith(f"consume_skb: skbaddr={syn} location=tcp_rcv_state_process+") for t in text)
    purge = next(t for t in text if t.startswith("kfree_skb"))
    assert "location=sk_stream_kill_queues+" in purge and purge.endswith("reason: QUEUE_PURGE")
    lengths = [t for t in text if t.startswith(("sock_send_length", "sock_recv_length"))]
    assert [t.split("length = ")[1].split(",")[0] for t in lengths] == ["5", "5", "0"]


def test_tcp_sequence_numbers_agree() -> None:
    """The client's snd_una/snd_nxt in tcp_probe: the data's ACK comes back acking the 5
    bytes (before tcp_ack() runs, snd_una is still the byte after the SYN)."""
    env = Env("tcp/tcp_probe")
    tcp_session(env)
    probes = [t for t in events(env) if t.startswith("tcp_probe")]
    nxt = [int(re.search(r"snd_nxt=(0x[0-9a-f]+)", p).group(1), 16) for p in probes]
    una = [int(re.search(r"snd_una=(0x[0-9a-f]+)", p).group(1), 16) for p in probes]
    assert "data_len=0" in probes[1] and (nxt[1] - una[1]) % (1 << 32) == 5


def test_a_refused_connect_gets_the_rst() -> None:
    """No listener on the port (the connect failed with ECONNREFUSED): the SYN is
    answered with an RST (tcp_send_reset of no socket: the SYN's addresses reversed) and
    dropped; the client's tcp_reset: tcp_receive_reset, CLOSE, inet_sk_error_report."""
    env = Env(*NET)
    tcp_session(env, refused=True)
    text = events(env)
    rst = next(t for t in text if t.startswith("tcp_send_reset"))
    assert re.search(r"skaddr=\(null\) src=127\.0\.0\.1:8080 dest=127\.0\.0\.1:\d+ state=UNKNOWN "
                     r"reason=NO_SOCKET", rst)
    assert any(t.startswith("kfree_skb") and t.endswith("reason: NO_SOCKET") and "tcp_v4_rcv+" in t
               for t in text)
    tail = [t.split(":")[0] for t in text if t.startswith(("tcp_receive_reset", "inet_sock_set_state",
                                                           "inet_sk_error_report"))]
    assert tail == ["inet_sock_set_state", "tcp_receive_reset", "inet_sock_set_state", "inet_sk_error_report"]
    assert "error=111" in next(t for t in text if t.startswith("inet_sk_error_report"))


def test_the_real_port_of_a_socket_bound_to_port_0() -> None:
    """bind(0)/listen and a UDP autobind: the port the tracer's SOCKNAME capture saw at
    the exit stop is the one the events show (the listener's state, the route)."""
    env = Env(*NET)
    tr = env.tr
    tr.attached(env.at(0), 1, A, A, "srv")
    tr.sys_enter(env.at(10), 1, A, A, NR["socket"], args(2, 1, 0), {})
    tr.sys_exit(env.at(12), 1, A, A, NR["socket"], 3, {}, 0, 0)
    tr.sys_enter(env.at(20), 1, A, A, NR["bind"], args(3, 0x7FFC00, 16), {1: sin(0, 0)})
    tr.sys_exit(env.at(22), 1, A, A, NR["bind"], 0, {0: sin(40001, 0)}, 0, 0)
    tr.sys_enter(env.at(30), 1, A, A, NR["listen"], args(3, 5), {})
    tr.sys_exit(env.at(32), 1, A, A, NR["listen"], 0, {0: sin(40001, 0)}, 0, 0)
    tr.sys_enter(env.at(40), 1, A, A, NR["socket"], args(2, 2, 0), {})
    tr.sys_exit(env.at(42), 1, A, A, NR["socket"], 4, {}, 0, 0)
    tr.sys_enter(env.at(50), 1, A, A, NR["sendto"], args(4, 0x7FFD00, 5, 0, 0x7FFD40, 16), {4: sin(9)})
    tr.sys_exit(env.at(60), 1, A, A, NR["sendto"], 5, {0: sin(45002, 0)}, 0, 0)
    text = events(env)
    listen = next(m.groups() for m in map(STATE.search, text) if m)
    assert listen[0] == "40001" and listen[5] == "LISTEN"
    fib = next(t for t in text if t.startswith("fib_table_lookup") and "proto 17" in t)
    assert "/45002 -> 127.0.0.1/9 " in fib


def test_the_tracer_asks_the_socket_its_port() -> None:
    """The capture table: the fd of the calls that give a socket its port is captured
    with getsockname() at the exit stop."""
    from tracefs_sim.host.capture import capture_table  # only this test needs it
    from tracefs_sim.host.proto import CaptureKind
    from tracefs_sim.kernel.syscall_table import SyscallTable
    specs = {(s.nr, s.argidx): s for s in capture_table(SyscallTable.load())}
    for name in ("bind", "listen", "connect", "sendto", "sendmsg"):
        spec = specs[(NR.get(name, 46), 0)]
        assert spec.kind == CaptureKind.SOCKNAME and spec.param == 16


# ------------------------------------------------------------------ nothing else
def test_nothing_fires_without_network_activity() -> None:
    """Sockets made and closed with no packet: no device, skb or softirq event."""
    env = Env(*NET)
    tr = env.tr
    tr.attached(env.at(0), 1, A, A, "idle")
    tr.sys_enter(env.at(10), 1, A, A, NR["socket"], args(2, 2, 0), {})
    tr.sys_exit(env.at(12), 1, A, A, NR["socket"], 3, {}, 0, 0)
    tr.sys_enter(env.at(20), 1, A, A, NR["close"], args(3), {})
    tr.sys_exit(env.at(22), 1, A, A, NR["close"], 0, {}, 0, 0)
    tr.sys_enter(env.at(30), 1, A, A, NR["write"], args(1, 0x7FFE00, 5), {})
    tr.sys_exit(env.at(32), 1, A, A, NR["write"], 5, {}, 0, 0)
    assert events(env) == []


def test_function_graph_shows_the_send_path() -> None:
    """function_graph of a ping's sendto: raw_sendmsg → ip_push_pending_frames → … →
    loopback_xmit, and the softirq's receive nested under __dev_queue_xmit."""
    env = Env()
    env.write("set_graph_function", "__x64_sys_sendto")
    env.write("current_tracer", "function_graph")
    env.tr.attached(env.at(0), 1, A, A, "ping")
    ping(env, A, 3, 10, rounds=1)
    calls = [re.sub(r"[{};()]", "", ln.split("|", 1)[1]).rstrip() for ln in
             read_file(env.root, "trace").decode().splitlines() if "|" in ln and not ln.startswith("#")]
    want = ["raw_sendmsg", "ip_route_output_flow", "fib_table_lookup", "ip_append_data", "__alloc_skb",
            "ip_push_pending_frames", "ip_send_skb", "ip_local_out", "ip_output", "ip_finish_output2",
            "__neigh_create", "neigh_resolve_output", "__dev_queue_xmit", "dev_hard_start_xmit",
            "loopback_xmit", "__netif_rx", "enqueue_to_backlog", "__local_bh_enable_ip", "do_softirq",
            "net_rx_action", "process_backlog", "__netif_receive_skb", "ip_rcv", "ip_local_deliver",
            "icmp_rcv", "icmp_echo", "icmp_reply", "icmp_push_reply", "consume_skb", "raw_local_deliver",
            "raw_rcv", "icmp_rcv", "ping_rcv", "release_sock"]
    names_ = [c.strip() for c in calls]
    pos = 0
    for w in want:
        pos = names_.index(w, pos)
    depth: dict[str, int] = {}
    for c in calls:                     # the first call of each: the request's transmit
        depth.setdefault(c.strip(), len(c) - len(c.lstrip()))
    assert depth["net_rx_action"] > depth["__dev_queue_xmit"] > depth["raw_sendmsg"]


# ------------------------------------------------------------------ the real tracer
@pytest.fixture(scope="module")
def netprog(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return build_with_tracer(tmp_path_factory, "net_loopback_helper.c", "netprobe")


def test_a_real_program_over_lo(netprog: tuple[Path, Path]) -> None:
    """UDP, TCP (and ICMP when the host lets it) over 127.0.0.1 under the real tracer:
    the real lengths in sock_send_length/sock_recv_length, the TCP states of a real
    connection on the real ports, each transmitted skb received and ended once."""
    tracer, prog = netprog
    k = Kernel(nr_cpus=2)
    root = build_tree(k)
    for system in NET:
        write_file(root, f"events/{system}/enable", "1")
    trace_program(k, tracer, [str(prog)])
    lines = [ln for ln in read_file(root, "trace").decode().splitlines() if not ln.startswith("#")]
    text = [ln.split(": ", 1)[1] for ln in lines if "netprobe" in ln]
    kinds = {t.split(":")[0] for t in text}
    assert {"net_dev_queue", "net_dev_start_xmit", "net_dev_xmit", "netif_rx_entry", "netif_rx",
            "netif_rx_exit", "netif_receive_skb", "napi_poll", "consume_skb", "sk_data_ready",
            "sock_send_length", "sock_recv_length", "fib_table_lookup", "inet_sock_set_state",
            "tcp_probe", "tcp_rcv_space_adjust", "tcp_destroy_sock", "tcp_cong_state_set",
            "softirq_raise", "softirq_entry", "softirq_exit"} <= kinds
    sent = [t.split("length = ")[1].split(",")[0] for t in text if t.startswith("sock_send_length")]
    assert sent[:2] == ["5", "4"]
    got = [t.split("length = ")[1].split(",")[0] for t in text if t.startswith("sock_recv_length")]
    assert got[:3] == ["5", "4", "0"]
    states = [m.groups()[4:] for m in map(STATE.search, text) if m]
    assert ("SYN_SENT", "ESTABLISHED") in states and ("LAST_ACK", "CLOSE") in states
    listen = next(m.groups() for m in map(STATE.search, text) if m and m.group(6) == "LISTEN")
    assert int(listen[0]) > 0
    syn_sent = next(m.groups() for m in map(STATE.search, text) if m and m.group(6) == "SYN_SENT")
    assert syn_sent[1] == listen[0]          # the client connects to the listener's real port
    # netprobe's skbs, ended in whatever context ends them: a softirq that runs on
    # another task's time (an interrupt's exit while that task runs) frees there, as on
    # the kernel
    everything = [ln.split(": ", 1)[1] for ln in lines if ": " in ln]
    mine = set(text)
    live: set[str] = set()
    for t in everything:
        m = SKB.search(t)
        if m and t.startswith("net_dev_queue") and t in mine:
            live.add(m.group(1))
        elif m and t.startswith(("consume_skb", "kfree_skb")):
            live.discard(m.group(1))
    assert not live
