"""Inode dirtying and the writeback of the 9P root (fs/fs-writeback.c, fs/sync.c).

``__mark_inode_dirty()`` fires ``writeback_mark_inode_dirty``, and for the inode's own
dirtiness (I_DIRTY_SYNC/DATASYNC) ``writeback_dirty_inode_start`` and
``writeback_dirty_inode`` around the superblock's ``dirty_inode`` (9P has none); an
inode that was clean and is hashed goes on its bdi_writeback's ``b_dirty`` list
(``writeback_dirty_inode_enqueue``, under the inode's and the list's locks).

``sync(2)`` (``ksys_sync``) wakes the flusher and syncs each superblock: with the
reference kernel's cgroup writeback, ``bdi_split_work_to_wbs()`` queues work only for a
writeback context with dirty inodes, so a sync with nothing dirty on the 9P root queues
none.  With dirty inodes, the sync work is queued (``writeback_queue``) and the sync
waits for the flusher kworker (``wb_workfn``): ``writeback_exec``, ``writeback_start``,
``writeback_queue_io``, each inode written (``writeback_single_inode_start``,
``writeback_write_inode_start``/``writeback_write_inode``: 9P's ``write_inode`` only
unpins netfs writeback), ``writeback_single_inode``, ``writeback_written``, until a pass
writes nothing, then ``writeback_pages_written``.

Not modelled: the 5 s delayed wakeup ``wb_wakeup_delayed()`` arms for the first dirty
inode (its kworker run belongs to the timer machinery).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ..clock import jiffies_of
from .defs import NR_CPUS

if TYPE_CHECKING:
    from ..sched import Task
    from . import Workload
    from .fs9p.virtio import VirtioChan
    from .syscalls import SyscallCtx

# inode state bits (include/linux/fs.h, 6.12 numbering)
I_SYNC = 1 << 1
I_DIRTY_SYNC = 1 << 3
I_DIRTY_DATASYNC = 1 << 4
I_DIRTY_PAGES = 1 << 5
I_DIRTY_INODE = I_DIRTY_SYNC | I_DIRTY_DATASYNC
I_DIRTY = I_DIRTY_INODE | I_DIRTY_PAGES
I_DIRTY_TIME = 1 << 11
I_SYNC_QUEUED = 1 << 16
WB_SYNC_ALL = 1
WB_REASON_SYNC = 2
LONG_MAX = (1 << 63) - 1
ROOT_CGROUP_INO = 1
BDI_WB = 0xFFFF888103E6A000       # the 9P root's bdi_writeback (its dwork comes first)


class DirtyInode(Protocol):
    """What writeback reads of an inode."""

    ino: int
    mode: int
    state: int
    dirtied_when: int
    hashed: bool


class Writeback:
    """One backing device's writeback (the 9P root's bdi, ``name``)."""

    def __init__(self, wl: Workload, name: str, s_dev: int) -> None:
        self.wl = wl
        self.name = name
        self.s_dev = s_dev
        self.b_dirty: list[DirtyInode] = []      # wb->b_dirty, oldest first

    def jiffies(self) -> int:
        return jiffies_of(self.wl.k.boot_clock.peek())

    def mark_inode_dirty(self, ctx: SyscallCtx, inode: DirtyInode, flags: int) -> None:
        """__mark_inode_dirty(inode, flags)."""
        wl = self.wl
        name = self.name
        wl.syscalls.call(ctx, "__mark_inode_dirty")
        wl.emit("writeback_mark_inode_dirty", name, inode.ino, inode.state, flags)
        if flags & I_DIRTY_INODE:
            if inode.state & I_DIRTY_TIME:
                inode.state &= ~I_DIRTY_TIME
                flags |= I_DIRTY_TIME
            wl.emit("writeback_dirty_inode_start", name, inode.ino, inode.state, flags)
            wl.emit("writeback_dirty_inode", name, inode.ino, inode.state, flags)
            flags &= ~I_DIRTY_TIME
        if inode.state & flags == flags:
            return
        was_dirty = inode.state & I_DIRTY
        inode.state |= flags
        if was_dirty or inode.state & I_SYNC_QUEUED or not inode.hashed:
            return
        inode.dirtied_when = self.jiffies()
        self.b_dirty.append(inode)
        wl.emit_ctx(0, 2, "writeback_dirty_inode_enqueue", self.s_dev, inode.ino, inode.state,
                    inode.mode, inode.dirtied_when)

    def forget(self, inode: DirtyInode) -> None:
        """inode_io_list_del() at evict: off the writeback lists, dirty or not."""
        if inode in self.b_dirty:
            self.b_dirty.remove(inode)

    # ------------------------------------------------------------------ sync(2)
    def sync(self, ctx: SyscallCtx, virtio: VirtioChan, worker: Task) -> None:
        """ksys_sync(): the flusher woken, each superblock's inodes synced (the 9P root's
        through the flusher kworker when it has dirty inodes), then sync_fs and the
        block devices."""
        wl = self.wl
        s = wl.syscalls
        s.open(ctx, "ksys_sync")
        s.call(ctx, "wakeup_flusher_threads")
        ctx.regs["iterate_supers"] = (wl.sites.sym("sync_inodes_one_sb"), 0)
        s.open(ctx, "iterate_supers", "sync_inodes_one_sb")
        self.sync_inodes_sb(ctx, virtio, worker)
        s.close(ctx, 2)
        for fs in ("sync_fs_one_sb", "sync_fs_one_sb"):
            ctx.regs["iterate_supers"] = (wl.sites.sym(fs), 0)
            s.call(ctx, ("iterate_supers", fs))
        s.call(ctx, "sync_bdevs")
        s.call(ctx, "sync_bdevs")
        s.close(ctx, 1)

    def sync_inodes_sb(self, ctx: SyscallCtx, virtio: VirtioChan, worker: Task) -> None:
        """sync_inodes_sb(): work for the flusher only when the 9P root has dirty
        inodes (bdi_split_work_to_wbs() skips a clean writeback context)."""
        s = self.wl.syscalls
        s.open(ctx, "sync_inodes_sb")
        if self.b_dirty:
            self._sync_work(ctx, virtio, worker)
        s.call(ctx, "wait_sb_inodes")
        s.close(ctx, 1)

    def _work_event(self, name: str) -> None:
        self.wl.emit(name, self.name, LONG_MAX, self.s_dev, WB_SYNC_ALL, 0, 0, 0, WB_REASON_SYNC,
                     ROOT_CGROUP_INO)

    def _sync_work(self, ctx: SyscallCtx, virtio: VirtioChan, worker: Task) -> None:
        """bdi_split_work_to_wbs() → wb_queue_work(), then wb_wait_for_completion() while
        the flusher kworker runs the work."""
        wl = self.wl
        s = wl.syscalls
        s.call(ctx, ("bdi_split_work_to_wbs", "__kmalloc_cache_noprof"))
        s.open(ctx, "wb_queue_work")
        self._work_event("writeback_queue")
        fn = wl.sites.sym("wb_workfn")
        s.call(ctx, ("mod_delayed_work_on", ("__queue_work", "insert_work")))
        wl.emit_ctx(1, 1, "workqueue_queue_work", BDI_WB, fn, "writeback", NR_CPUS, -1)
        wl.emit_ctx(1, 1, "workqueue_activate_work", BDI_WB, fn)
        wl.sched.wakeup(wl.k.sched.cpu, worker)
        s.close(ctx, 1)
        sync_task = ctx.thread.task
        virtio.defer(worker, lambda: self._flush(sync_task))
        s.call(ctx, "wb_wait_for_completion")
        virtio.sleep(ctx, 0, irq=False)

    def _flush(self, waiter: Task) -> bool:
        """wb_workfn() → wb_do_writeback(): the queued sync work (wb_writeback(): a pass
        that writes the dirty inodes, a pass that finds none), the waiter woken."""
        wl = self.wl
        sites = wl.sites
        fn = sites.sym("wb_workfn")
        wl.emit("workqueue_execute_start", BDI_WB, fn)
        frames = sites.enter_chain(("process_one_work", "wb_workfn", "wb_do_writeback"),
                                   sites.call_ret("worker_thread", "process_one_work"))
        self._work_event("writeback_exec")
        inner = sites.enter_chain(("wb_writeback",), "wb_do_writeback")
        now = self.jiffies()
        for _ in range(2):
            self._work_event("writeback_start")
            moved = list(self.b_dirty)
            self.b_dirty.clear()
            wl.emit("writeback_queue_io", self.name, now, 0, len(moved), WB_REASON_SYNC, ROOT_CGROUP_INO)
            sites.call("queue_io", "wb_writeback")
            for inode in moved:
                self._write_inode(inode)
            self._work_event("writeback_written")
            if not moved:
                break
        sites.leave_chain(inner)
        sites.call(("finish_writeback_work", "wake_up_var"), "wb_do_writeback")
        wl.sched.wakeup(wl.k.sched.cpu, waiter)
        sites.call("wb_check_start_all", "wb_do_writeback")
        sites.leave_chain(frames)
        wl.emit("writeback_pages_written", 0)
        wl.emit("workqueue_execute_end", BDI_WB, fn)
        return True

    def _write_inode(self, inode: DirtyInode) -> None:
        """__writeback_single_inode(): no dirty pages under 9P's cache=none, the inode
        itself written (v9fs_write_inode_dotl: netfs_unpin_writeback), clean after."""
        wl = self.wl
        sites = wl.sites
        inode.state |= I_SYNC
        wl.emit("writeback_single_inode_start", self.name, inode.ino, inode.state, inode.dirtied_when,
                0, LONG_MAX, 0, ROOT_CGROUP_INO)
        sites.call("do_writepages", "__writeback_single_inode")
        dirty = inode.state & I_DIRTY
        inode.state &= ~I_DIRTY
        if dirty & ~I_DIRTY_PAGES:
            wl.emit("writeback_write_inode_start", self.name, inode.ino, WB_SYNC_ALL, ROOT_CGROUP_INO)
            sites.call(("v9fs_write_inode_dotl", "netfs_unpin_writeback"), "__writeback_single_inode")
            wl.emit("writeback_write_inode", self.name, inode.ino, WB_SYNC_ALL, ROOT_CGROUP_INO)
        wl.emit("writeback_single_inode", self.name, inode.ino, inode.state, inode.dirtied_when,
                0, LONG_MAX, 0, ROOT_CGROUP_INO)
        inode.state &= ~I_SYNC

