"""struct sk_buff lifetimes (net/core/skbuff.c, datagram.c): allocation, clones, the
copy to user space and the two ways an skb ends, consume_skb and kfree_skb.

Addresses are modelled, and consistent: an skb keeps its address from its allocation
to its free (net_dev_queue, netif_receive_skb and consume_skb name the same one), and
SLUB's per-CPU free lists hand the last freed object out first, so the next packet
reuses it as on the real kernel.  The head comes from skbuff_head_cache, the data from
skbuff_small_head (up to SKB_SMALL_HEAD_CACHE_SIZE) or kmalloc; a clone shares the data,
which is freed with its last user.  The fields probes read (``skb->len``, ``data_len``,
``protocol``, ``dev``, ``sk``) are kept in simulated memory while a function can be probed.
"""

from __future__ import annotations

import struct
from dataclasses import replace
from typing import TYPE_CHECKING

from ..defs import GFP_KERNEL
from .sock import ETH_P_IP, Skb, Sock

if TYPE_CHECKING:
    from .. import Workload
    from ..syscalls import SyscallCtx
    from .calls import Calls

SKB_HEADS = 0xFFFF888104B80000        # skbuff_head_cache slabs
SKB_HEAD_SIZE, SKB_HEAD_OBJ = 232, 256
SMALL_HEADS = 0xFFFF888105C40000      # skbuff_small_head slabs (640-byte objects)
DATA_HEAPS = 0xFFFF888106A00000       # kmalloc-N objects of larger heads
SKB_SMALL_HEAD_CACHE_SIZE = 640       # SKB_HEAD_ALIGN(MAX_TCP_HEADER), MAX_HEADER 176
SHINFO_SIZE = 320                     # SKB_DATA_ALIGN(sizeof(struct skb_shared_info))
SKB_OVERHEAD = 256                    # SKB_DATA_ALIGN(sizeof(struct sk_buff))
GFP_ATOMIC = 0x820
GFP_NOWARN, GFP_NOMEMALLOC = 0x2000, 0x80000
CHECKSUM_NONE, CHECKSUM_PARTIAL = 0, 3
ETH_HLEN = 14

# enum skb_drop_reason (include/net/dropreason-core.h)
SKB_CONSUMED, NOT_SPECIFIED, NO_SOCKET = 1, 2, 3
SOCKET_RCVBUFF, TCP_CLOSE = 6, 41


def data_alloc(size: int) -> int:
    """kmalloc_reserve()'s object size for ``size`` bytes of head (the shared info
    after it)."""
    obj = ((size + 63) & ~63) + SHINFO_SIZE
    if obj <= SKB_SMALL_HEAD_CACHE_SIZE:
        return SKB_SMALL_HEAD_CACHE_SIZE
    for bucket in (768, 1024, 2048, 4096, 8192, 16384, 32768, 65536):
        if obj <= bucket:
            return bucket
    return 1 << (obj - 1).bit_length()


class Slab:
    """One kmem cache of the model: objects of ``stride`` bytes from ``base``, a per-CPU
    LIFO free list (the next allocation on a CPU gets the object freed last there)."""

    def __init__(self, base: int, stride: int, nr_cpus: int) -> None:
        self.base = base
        self.stride = stride
        self.next = 0
        self.free: list[list[int]] = [[] for _ in range(nr_cpus)]

    def alloc(self, cpu: int) -> int:
        free = self.free[cpu]
        if free:
            return free.pop()
        addr = self.base + self.next * self.stride
        self.next += 1
        return addr

    def release(self, cpu: int, addr: int) -> None:
        free = self.free[cpu]
        if len(free) < 256:
            free.append(addr)


class Skbuff:
    """The skbs of one kernel."""

    def __init__(self, wl: Workload, calls: Calls) -> None:
        self.wl = wl
        self.c = calls
        n = wl.k.nr_cpus
        self.heads = Slab(SKB_HEADS, SKB_HEAD_OBJ, n)
        self.small = Slab(SMALL_HEADS, SKB_SMALL_HEAD_CACHE_SIZE, n)
        self.large: dict[int, Slab] = {}
        self.data: dict[int, tuple[int, int, list[int]]] = {}   # skb -> (data, size, users)
        self.mapped: set[int] = set()
        self._off: tuple[int, int, int, int, int] | None = None

    # ------------------------------------------------------------------ allocation
    def alloc(self, ctx: SyscallCtx, skb: Skb, size: int, gfp: int = GFP_KERNEL) -> Skb:
        """__alloc_skb(size) for ``skb`` (its address and truesize set here): the head,
        then the data."""
        wl = self.wl
        c = self.c
        cpu = wl.k.sched.cpu
        addr = self.heads.alloc(cpu)
        c.enter(ctx, "__alloc_skb", size, gfp, 0, 0xFFFFFFFF)
        wl.emit("kmem_cache_alloc", wl.sites.site("__alloc_skb"), addr, SKB_HEAD_SIZE, SKB_HEAD_OBJ,
                gfp, -1, False)
        obj = data_alloc(size)
        c.enter(ctx, "kmalloc_reserve", 0, gfp, 0xFFFFFFFF, 0)
        if obj == SKB_SMALL_HEAD_CACHE_SIZE:
            data = self.small.alloc(cpu)
            wl.emit("kmem_cache_alloc", wl.sites.site("kmalloc_reserve"), data, obj, obj,
                    gfp | GFP_NOMEMALLOC | GFP_NOWARN, -1, False)
        else:
            data = self._large(obj).alloc(cpu)
            wl.emit("kmalloc", wl.sites.site("kmalloc_reserve"), data, obj, obj,
                    gfp | GFP_NOMEMALLOC | GFP_NOWARN, -1)
        c.leave(ctx, "kmalloc_reserve", data)
        c.leaf(ctx, "__build_skb_around", addr, data, 0)
        c.leave(ctx, "__alloc_skb", addr)
        skb.addr, skb.cpu, skb.truesize = addr, cpu, obj + SKB_OVERHEAD
        self.data[addr] = (data, obj, [1])
        return skb

    def foreign(self, sock: Sock, proto: int, payload: int) -> Skb:
        """An skb an untraced sender queued on ``sock`` (its allocation not seen): what a
        receive returned ``payload`` bytes of."""
        cpu = self.wl.k.sched.cpu
        thlen = {6: 32, 17: 8, 1: 8}.get(proto, 0)
        skb = Skb(self.heads.alloc(cpu), proto, sock.daddr or sock.saddr, sock.saddr, sock.dport,
                  sock.sport, thlen, payload, cpu=cpu)
        obj = data_alloc(payload + thlen + 20 + 31)
        skb.truesize = obj + SKB_OVERHEAD
        data = self.small.alloc(cpu) if obj == SKB_SMALL_HEAD_CACHE_SIZE else self._large(obj).alloc(cpu)
        self.data[skb.addr] = (data, obj, [1])
        return skb

    def _large(self, obj: int) -> Slab:
        slab = self.large.get(obj)
        if slab is None:
            base = DATA_HEAPS + (obj.bit_length() << 24)
            slab = self.large[obj] = Slab(base, obj, self.wl.k.nr_cpus)
        return slab

    def clone(self, ctx: SyscallCtx, skb: Skb) -> Skb:
        """skb_clone(skb, GFP_ATOMIC): a new head sharing the data."""
        wl = self.wl
        cpu = wl.k.sched.cpu
        addr = self.heads.alloc(cpu)
        self.c.enter(ctx, "skb_clone", skb.addr, GFP_ATOMIC)
        wl.emit("kmem_cache_alloc", wl.sites.site("skb_clone"), addr, SKB_HEAD_SIZE, SKB_HEAD_OBJ,
                GFP_ATOMIC, -1, False)
        self.c.leaf(ctx, "__copy_skb_header", addr, skb.addr)
        self.c.leave(ctx, "skb_clone", addr)
        new = replace(skb, addr=addr, cpu=cpu, sk=None, clone=True, seq_off=0)
        shared = self.data.get(skb.addr)
        if shared is not None:
            shared[2][0] += 1
            self.data[addr] = shared
        skb.clone = True
        return new

    # ------------------------------------------------------------------ the end of an skb
    def consume(self, ctx: SyscallCtx, skb: Skb, caller: str, fn: str = "consume_skb") -> None:
        """consume_skb(skb) (or __consume_stateless_skb) called from ``caller``: freed
        after its normal use."""
        wl = self.wl
        self.c.enter(ctx, fn, skb.addr)
        tp = wl.tp("consume_skb")
        if tp:
            tp.fire(skb.addr, wl.sites.call_ret(caller, fn))
        self._free(ctx, skb)
        self.c.leave(ctx, fn)

    def drop(self, ctx: SyscallCtx, skb: Skb, caller: str, reason: int, sk: Sock | None = None) -> None:
        """kfree_skb_reason()/sk_skb_reason_drop(sk, skb, reason) from ``caller``."""
        wl = self.wl
        self.c.enter(ctx, "sk_skb_reason_drop", sk.sk if sk is not None else 0, skb.addr, reason)
        tp = wl.tp("kfree_skb")
        if tp:
            tp.fire(skb.addr, wl.sites.call_ret(caller, "sk_skb_reason_drop"),
                    sk.sk if sk is not None else 0, ETH_P_IP, reason)
        self._free(ctx, skb, reason=reason)
        self.c.leave(ctx, "sk_skb_reason_drop")

    def free_quiet(self, ctx: SyscallCtx, skb: Skb) -> None:
        """__kfree_skb() with no tracepoint: a TCP skb whose data was acked or read."""
        self.c.enter(ctx, "__kfree_skb", skb.addr)
        self._free(ctx, skb)
        self.c.leave(ctx, "__kfree_skb")

    def free_napi(self, ctx: SyscallCtx, skb: Skb) -> None:
        """kfree_skb_napi_cache() (skb_attempt_defer_free() on the allocating CPU): the
        data released, the head kept in the per-CPU NAPI cache (no tracepoint)."""
        self.c.enter(ctx, "__napi_kfree_skb", skb.addr, SKB_CONSUMED)
        self._free(ctx, skb, head=False)
        self.c.leave(ctx, "__napi_kfree_skb")

    def _free(self, ctx: SyscallCtx, skb: Skb, head: bool = True, reason: int = SKB_CONSUMED) -> None:
        """skb_release_all(): skb_release_data() (the data freed when this was its last
        user: a clone's end only drops its reference), then the head (kfree_skbmem)."""
        wl = self.wl
        cpu = wl.k.sched.cpu
        shared = self.data.pop(skb.addr, None)
        if shared is not None:
            data, obj, users = shared
            users[0] -= 1
            self.c.enter(ctx, "skb_release_data", skb.addr, reason)
            if users[0] == 0:
                if obj == SKB_SMALL_HEAD_CACHE_SIZE:
                    wl.emit("kmem_cache_free", wl.sites.site("skb_release_data"), data, "skbuff_small_head")
                    self.small.release(cpu, data)
                else:
                    wl.emit("kfree", wl.sites.site("skb_release_data"), data)
                    self._large(obj).release(cpu, data)
            self.c.leave(ctx, "skb_release_data")
        if not head:
            self.heads.release(cpu, skb.addr)
            return
        self.c.enter(ctx, "kfree_skbmem", skb.addr)
        wl.emit("kmem_cache_free", wl.sites.site("kfree_skbmem"), skb.addr, "skbuff_head_cache")
        self.c.leave(ctx, "kfree_skbmem")
        self.heads.release(cpu, skb.addr)

    # ------------------------------------------------------------------ user copies
    def copy_datagram(self, ctx: SyscallCtx, skb: Skb, offset: int, length: int) -> None:
        """skb_copy_datagram_iter(skb, offset, to, len): the copy to the user's buffer."""
        wl = self.wl
        self.c.enter(ctx, "skb_copy_datagram_iter", skb.addr, offset, ctx.frame + 0x80, length)
        tp = wl.tp("skb_copy_datagram_iovec")
        if tp:
            tp.fire(skb.addr, length)
        self.c.leaf(ctx, "__skb_datagram_iter", skb.addr, offset, ctx.frame + 0x80, length)
        self.c.leave(ctx, "skb_copy_datagram_iter")

    # ------------------------------------------------------------------ what probes read
    def store(self, skb: Skb, length: int, dev: int, sk: int = 0) -> None:
        """skb->len, data_len, protocol, dev and sk in simulated memory (a probe on a
        function of the path may fetch them), when some function can be probed."""
        if not self.wl.sites.armed():
            return
        mem = self.wl.k.mem
        off = self._off
        if off is None:
            off = self._off = (mem.offset("sk_buff", "len"), mem.offset("sk_buff", "data_len"),
                               mem.offset("sk_buff", "protocol"), mem.offset("sk_buff", "dev"),
                               mem.offset("sk_buff", "sk"))
        if skb.addr not in self.mapped:
            self.mapped.add(skb.addr)
            mem.map(skb.addr, bytes(SKB_HEAD_SIZE))
        mem.write(skb.addr + off[0], struct.pack("<II", length, 0))
        mem.write(skb.addr + off[2], struct.pack(">H", ETH_P_IP))
        mem.put_u64(skb.addr + off[3], dev)
        mem.put_u64(skb.addr + off[4], sk)

