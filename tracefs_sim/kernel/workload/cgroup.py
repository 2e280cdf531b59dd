"""The cgroup rstat tree of the root cgroup (kernel/cgroup/rstat.c): its per-CPU updated
lists and their flush.

A stat update on a CPU whose root rstat node is not on the updated list puts it there
under the per-CPU lock (cgroup_rstat_updated(): ``cgroup_rstat_cpu_locked_fastpath`` /
``_unlock_fastpath``).  A flush (cgroup_rstat_flush(), e.g. the periodic
flush_memcg_stats_dwork()) takes the global rstat lock (``cgroup_rstat_locked``, cpu -1),
and for each CPU takes its lock to detach the updated list (``cgroup_rstat_cpu_locked``
/ ``_unlock``), flushes, and drops and retakes the global lock (``cgroup_rstat_unlock``
/ ``cgroup_rstat_locked`` with that CPU); then releases it (cpu -1).  Uncontended: one
flusher at a time on this machine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .defs import D

if TYPE_CHECKING:
    from . import Workload

ROOT_HIERARCHY = 0      # cgrp_dfl_root's hierarchy_id (the first one cgroup_init() makes)
ROOT_LEVEL = 0
ROOT_ID = 1             # the root cgroup's kernfs node id


class CgroupRstat:
    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        self.on_list = [False] * wl.k.nr_cpus

    def _emit(self, name: str, cpu: int, depth: int) -> None:
        self.wl.emit_ctx(D, depth, name, ROOT_HIERARCHY, ROOT_LEVEL, ROOT_ID, cpu, 0)

    def updated(self, cpu: int, depth: int = 0) -> None:
        """cgroup_rstat_updated(root, cpu): the fast path's lock pair the first time
        since the last flush."""
        if self.on_list[cpu]:
            return
        self.on_list[cpu] = True
        self._emit("cgroup_rstat_cpu_locked_fastpath", cpu, depth + 1)
        self._emit("cgroup_rstat_cpu_unlock_fastpath", cpu, depth + 1)

    def flushed(self) -> None:
        """The machine fast-forwarded: a periodic flush emptied the lists meanwhile."""
        self.on_list = [False] * len(self.on_list)

    def flush(self, depth: int = 0) -> None:
        """cgroup_rstat_flush(root) in a task (it may sleep between CPUs)."""
        wl = self.wl
        self._emit("cgroup_rstat_locked", -1, depth + 1)
        for cpu in range(wl.k.nr_cpus):
            self._emit("cgroup_rstat_cpu_locked", cpu, depth + 2)
            was, self.on_list[cpu] = self.on_list[cpu], False
            self._emit("cgroup_rstat_cpu_unlock", cpu, depth + 2)
            if was:
                wl.sites.call("mem_cgroup_css_rstat_flush", "cgroup_rstat_flush")
            self._emit("cgroup_rstat_unlock", cpu, depth + 1)
            self._emit("cgroup_rstat_locked", cpu, depth + 1)
        self._emit("cgroup_rstat_unlock", -1, depth + 1)
