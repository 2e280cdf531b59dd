"""The loopback network path of traced host tasks (net/socket.c, net/core, net/ipv4,
drivers/net/loopback.c): what a ping of 127.0.0.1, a UDP datagram or a TCP connection
over ``lo`` runs on Linux 6.12, with the events it records.

``sock`` holds the model's objects (``Sock``: a struct sock with its queues; ``Skb``: a
struct sk_buff), ``skb`` their addresses and lifetimes, ``dev`` the device layer and the
NET_RX softirq, ``ip`` routing, neighbours and the IP layer, ``icmp``/``udp`` and
``tcp_output``/``tcp_input``/``tcp`` the protocols, ``sk`` the receive side they share,
``socket`` the syscall bodies.  The package's ``__init__`` imports nothing:
files.py names a socket's ``Sock`` and must not pull the bodies in.
"""
