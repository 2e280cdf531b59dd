"""The 9P2000.L client of the root file system (net/9p/client.c): fids, tags and the
requests of one session, with the events 6.12 records for them.

Each request (``p9_client_rpc``, or ``p9_client_zc_rpc`` for the read/write/readdir
payloads above 1 KiB) allocates a tag (``idr_alloc``: the lowest free, so 0 while one
request is in flight), fires ``9p_client_req``, goes through the virtio transport and
sleeps until the reply (fs9p/virtio.py), then ``p9_check_errors()`` dumps the reply's
first bytes (``9p_protocol_dump``, unconditional in 6.12) and ``9p_client_res`` reports
its error.  Fids are numbered as ``idr_alloc_u32()`` numbers them (the lowest free); the
VM's long-lived dentries and open files hold the low numbers (``SYSTEM_FIDS``).
``9p_fid_ref`` reports each reference taken and dropped (the count before the change,
as ``p9_fid_get/put()`` trace before they change it); the last put clunks the fid.

The reply bytes a dump shows are the server's reply as qemu builds it: header
(size[4] type[1] tag[2]) and the start of the payload (qids from the file's inode
number, type and mtime; counts; the error code).  Bytes past the reply in the buffer
are whatever kmalloc left there: modelled as zeros.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .virtio import VirtioChan

if TYPE_CHECKING:
    from .. import Workload
    from ..syscalls import SyscallCtx

# message types (include/net/9p/9p.h)
P9_RLERROR = 7
P9_TLOPEN = 12
P9_TLCREATE = 14
P9_TSYMLINK = 16
P9_TREADLINK = 22
P9_TGETATTR = 24
P9_TSETATTR = 26
P9_TREADDIR = 40
P9_TFSYNC = 50
P9_TMKDIR = 72
P9_TRENAMEAT = 74
P9_TUNLINKAT = 76
P9_TWALK = 110
P9_TREAD = 116
P9_TWRITE = 118
P9_TCLUNK = 120
# 9p_fid_ref types
FID_CREATE, FID_GET, FID_PUT, FID_DESTROY = 0, 1, 2, 3

P9_IOHDRSZ = 24
MSIZE = 128 * 1024 + P9_IOHDRSZ     # DEFAULT_MSIZE (no msize= option)
MAXDATA = MSIZE - P9_IOHDRSZ        # the payload of one TREAD/TWRITE
IOUNIT = MAXDATA                    # qemu's iounit: (msize - 24) rounded down to st_blksize
ZC_HDR_SZ = 4096                    # P9_ZC_HDR_SZ
ZC_MIN = 1024                       # "don't bother zerocopy for small IO"
HDR = 7                             # size[4] type[1] tag[2]
DUMP_SZ = 32                        # P9_PROTO_DUMP_SZ
TINY, SMALL = 4096, 8192            # p9_msg_buf_size() of the fixed-size messages
RLERROR_SIZE = HDR + 4
P9_NOTAG = 0xFFFF
SYSTEM_FIDS = 24                    # fids the VM holds before the traced programs start
CLIENT = 0xFFFF888103F4A000         # struct p9_client * of the root mount
FIDS = 0xFFFF888105E00000           # struct p9_fid objects: FIDS + fid * 0x80
QTDIR, QTSYMLINK, QTFILE = 0x80, 0x02, 0x00


@dataclass(slots=True, eq=False)
class Fid:
    """A ``struct p9_fid``."""

    fid: int
    count: int = 1
    mode: int = -1          # the open mode (P9L_*), -1 while not open
    iounit: int = 0
    rdir: bool = False      # a readdir buffer hangs off it (freed with the fid)

    @property
    def addr(self) -> int:
        return FIDS + self.fid * 0x80


def qid(qtype: int, version: int, path: int) -> bytes:
    """A qid on the wire: type[1] version[4] path[8]."""
    return struct.pack("<BIQ", qtype, version & 0xFFFFFFFF, path & 0xFFFFFFFFFFFFFFFF)


def reply(mtype: int, tag: int, payload: bytes, size: int = 0) -> bytes:
    """A reply's bytes (R-message = T-message + 1); ``size`` overrides the header's size
    field (a zero-copy reply's payload is not in this buffer)."""
    return struct.pack("<IBH", size or HDR + len(payload), mtype + 1, tag) + payload


def rbuf_size(mtype: int, count: int = 0, nwname: int = 0) -> int:
    """p9_msg_buf_size() of the reply to ``mtype`` (at most msize): the capacity of the
    reply buffer of a request that is not zero-copy."""
    if mtype == P9_TWALK:
        size = max(HDR + 2 + nwname * 13, RLERROR_SIZE)
    elif mtype in (P9_TREAD, P9_TREADDIR):
        size = max(HDR + 4 + count, RLERROR_SIZE)
    elif mtype == P9_TREADLINK:
        size = SMALL
    else:
        size = TINY
    return min(size, MSIZE)


class P9Client:
    """One 9P session (the root mount's): fids, tags, requests."""

    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        self.virtio = VirtioChan(wl)
        self.fids: dict[int, Fid] = {}
        self.next_system = 0                  # the VM's own fids, handed out without events
        self.tags: set[int] = set()
        # tag -> when its last reply came: the model runs one conversation at a time, but
        # a kworker's and a task's may overlap in time on two CPUs, and overlapping
        # requests never share a tag (p9_tag_alloc() takes the lowest free one)
        self.busy_until: dict[int, int] = {}

    # ------------------------------------------------------------------ fids
    def system_fid(self) -> Fid:
        """A fid the VM took before the model started (a long-lived dentry's)."""
        while self.next_system in self.fids:
            self.next_system += 1
        fid = Fid(self.next_system)
        self.fids[fid.fid] = fid
        self.next_system += 1
        return fid

    def fid_create(self, ctx: SyscallCtx) -> Fid:
        """p9_fid_create(): the lowest free number (idr_alloc_u32 from 0)."""
        n = SYSTEM_FIDS
        while n in self.fids:
            n += 1
        fid = Fid(n)
        self.fids[n] = fid
        ctx.regs["p9_fid_create"] = (CLIENT,)
        ctx.rets["p9_fid_create"] = fid.addr
        self.wl.syscalls.call(ctx, "p9_fid_create")
        self.wl.emit("9p_fid_ref", fid.fid, 1, FID_CREATE)
        return fid

    def fid_get(self, ctx: SyscallCtx, fid: Fid, locked: bool = False) -> Fid:
        """p9_fid_get() (``locked``: under the dentry's or inode's spinlock)."""
        wl = self.wl
        if wl.tp("9p_fid_ref"):
            ctx.regs["do_trace_9p_fid_get"] = (fid.addr,)
            wl.syscalls.call(ctx, "do_trace_9p_fid_get")
            wl.emit_ctx(0, 1 if locked else 0, "9p_fid_ref", fid.fid, fid.count, FID_GET)
        fid.count += 1
        return fid

    def fid_put(self, ctx: SyscallCtx, fid: Fid | None) -> None:
        """p9_fid_put(): the last reference clunks the fid."""
        if fid is None:
            return
        wl = self.wl
        if wl.tp("9p_fid_ref"):
            ctx.regs["do_trace_9p_fid_put"] = (fid.addr,)
            wl.syscalls.call(ctx, "do_trace_9p_fid_put")
            wl.emit("9p_fid_ref", fid.fid, fid.count, FID_PUT)
        fid.count -= 1
        if fid.count == 0:
            self.clunk(ctx, fid)

    def fid_destroy(self, ctx: SyscallCtx, fid: Fid) -> None:
        """p9_fid_destroy(): the number is free again (its readdir buffer goes too)."""
        wl = self.wl
        ctx.regs["p9_fid_destroy"] = (fid.addr,)
        wl.syscalls.call(ctx, "p9_fid_destroy")
        wl.emit("9p_fid_ref", fid.fid, fid.count, FID_DESTROY)
        if self.fids.get(fid.fid) is fid:
            del self.fids[fid.fid]

    # ------------------------------------------------------------------ requests
    def rpc(self, ctx: SyscallCtx, mtype: int, payload: bytes = b"", err: int = 0,
            rsize: int = 0, zc: bool = False, nbytes: int = 0, rlen: int = 0) -> None:
        """One request and its reply: ``payload`` is the reply's payload (``rlen``: its
        length when larger, as a zero-copy reply's data lands in the user pages),
        ``err`` its error (an Rlerror reply), ``nbytes`` the data the round trip carries.
        The request is put back (p9_req_put) by the caller's ``done``."""
        wl = self.wl
        s = wl.syscalls
        now = wl.k.boot_clock.peek()
        tag = 0
        while tag in self.tags or self.busy_until.get(tag, 0) > now:
            tag += 1
        self.tags.add(tag)
        req = 0xFFFF888104B00000 + tag * 0x100
        name = "p9_client_zc_rpc.constprop.0" if zc else "p9_client_rpc"
        ctx.regs[name] = (CLIENT, mtype)
        ctx.rets[name] = req if err == 0 else err & 0xFFFFFFFFFFFFFFFF
        s.open(ctx, name)
        # p9_client_prepare_req() → p9_tag_alloc(), the message marshalled
        ctx.regs["p9_client_prepare_req"] = (CLIENT, mtype, ZC_HDR_SZ if zc else 0,
                                             ZC_HDR_SZ if zc else 0)
        ctx.rets["p9_client_prepare_req"] = req
        s.open(ctx, "p9_client_prepare_req")
        ctx.rets["p9_tag_alloc"] = req
        s.call(ctx, ("p9_tag_alloc", "kmem_cache_alloc_noprof", ("p9_fcall_init", "__kmalloc_noprof"),
                     ("p9_fcall_init", "__kmalloc_noprof"), "idr_alloc"))
        s.call(ctx, "p9pdu_prepare")
        s.call(ctx, "p9pdu_vwritef")
        s.call(ctx, "p9pdu_finalize")
        wl.emit("9p_client_req", CLIENT, mtype, tag)
        s.close(ctx, 1)
        self.virtio.request(ctx, zc)
        self.virtio.wait(ctx, nbytes)
        # p9_check_errors(): the reply's header, its dump, an Rlerror's code
        ctx.rets["p9_check_errors"] = err
        s.open(ctx, "p9_check_errors")
        s.call(ctx, "p9_parse_header")
        tp = wl.tp("9p_protocol_dump")
        if tp:
            if err:
                body = reply(P9_RLERROR - 1, tag, struct.pack("<I", -err))
            elif zc:
                body = reply(mtype, tag, payload[:4], HDR + (rlen or len(payload)))
            else:
                body = reply(mtype, tag, payload, HDR + (rlen or len(payload)))
            cap = ZC_HDR_SZ if zc else (rsize or rbuf_size(mtype))
            line = (body + bytes(DUMP_SZ))[:min(cap, DUMP_SZ)]
            tp.fire(CLIENT, (P9_RLERROR if err else mtype + 1), tag, line)
        s.close(ctx, 1)
        wl.emit("9p_client_res", CLIENT, mtype, tag, err & 0xFFFFFFFF)
        self.busy_until[tag] = wl.k.boot_clock.peek()
        if err:
            self._req_put(ctx, tag)          # reterr: the request goes with the error
        s.close(ctx, 1)

    def done(self, ctx: SyscallCtx, err: int = 0) -> None:
        """The caller parsed the reply (p9pdu_readf) and puts the request back: its tag
        and buffers are freed.  Nothing is left to put after an error reply."""
        if err:
            return
        self.wl.syscalls.call(ctx, "p9pdu_readf")
        self._req_put(ctx, min(self.tags) if self.tags else 0)

    def _req_put(self, ctx: SyscallCtx, tag: int) -> None:
        self.tags.discard(tag)
        self.wl.syscalls.call(ctx, ("p9_req_put", ("p9_fcall_fini", "kfree"), ("p9_fcall_fini", "kfree"),
                                    "kmem_cache_free"))

    # ------------------------------------------------------------------ operations
    def walk(self, ctx: SyscallCtx, oldfid: Fid, names: tuple[str, ...], wqids: tuple[bytes, ...],
             err: int = 0) -> Fid | None:
        """p9_client_walk(oldfid, nwname, names, clone=1): a new fid for what ``names``
        reach from ``oldfid`` (none: a clone of it).  ``wqids`` are the qids the server
        walked; ``err``: the walk failed (Rlerror): the new fid is destroyed unused."""
        s = self.wl.syscalls
        ctx.regs["p9_client_walk"] = (oldfid.addr, len(names), 0, 1)
        s.open(ctx, "p9_client_walk")
        fid = self.fid_create(ctx)
        ctx.rets["p9_client_walk"] = fid.addr if not err else err & 0xFFFFFFFFFFFFFFFF
        payload = struct.pack("<H", len(wqids)) + b"".join(wqids)
        self.rpc(ctx, P9_TWALK, payload, err, rsize=rbuf_size(P9_TWALK, nwname=len(names)))
        if err:
            self.fid_destroy(ctx, fid)
            s.close(ctx, 1)
            return None
        self.done(ctx)
        s.close(ctx, 1)
        return fid

    def clunk(self, ctx: SyscallCtx, fid: Fid) -> None:
        """p9_client_clunk(): Tclunk, then the fid is destroyed."""
        s = self.wl.syscalls
        ctx.regs["p9_client_clunk"] = (fid.addr,)
        ctx.rets["p9_client_clunk"] = 0
        s.open(ctx, "p9_client_clunk")
        self.rpc(ctx, P9_TCLUNK)
        self.done(ctx)
        self.fid_destroy(ctx, fid)
        s.close(ctx, 1)

    def simple(self, ctx: SyscallCtx, fn: str, args: tuple[int, ...], mtype: int, payload: bytes = b"",
               err: int = 0) -> None:
        """A request with a fixed-size reply made by ``fn`` (p9_client_open, _getattr_dotl,
        _fsync, _unlinkat, _mkdir_dotl…)."""
        s = self.wl.syscalls
        ctx.regs[fn] = args
        ctx.rets[fn] = err & 0xFFFFFFFFFFFFFFFF
        s.open(ctx, fn)
        self.rpc(ctx, mtype, payload, err)
        self.done(ctx, err)
        s.close(ctx, 1)

    def io(self, ctx: SyscallCtx, mtype: int, fid: Fid, offset: int, count: int, got: int,
           payload: bytes = b"") -> None:
        """One Tread/Twrite/Treaddir of ``count`` bytes at ``offset`` that moved ``got``
        (p9_client_read_once, one turn of p9_client_write's loop, p9_client_readdir):
        zero-copy above 1 KiB."""
        zc = count > ZC_MIN
        head = struct.pack("<I", got)
        if mtype == P9_TWRITE:
            self.rpc(ctx, mtype, head, zc=zc, nbytes=count)
        else:
            body = head + (payload if not zc else b"")
            self.rpc(ctx, mtype, body, rsize=rbuf_size(mtype, count), zc=zc, nbytes=got,
                     rlen=4 + got)
        self.done(ctx)
