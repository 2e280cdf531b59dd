"""Registering ftrace_ops and applying their hashes to the records and call sites
(kernel/trace/ftrace.c: ftrace_startup/ftrace_shutdown, __ftrace_hash_rec_update,
ftrace_replace_code, ftrace_hash_move, the IPMODIFY accounting and the subops of a
manager ops such as fgraph's graph_ops).

Every change follows the kernel's two steps: the records' refcounts and wanted state
(``FL_REGS``, ``FL_TRAMP``, ``FL_DIRECT``) are adjusted for the ops whose hash changes,
then ``replace_code`` turns each touched record's wanted state into its enabled state
(``ftrace_check_record``) and patches its call site.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .errors import KernelError
from .ftrace_ops import (
    FL_CALL_OPS_EN,
    FL_DIRECT,
    FL_DIRECT_EN,
    FL_DISABLED,
    FL_ENABLED,
    FL_IPMODIFY,
    FL_MODIFIED,
    FL_REGS,
    FL_REGS_EN,
    FL_TOUCHED,
    FL_TRAMP,
    FL_TRAMP_EN,
    NOCLEAR_FLAGS,
    OPS_FL_ADDING,
    OPS_FL_DELETED,
    OPS_FL_DIRECT,
    OPS_FL_DYNAMIC,
    OPS_FL_ENABLED,
    OPS_FL_INITIALIZED,
    OPS_FL_IPMODIFY,
    OPS_FL_REMOVING,
    OPS_FL_SAVE_REGS,
    OPS_FL_SUBOP,
    REF_MAX,
    FtraceHash,
    FtraceOps,
    ops_equal,
)

if TYPE_CHECKING:
    from .ftrace import Ftrace


def check_record(f: int) -> int:
    """ftrace_check_record(rec, enable=true, update=true) → the new flags."""
    if f & FL_DISABLED and not f & FL_ENABLED:
        return f
    cnt = f & REF_MAX
    flag = FL_ENABLED if cnt else 0
    if flag:
        if bool(f & FL_REGS) != bool(f & FL_REGS_EN):
            flag |= FL_REGS
        if bool(f & FL_TRAMP) != bool(f & FL_TRAMP_EN):
            flag |= FL_TRAMP
        if cnt == 1:
            if bool(f & FL_DIRECT) != bool(f & FL_DIRECT_EN):
                flag |= FL_DIRECT
        elif f & FL_DIRECT_EN:
            flag |= FL_DIRECT
    if (f & FL_ENABLED) == flag:
        return f
    if flag:
        f |= FL_ENABLED | FL_TOUCHED
        if flag & FL_REGS:
            f = f | FL_REGS_EN if f & FL_REGS else f & ~FL_REGS_EN
        if flag & FL_TRAMP:
            f = f | FL_TRAMP_EN if f & FL_TRAMP else f & ~FL_TRAMP_EN
        if f & (FL_DIRECT | FL_IPMODIFY):
            f |= FL_MODIFIED
        if flag & FL_DIRECT:
            if cnt == 1 and f & FL_DIRECT:
                f |= FL_DIRECT_EN
            else:
                f &= ~FL_DIRECT_EN
        return f
    if not cnt:
        return f & NOCLEAR_FLAGS
    return f & ~(FL_ENABLED | FL_TRAMP_EN | FL_REGS_EN | FL_DIRECT_EN | FL_CALL_OPS_EN)


def ipmod_hash(h: FtraceHash) -> FtraceHash | None:
    """Empty filter = all functions (NULL in __ftrace_hash_update_ipmodify)."""
    return None if h.empty() else h


def append_hashes(ops: FtraceOps) -> FtraceHash:
    """append_hashes(): the union of the subops' filters (empty: all functions)."""
    new: FtraceHash | None = None
    for sub in ops.subop_list:
        fh = sub.func_hash.filter_hash
        if new is None:
            new = FtraceHash()
        if fh.empty():
            return FtraceHash()
        for i in fh.ents:
            new.ents.setdefault(i)
    return new if new is not None else FtraceHash()


def intersect_hashes(ops: FtraceOps) -> FtraceHash:
    """intersect_hashes(): the functions every subops leaves out."""
    new: FtraceHash | None = None
    for sub in ops.subop_list:
        nh = sub.func_hash.notrace_hash
        if new is None:
            new = ops.func_hash.notrace_hash.copy()
            continue
        if new.empty() or nh.empty():
            return FtraceHash()
        new = FtraceHash(i for i in new.ents if i in nh.ents)
        if new.empty():
            return FtraceHash()
    return new if new is not None else FtraceHash()


class FtraceUpdate:
    """ftrace_ops registration and hash updates of one kernel's ftrace."""

    def __init__(self, ft: Ftrace) -> None:
        self.ft = ft
        self.flags = ft.flags
        self.start_up = 0
        self.removed_ops: FtraceOps | None = None

    # ------------------------------------------------------------------ registration
    def _register(self, ops: FtraceOps) -> None:
        """__register_ftrace_function()."""
        if ops.flags & OPS_FL_DELETED:
            raise KernelError(errno.EINVAL)
        if ops.flags & OPS_FL_ENABLED:
            raise KernelError(errno.EBUSY)
        if not ops.core_data:
            ops.flags |= OPS_FL_DYNAMIC
        ft = self.ft
        ft.ops_list.insert(0, ops)
        ops.saved_func = ops.func
        if ft.pid.pids_enabled(ops):
            ops.func = ft.pid.ftrace_pid_func
        ft.dispatch.update_trampoline(ops)
        ft.dispatch.update_ftrace_function()

    def _unregister(self, ops: FtraceOps) -> None:
        """__unregister_ftrace_function()."""
        if not ops.flags & OPS_FL_ENABLED:
            raise KernelError(errno.EBUSY)
        try:
            self.ft.ops_list.remove(ops)
        except ValueError:
            raise KernelError(errno.EINVAL) from None
        self.ft.dispatch.update_ftrace_function()
        if ops.saved_func is not None:
            ops.func = ops.saved_func

    def ftrace_startup(self, ops: FtraceOps) -> None:
        self._register(ops)
        self.start_up += 1
        ops.flags |= OPS_FL_ENABLED | OPS_FL_ADDING
        try:
            self._ipmodify_update(ops, FtraceHash(), ipmod_hash(ops.filter_hash))
        except KernelError:
            self._unregister(ops)
            self.start_up -= 1
            ops.flags &= ~(OPS_FL_ENABLED | OPS_FL_ADDING)
            if ops.flags & OPS_FL_DYNAMIC:
                self.ft.dispatch.trampoline_free(ops)
            raise
        self.replace_code(self._hash_rec_update(ops, True))
        ops.flags &= ~OPS_FL_ADDING

    def ftrace_shutdown(self, ops: FtraceOps) -> None:
        self._unregister(ops)
        self.start_up -= 1
        try:  # disabling never fails
            self._ipmodify_update(ops, ipmod_hash(ops.filter_hash), FtraceHash())
        except KernelError:
            pass
        dirty = self._hash_rec_update(ops, False)
        ops.flags &= ~OPS_FL_ENABLED
        ops.flags |= OPS_FL_REMOVING
        self.removed_ops = ops
        ops.old_hash = ops.func_hash
        self.replace_code(dirty)
        ops.old_hash = None
        self.removed_ops = None
        ops.flags &= ~OPS_FL_REMOVING
        if ops.flags & OPS_FL_DYNAMIC:
            self.ft.dispatch.trampoline_free(ops)

    # ------------------------------------------------------------------ record accounting
    def _needs_regs(self, i: int) -> bool:
        for op in self.ft.ops_list:
            if op.func_hash.contains(i) and op.flags & OPS_FL_SAVE_REGS:
                return True
        return False

    def _hash_rec_update(self, ops: FtraceOps, inc: bool) -> list[int]:
        """__ftrace_hash_rec_update(): adjust record refcounts; returns records touched."""
        if not ops.flags & OPS_FL_ENABLED:
            return []
        nr_records = self.ft.nr_records
        filt = ops.func_hash.filter_hash
        notrace = ops.func_hash.notrace_hash.ents
        if filt.empty():
            recs: Iterable[int] = (i for i in range(nr_records) if i not in notrace) \
                if notrace else range(nr_records)
        else:
            recs = sorted(i for i in filt.ents if i not in notrace)
        flags = self.flags
        ofl = ops.flags
        has_tramp = bool(ops.trampoline)
        tramp_ops_any_other = self.ft.dispatch.tramp_ops_any_other
        dirty: list[int] = []
        for i in recs:
            f = flags[i]
            if f & FL_DISABLED and not f & FL_ENABLED:
                continue
            if inc:
                f += 1
                if f & REF_MAX == REF_MAX:
                    raise KernelError(errno.EINVAL, "ftrace refcount overflow")
                if ofl & OPS_FL_DIRECT:
                    f |= FL_DIRECT
                if f & REF_MAX == 1 and has_tramp:
                    f |= FL_TRAMP
                else:
                    f &= ~FL_TRAMP
                if ofl & OPS_FL_SAVE_REGS:
                    f |= FL_REGS
            else:
                if f & REF_MAX == 0:
                    continue
                f -= 1
                if ofl & OPS_FL_DIRECT:
                    f &= ~FL_DIRECT
                if f & REF_MAX and f & FL_REGS and ofl & OPS_FL_SAVE_REGS:
                    flags[i] = f
                    if not self._needs_regs(i):
                        f &= ~FL_REGS
                if f & REF_MAX == 1 and tramp_ops_any_other(i, ops) is not None:
                    f |= FL_TRAMP
                else:
                    f &= ~FL_TRAMP
            flags[i] = f
            dirty.append(i)
        return dirty

    def _hash_rec_update_modify(self, ops: FtraceOps, inc: bool) -> list[int]:
        """ftrace_hash_rec_update_modify(): also every other ops sharing global_ops' hash."""
        dirty = self._hash_rec_update(ops, inc)
        shared = self.ft.global_ops.local_hash
        if ops.func_hash is shared:
            for op in self.ft.ops_list:
                if op is not ops and op.func_hash is shared:
                    dirty += self._hash_rec_update(op, inc)
        return dirty

    def replace_code(self, dirty: Iterable[int]) -> None:
        """ftrace_replace_code(): apply the records' new state to their call sites."""
        ft = self.ft
        flags = self.flags
        site = ft.site_func
        site_for = ft.dispatch.site_for
        active = ft.nr_active
        for i in dirty:
            f = check_record(flags[i])
            flags[i] = f
            if site[i] is not None:
                active -= 1
            if not f & FL_ENABLED:
                site[i] = None
                continue
            active += 1
            site[i] = site_for(i, bool(f & FL_TRAMP_EN))
        ft.nr_active = active  # sites with something attached: 0 lets the workload idle
        ft.site_gen += 1

    # ------------------------------------------------------------------ IPMODIFY
    def _ipmodify_update(self, ops: FtraceOps, old: FtraceHash | None, new: FtraceHash | None) -> None:
        """__ftrace_hash_update_ipmodify(): EBUSY on a second IPMODIFY ops at a site."""
        if not ops.flags & OPS_FL_ENABLED:
            return
        is_ipmodify = bool(ops.flags & OPS_FL_IPMODIFY)
        is_direct = bool(ops.flags & OPS_FL_DIRECT)
        if not is_ipmodify and not is_direct:
            return
        if old is None or new is None:
            raise KernelError(errno.EINVAL)
        flags = self.flags
        changed: list[tuple[int, int]] = []
        for i in sorted(set(old.ents) | set(new.ents)):
            if flags[i] & FL_DISABLED:
                continue
            in_old = i in old.ents
            in_new = i in new.ents
            if in_old == in_new:
                continue
            if in_new:
                if flags[i] & FL_IPMODIFY:
                    if is_ipmodify:
                        for j, f in changed:
                            flags[j] = f
                    raise KernelError(errno.EBUSY)
                if is_ipmodify:
                    changed.append((i, flags[i]))
                    flags[i] |= FL_IPMODIFY
            elif is_ipmodify:
                changed.append((i, flags[i]))
                flags[i] &= ~FL_IPMODIFY

    # ------------------------------------------------------------------ hash updates
    def _hash_move(self, ops: FtraceOps, enable: bool, src: FtraceHash) -> None:
        """ftrace_hash_move() + ftrace_ops_update_code(): install ``src`` as the ops'
        filter/notrace hash and update the records it changes."""
        if ops.flags & OPS_FL_IPMODIFY and not enable:
            raise KernelError(errno.EINVAL)
        new = FtraceHash() if src.empty() else src.copy()
        if enable:
            self._ipmodify_update(ops, ipmod_hash(ops.func_hash.filter_hash), ipmod_hash(new))
        dirty = self._hash_rec_update_modify(ops, False)
        if enable:
            ops.func_hash.filter_hash = new
        else:
            ops.func_hash.notrace_hash = new
        dirty += self._hash_rec_update_modify(ops, True)
        # only enabled ops (or the ones sharing global_ops' hash) dirtied records
        self.replace_code(dirty)

    def hash_move_and_update_ops(self, ops: FtraceOps, hash_: FtraceHash, enable: bool) -> None:
        """ftrace_hash_move_and_update_ops()."""
        if ops.flags & OPS_FL_SUBOP:
            self._hash_move_and_update_subops(ops, hash_, enable)
            return
        if not ops.flags & OPS_FL_ENABLED:
            for op in self.ft.ops_list:
                for sub in op.subop_list:
                    if sub.flags & OPS_FL_ENABLED and sub.func_hash is ops.func_hash:
                        self._hash_move_and_update_subops(sub, hash_, enable)
                        return
        self._hash_move(ops, enable, hash_)

    def set_hash(self, ops: FtraceOps, buf: str | None, ips: list[int] | None,
                 remove: bool, reset: bool, enable: bool) -> None:
        """ftrace_set_hash(): ``buf`` is ONE glob (no commands, no :mod:)."""
        ops.flags |= OPS_FL_INITIALIZED
        orig = ops.func_hash.filter_hash if enable else ops.func_hash.notrace_hash
        hash_ = FtraceHash() if reset else orig.copy()
        records = self.ft.records
        if buf is not None and not records.ftrace_match_records(hash_, buf):
            raise KernelError(errno.EINVAL)
        if ips is not None:
            for ip in ips:
                i = records.ftrace_location(ip)
                if i is None:
                    raise KernelError(errno.EINVAL)
                if remove:
                    if i not in hash_.ents:
                        raise KernelError(errno.ENOENT)
                    del hash_.ents[i]
                else:
                    hash_.ents.setdefault(i)
        self.hash_move_and_update_ops(ops, hash_, enable)

    # ------------------------------------------------------------------ subops
    def _update_ops(self, ops: FtraceOps, filter_hash: FtraceHash, notrace_hash: FtraceHash) -> None:
        if not ops_equal(filter_hash, ops.func_hash.filter_hash):
            self._hash_move(ops, True, filter_hash)
        if not ops_equal(notrace_hash, ops.func_hash.notrace_hash):
            self._hash_move(ops, False, notrace_hash)

    def ftrace_startup_subops(self, ops: FtraceOps, subops: FtraceOps) -> None:
        """ftrace_startup_subops(): add a subops (an fgraph user) to a manager ops."""
        ops.flags |= OPS_FL_INITIALIZED
        subops.flags |= OPS_FL_INITIALIZED
        if subops.flags & OPS_FL_ENABLED:
            raise KernelError(errno.EBUSY)
        if not ops.subop_list:
            save = (ops.func_hash.filter_hash, ops.func_hash.notrace_hash)
            ops.func_hash.filter_hash = subops.func_hash.filter_hash.copy()
            ops.func_hash.notrace_hash = subops.func_hash.notrace_hash.copy()
            if ops.func_hash.filter_hash.empty():
                ops.func_hash.filter_hash = FtraceHash()
            ops.subop_list.insert(0, subops)
            try:
                self.ftrace_startup(ops)
            except KernelError:
                ops.subop_list.remove(subops)
                ops.func_hash.filter_hash, ops.func_hash.notrace_hash = save
                raise
            subops.flags |= OPS_FL_ENABLED | OPS_FL_SUBOP
            subops.managed = ops
            return
        of, sf = ops.func_hash.filter_hash, subops.func_hash.filter_hash
        if of.empty() or sf.empty():
            filter_hash = FtraceHash()
        else:
            filter_hash = of.copy()
            for i in sf.ents:
                filter_hash.ents.setdefault(i)
        on, sn = ops.func_hash.notrace_hash, subops.func_hash.notrace_hash
        if on.empty() or sn.empty():
            notrace_hash = FtraceHash()
        else:
            notrace_hash = FtraceHash(i for i in on.ents if i in sn.ents)
        ops.subop_list.insert(0, subops)
        try:
            self._update_ops(ops, filter_hash, notrace_hash)
        except KernelError:
            ops.subop_list.remove(subops)
            raise
        subops.flags |= OPS_FL_ENABLED | OPS_FL_SUBOP
        subops.managed = ops

    def ftrace_shutdown_subops(self, ops: FtraceOps, subops: FtraceOps) -> None:
        if not subops.flags & OPS_FL_ENABLED:
            raise KernelError(errno.EINVAL)
        ops.subop_list.remove(subops)
        if not ops.subop_list:
            try:
                self.ftrace_shutdown(ops)
            except KernelError:
                ops.subop_list.insert(0, subops)
                raise
            ops.func_hash.filter_hash = FtraceHash()
            ops.func_hash.notrace_hash = FtraceHash()
        else:
            try:
                self._update_ops(ops, append_hashes(ops), intersect_hashes(ops))
            except KernelError:
                ops.subop_list.insert(0, subops)
                raise
        subops.flags &= ~(OPS_FL_ENABLED | OPS_FL_SUBOP)
        subops.managed = None

    def _hash_move_and_update_subops(self, subops: FtraceOps, hash_: FtraceHash, enable: bool) -> None:
        ops = subops.managed
        if ops is None or ops.flags & OPS_FL_SUBOP:
            raise KernelError(errno.EINVAL)
        fh = subops.func_hash
        save = fh.filter_hash if enable else fh.notrace_hash
        new_sub = FtraceHash() if hash_.empty() else hash_.copy()
        if enable:
            fh.filter_hash = new_sub
            new = append_hashes(ops)
        else:
            fh.notrace_hash = new_sub
            new = intersect_hashes(ops)
        try:
            self._hash_move(ops, enable, new)
        except KernelError:
            if enable:
                fh.filter_hash = save
            else:
                fh.notrace_hash = save
            raise
