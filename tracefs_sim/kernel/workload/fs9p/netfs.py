"""The network filesystem library's unbuffered I/O (fs/netfs: direct_read.c,
direct_write.c, write_issue.c, write_collect.c, read_collect.c, objects.c) for the 9P
root mounted without a cache (fs/9p/vfs_addr.c supplies issue_read/issue_write).

A read is one request (``NETFS_DIO_READ``) of one subrequest that ``v9fs_issue_read``
fills with Treads until the count is read or the server says EOF; it completes in the
reader.  A write is a request (``NETFS_UNBUFFERED_WRITE``) cut into subrequests of the
session's wsize (one Twrite each); each completion wakes the write collector, a work
item on ``system_unbound_wq`` that a kworker runs (while the writer sleeps: fs9p/virtio.py),
and the writer waits for it in ``wait_on_bit(NETFS_RREQ_IN_PROGRESS)``.

Request and subrequest debug ids, flags and reference counts follow the code: each
event carries the values the kernel's fields have at that point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..defs import NR_CPUS, D
from .client import MAXDATA, P9_TREAD, P9_TWRITE, Fid

if TYPE_CHECKING:
    from ...sched import Task
    from .. import Workload
    from ..syscalls import SyscallCtx
    from .vfs import Inode, V9fs

# enum netfs_io_origin
NETFS_DIO_READ, NETFS_UNBUFFERED_WRITE = 4, 7
# enum netfs_io_source
NETFS_DOWNLOAD_FROM_SERVER, NETFS_UPLOAD_TO_SERVER = 2, 5
# enum netfs_read_trace / netfs_write_trace
READ_DIO = 0
WRITE_UNBUFFERED = 2
# enum netfs_rreq_trace
RREQ_ASSESS, RREQ_COLLECT, RREQ_DONE, RREQ_FREE = 0, 2, 3, 4
RREQ_WAIT_IP, RREQ_WAKE_IP, RREQ_WRITE_DONE = 11, 13, 15
# enum netfs_sreq_trace
SREQ_ADDED, SREQ_FREE, SREQ_HIT_EOF, SREQ_PREPARE, SREQ_SUBMIT, SREQ_TERMINATED = 1, 8, 9, 12, 19, 20
# enum netfs_rreq_ref_trace
RREF_GET_SUBREQ, RREF_GET_WORK, RREF_PUT_RETURN, RREF_PUT_SUBREQ = 1, 2, 7, 8
RREF_PUT_WORK, RREF_PUT_WORK_COMPLETE, RREF_SEE_WORK, RREF_NEW = 9, 10, 12, 13
# enum netfs_sreq_ref_trace
SREF_PUT_CLEAR, SREF_PUT_DONE, SREF_PUT_TERMINATED = 6, 8, 15
# enum netfs_folioq_trace
FOLIOQ_CLEAR, FOLIOQ_ROLLBUF_INIT = 4, 8
# request flags (NETFS_RREQ_*) and subrequest flags (NETFS_SREQ_*)
RREQ_IN_PROGRESS = 1 << 5
RREQ_UPLOAD_TO_SERVER = 1 << 8
RREQ_NONBLOCK = 1 << 9
RREQ_USE_IO_ITER = 1 << 12
RREQ_ALL_QUEUED = 1 << 13
SREQ_HIT_EOF_BIT = 1 << 7
SREQ_IN_PROGRESS = 1 << 8
O_NONBLOCK = 0o4000
IOCB_APPEND = 0x10              # ki_flags of an O_APPEND file's kiocb (RWF_APPEND)
# the write collector's notes (fs/netfs/internal.h)
HIT_PENDING, MADE_PROGRESS = 0x01, 0x04
REQUESTS = 0xFFFF888106400000     # netfs_io_request objects (the work item comes first)
FIRST_DEBUG_ID = 0x1A7            # requests made since boot before the traced programs
FIRST_FOLIOQ_ID = 0x41


@dataclass(slots=True, eq=False)
class Subreq:
    """A ``struct netfs_io_subrequest``."""

    index: int
    start: int
    len: int = 0
    transferred: int = 0
    flags: int = 0
    ref: int = 2
    source: int = NETFS_DOWNLOAD_FROM_SERVER
    error: int = 0


@dataclass(slots=True, eq=False)
class Rreq:
    """A ``struct netfs_io_request``."""

    debug_id: int
    origin: int
    start: int
    len: int
    i_size: int
    inode: Inode
    fid: Fid
    flags: int = RREQ_IN_PROGRESS
    ref: int = 1
    subreqs: list[Subreq] = field(default_factory=list)
    nr_subreqs: int = 0
    transferred: int = 0
    collected_to: int = 0
    work_queued: bool = False
    folioq: int = 0

    @property
    def addr(self) -> int:
        return REQUESTS + (self.debug_id & 0xFFF) * 0x400


class Netfs:
    """Unbuffered reads and writes of the 9P root's files."""

    def __init__(self, wl: Workload, v9: V9fs) -> None:
        self.wl = wl
        self.v9 = v9
        self.client = v9.client
        self.debug_ids = FIRST_DEBUG_ID
        self.folioq_ids = FIRST_FOLIOQ_ID

    # ------------------------------------------------------------------ objects.c
    def _alloc_request(self, ctx: SyscallCtx, origin: int, fid: Fid, inode: Inode, start: int,
                       length: int, nonblock: bool) -> Rreq:
        """netfs_alloc_request(): v9fs_init_request() takes the open file's fid."""
        wl = self.wl
        s = wl.syscalls
        self.debug_ids += 1
        r = Rreq(self.debug_ids, origin, start, length, inode.size, inode, fid)
        if nonblock:
            r.flags |= RREQ_NONBLOCK
        ctx.regs["netfs_alloc_request"] = (0, 0, start, length, origin)
        ctx.rets["netfs_alloc_request"] = r.addr
        s.open(ctx, "netfs_alloc_request")
        s.call(ctx, ("mempool_alloc_noprof", "mempool_alloc_slab", "kmem_cache_alloc_noprof"))
        ctx.regs["v9fs_init_request"] = (r.addr, 0)
        ctx.rets["v9fs_init_request"] = 0
        s.open(ctx, "v9fs_init_request")
        self.client.fid_get(ctx, fid)
        s.close(ctx, 1)
        wl.emit("netfs_rreq_ref", r.debug_id, 1, RREF_NEW)
        s.close(ctx, 1)
        return r

    def _get_request(self, r: Rreq, what: int) -> None:
        r.ref += 1
        self.wl.emit("netfs_rreq_ref", r.debug_id, r.ref, what)

    def _put_request(self, ctx: SyscallCtx | None, r: Rreq, what: int) -> None:
        """netfs_put_request(): the last reference frees it (netfs_free_request():
        v9fs_free_request() puts the fid, the rolling buffer's folio queue goes).
        ``ctx`` None: the write collector's kworker, which never drops the last one
        (the writer keeps its own until its wait has ended)."""
        wl = self.wl
        r.ref -= 1
        wl.emit("netfs_rreq_ref", r.debug_id, r.ref, what)
        if r.ref:
            return
        assert ctx is not None, "the writer holds its request until its wait ends"
        s = wl.syscalls
        ctx.regs["netfs_free_request"] = (r.addr,)
        s.open(ctx, "netfs_free_request")
        self._rreq(r, RREQ_FREE)
        ctx.regs["v9fs_free_request"] = (r.addr,)
        s.open(ctx, "v9fs_free_request")
        self.client.fid_put(ctx, r.fid)
        s.close(ctx, 1)
        if r.folioq:
            s.call(ctx, ("rolling_buffer_clear", "netfs_folioq_free"))
            wl.emit("netfs_folioq", r.debug_id, r.folioq, FOLIOQ_CLEAR)
        s.close(ctx, 1)

    def _alloc_subreq(self, ctx: SyscallCtx, r: Rreq, start: int, source: int) -> Subreq:
        """netfs_alloc_subrequest(): two references (the caller's and the I/O's)."""
        r.nr_subreqs += 1
        sub = Subreq(r.nr_subreqs, start, source=source)
        self.wl.syscalls.call(ctx, ("netfs_alloc_subrequest", "mempool_alloc_noprof",
                                    ("netfs_get_request",)))
        self._get_request(r, RREF_GET_SUBREQ)
        r.subreqs.append(sub)
        return sub

    def _put_subreq(self, ctx: SyscallCtx | None, r: Rreq, sub: Subreq, what: int) -> None:
        """netfs_put_subrequest(): the last reference frees it, which puts the request."""
        wl = self.wl
        sub.ref -= 1
        wl.emit("netfs_sreq_ref", r.debug_id, sub.index, sub.ref, what)
        if sub.ref:
            return
        self._sreq(r, sub, SREQ_FREE)
        if sub in r.subreqs:
            r.subreqs.remove(sub)
        self._put_request(ctx, r, RREF_PUT_SUBREQ)

    def _rreq(self, r: Rreq, what: int) -> None:
        self.wl.emit("netfs_rreq", r.debug_id, r.flags, r.origin, what)

    def _sreq(self, r: Rreq, sub: Subreq, what: int, depth: int = 0) -> None:
        """trace_netfs_sreq() (``depth``: under rreq->lock, a spin_lock_bh)."""
        self.wl.emit_ctx(0, depth, "netfs_sreq", r.debug_id, sub.index, sub.error, sub.flags,
                         sub.source, what, 0, sub.len, sub.transferred, sub.start)

    # ------------------------------------------------------------------ direct_read.c
    def read(self, ctx: SyscallCtx, fid: Fid, inode: Inode, pos: int, count: int, got: int,
             nonblock: bool) -> None:
        """netfs_unbuffered_read_iter(iocb, iter) of ``count`` bytes at ``pos`` that read
        ``got``: one subrequest, its Treads, the request's completion in the reader."""
        if count <= 0:
            return
        wl = self.wl
        s = wl.syscalls
        s.call(ctx, "netfs_start_io_direct")
        ctx.regs["netfs_unbuffered_read_iter_locked"] = (ctx.frame + 0x40, ctx.frame + 0x80)
        ctx.rets["netfs_unbuffered_read_iter_locked"] = got & 0xFFFFFFFFFFFFFFFF
        s.open(ctx, "netfs_unbuffered_read_iter_locked")
        s.call(ctx, ("kiocb_write_and_wait", "filemap_write_and_wait_range"))
        s.call(ctx, ("touch_atime", "atime_needs_update"))
        r = self._alloc_request(ctx, NETFS_DIO_READ, fid, inode, pos, count, nonblock)
        wl.emit("netfs_read", r.debug_id, 0, r.i_size, pos, count, READ_DIO, inode.ino)
        s.call(ctx, ("netfs_extract_user_iter", "iov_iter_extract_pages"))
        # netfs_unbuffered_read() → netfs_dispatch_unbuffered_reads(): nr_outstanding 1
        sub = self._alloc_subreq(ctx, r, pos, NETFS_DOWNLOAD_FROM_SERVER)
        sub.len = count
        self._sreq(r, sub, SREQ_ADDED, depth=1)
        self._sreq(r, sub, SREQ_PREPARE)            # netfs_prepare_dio_read_iterator()
        # v9fs_issue_read() → p9_client_read(): Treads until the count or EOF
        ctx.regs["v9fs_issue_read"] = (0,)
        s.open(ctx, "v9fs_issue_read")
        ctx.regs["p9_client_read"] = (fid.addr, pos, ctx.frame + 0x80, ctx.frame + 0x30)
        ctx.rets["p9_client_read"] = got
        s.open(ctx, "p9_client_read")
        done = 0
        while done < count:
            rsize = min(count - done, MAXDATA)
            part = max(0, min(rsize, got - done))
            ctx.regs["p9_client_read_once"] = (fid.addr, pos + done, ctx.frame + 0x80, ctx.frame + 0x30)
            ctx.rets["p9_client_read_once"] = part
            s.open(ctx, "p9_client_read_once")
            self.client.io(ctx, P9_TREAD, fid, pos + done, rsize, part)
            s.close(ctx, 1)
            done += part
            if part == 0:
                break
        s.close(ctx, 1)
        sub.transferred = got
        if pos + got >= inode.size:
            sub.flags |= SREQ_HIT_EOF_BIT
        # netfs_read_subreq_terminated()
        s.open(ctx, "netfs_read_subreq_terminated")
        if got < sub.len:
            self._sreq(r, sub, SREQ_HIT_EOF)
        self._sreq(r, sub, SREQ_TERMINATED)
        self._put_subreq(ctx, r, sub, SREF_PUT_TERMINATED)
        s.close(ctx, 2)
        # the dispatcher's own count: netfs_rreq_terminated()
        s.open(ctx, "netfs_rreq_terminated")
        self._rreq(r, RREQ_ASSESS)
        r.transferred = got
        self._rreq(r, RREQ_WAKE_IP)
        r.flags &= ~RREQ_IN_PROGRESS
        self._rreq(r, RREQ_DONE)
        s.call(ctx, "netfs_clear_subrequests")
        self._put_subreq(ctx, r, sub, SREF_PUT_CLEAR)
        s.close(ctx, 1)
        self._rreq(r, RREQ_WAIT_IP)
        self._put_request(ctx, r, RREF_PUT_RETURN)
        s.close(ctx, 1)
        s.call(ctx, "netfs_end_io_direct")

    # ------------------------------------------------------------------ direct_write.c
    def write(self, ctx: SyscallCtx, fid: Fid, inode: Inode, pos: int, count: int, written: int,
              append: bool, nonblock: bool) -> None:
        """netfs_unbuffered_write_iter(iocb, from) of ``count`` bytes at ``pos`` that wrote
        ``written``: subrequests of wsize, a Twrite each, the collector's completion."""
        if count <= 0:
            return
        wl = self.wl
        s = wl.syscalls
        v9 = self.v9
        flags = IOCB_APPEND if append else 0
        if append:
            pos = inode.size                # generic_write_checks(): O_APPEND writes at EOF
        wl.emit("netfs_write_iter", pos, count, flags, inode.ino)
        s.call(ctx, "netfs_start_io_direct")
        s.call(ctx, "generic_write_checks")
        s.call(ctx, "file_remove_privs")
        v9.update_time(ctx, inode)
        s.call(ctx, "filemap_write_and_wait_range")
        s.call(ctx, "filemap_invalidate_inode")
        ctx.regs["netfs_unbuffered_write_iter_locked"] = (ctx.frame + 0x40, ctx.frame + 0x80, 0)
        ctx.rets["netfs_unbuffered_write_iter_locked"] = written & 0xFFFFFFFFFFFFFFFF
        s.open(ctx, "netfs_unbuffered_write_iter_locked")
        ctx.rets["netfs_create_write_req"] = 0
        s.open(ctx, "netfs_create_write_req")
        r = self._alloc_request(ctx, NETFS_UNBUFFERED_WRITE, fid, inode, pos, 0, nonblock)
        self.folioq_ids += 1
        r.folioq = self.folioq_ids
        s.call(ctx, ("rolling_buffer_init", "netfs_folioq_alloc"))
        wl.emit("netfs_folioq", r.debug_id, r.folioq, FOLIOQ_ROLLBUF_INIT)
        s.close(ctx, 1)
        wl.emit("netfs_write", r.debug_id, 0, inode.ino, WRITE_UNBUFFERED, pos, 0)
        s.call(ctx, ("netfs_extract_user_iter", "iov_iter_extract_pages"))
        r.flags |= RREQ_USE_IO_ITER | RREQ_UPLOAD_TO_SERVER
        r.len = count
        r.collected_to = pos
        # netfs_unbuffered_write(): subrequests of wsize, each issued when full
        s.open(ctx, "netfs_unbuffered_write")
        left, at = count, pos
        owed = written
        sub: Subreq | None = None
        while left:
            s.open(ctx, "netfs_advance_write")
            if sub is None:
                sub = self._alloc_subreq(ctx, r, at, NETFS_UPLOAD_TO_SERVER)
                self._sreq(r, sub, SREQ_PREPARE)
                sub.flags |= SREQ_IN_PROGRESS
            part = min(MAXDATA - sub.len, left)
            sub.len += part
            left -= part
            at += part
            if sub.len >= MAXDATA:
                owed -= self._issue(ctx, r, sub, owed)
                sub = None
            s.close(ctx, 1)
        # netfs_end_issue_write(): all queued, the last one issued
        r.flags |= RREQ_ALL_QUEUED
        s.open(ctx, "netfs_end_issue_write")
        if sub is not None:
            owed -= self._issue(ctx, r, sub, owed)
        s.close(ctx, 2)
        self._rreq(r, RREQ_WAIT_IP)
        if r.flags & RREQ_IN_PROGRESS:
            s.call(ctx, "out_of_line_wait_on_bit")
            self.client.virtio.sleep(ctx, 0, irq=False)
        self._put_request(ctx, r, RREF_PUT_RETURN)
        s.close(ctx, 1)
        s.call(ctx, "netfs_end_io_direct")

    def _issue(self, ctx: SyscallCtx, r: Rreq, sub: Subreq, owed: int) -> int:
        """netfs_issue_write() → v9fs_issue_write(): p9_client_write() sends the
        subrequest's bytes (what the write really wrote, at most), then
        netfs_write_subrequest_terminated() wakes the collector.  The bytes sent."""
        wl = self.wl
        s = wl.syscalls
        fid = r.fid
        sent = max(0, min(sub.len, owed))
        self._sreq(r, sub, SREQ_SUBMIT)
        ctx.regs["v9fs_issue_write"] = (0,)
        s.open(ctx, "v9fs_issue_write")
        ctx.regs["p9_client_write"] = (fid.addr, sub.start, ctx.frame + 0x80, ctx.frame + 0x30)
        ctx.rets["p9_client_write"] = sent
        s.open(ctx, "p9_client_write")
        if sent:
            self.client.io(ctx, P9_TWRITE, fid, sub.start, sent, sent)
        s.close(ctx, 1)
        inode = r.inode
        if sub.start + sent > inode.size:
            inode.size = sub.start + sent            # i_size_write() under i_lock
        s.open(ctx, "netfs_write_subrequest_terminated")
        sub.transferred = sent
        self._sreq(r, sub, SREQ_TERMINATED)
        sub.flags &= ~SREQ_IN_PROGRESS
        if r.subreqs and r.subreqs[0] is sub and not r.work_queued:
            self._wake_collector(ctx, r)
        self._put_subreq(ctx, r, sub, SREF_PUT_TERMINATED)
        s.close(ctx, 2)
        return sent

    # ------------------------------------------------------------------ write_collect.c
    def _wake_collector(self, ctx: SyscallCtx, r: Rreq) -> None:
        """netfs_wake_write_collector(): a reference for the work item, queued on
        system_unbound_wq; the kworker it wakes runs it while the writer sleeps."""
        wl = self.wl
        k = wl.k
        r.work_queued = True
        self._get_request(r, RREF_GET_WORK)
        worker = self.v9.kworker()
        fn = wl.sites.sym("netfs_write_collection_worker")
        wl.syscalls.call(ctx, ("queue_work_on", ("__queue_work", "insert_work")))
        wl.emit_ctx(D, 1, "workqueue_queue_work", r.addr, fn, "events_unbound", NR_CPUS, -1)
        wl.emit_ctx(D, 1, "workqueue_activate_work", r.addr, fn)
        wl.sched.wakeup(k.sched.cpu, worker)
        self.client.virtio.defer(worker, lambda: self._collect(ctx.thread.task, r))

    def _collect(self, writer: Task, r: Rreq) -> bool:
        """netfs_write_collection_worker() in the kworker: the finished subrequests go;
        when everything is queued and collected the write is done and the writer
        woken (True)."""
        wl = self.wl
        k = wl.k
        sites = wl.sites
        fn = sites.sym("netfs_write_collection_worker")
        r.work_queued = False
        wl.emit("workqueue_execute_start", r.addr, fn)
        frames = sites.enter_chain(("process_one_work", "netfs_write_collection_worker"),
                                   sites.call_ret("worker_thread", "process_one_work"))
        wl.emit("netfs_rreq_ref", r.debug_id, r.ref, RREF_SEE_WORK)
        wl.emit("netfs_collect", r.debug_id, r.len, r.transferred, r.start)
        self._rreq(r, RREQ_COLLECT)
        notes = 0
        for sub in list(r.subreqs):
            wl.emit("netfs_collect_sreq", r.debug_id, sub.index, 0, sub.len, sub.transferred, sub.start)
            if sub.flags & SREQ_IN_PROGRESS:
                notes |= HIT_PENDING
                break
            r.collected_to = sub.start + sub.transferred
            r.transferred = r.collected_to - r.start
            notes |= MADE_PROGRESS
            self._put_subreq(None, r, sub, SREF_PUT_DONE)
        wl.emit("netfs_collect_stream", r.debug_id, 0, r.collected_to,
                r.subreqs[0].start if r.subreqs else 0)
        wl.emit("netfs_collect_state", r.debug_id, notes, r.collected_to, r.collected_to)
        woke = False
        if r.flags & RREQ_ALL_QUEUED and not r.subreqs:
            self._rreq(r, RREQ_WRITE_DONE)
            self._rreq(r, RREQ_WAKE_IP)
            r.flags &= ~RREQ_IN_PROGRESS
            sites.call(("wake_up_bit", "__wake_up_bit"), "netfs_write_collection_worker")
            wl.sched.wakeup(k.sched.cpu, writer)
            woke = True
            self._put_request(None, r, RREF_PUT_WORK_COMPLETE)
        else:
            self._put_request(None, r, RREF_PUT_WORK)
        sites.leave_chain(frames)
        wl.emit("workqueue_execute_end", r.addr, fn)
        return woke
