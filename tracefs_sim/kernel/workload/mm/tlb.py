"""The TLB of each CPU (arch/x86/mm/tlb.c): which mm a CPU has loaded, the ASIDs it keeps,
and the tlb_flush events of a switch to another mm and of a flush of an mm's range.

A switch to a task of another mm loads it (switch_mm_irqs_off(): tlb_flush reason 0, all
pages when the mm has no up-to-date ASID on this CPU, 0 when it has); a switch to a
kernel thread or the idle task keeps the mm loaded (lazy TLB: it holds a reference to it,
dropped when the CPU next loads another user mm, which may free the mm then).  A flush of
an mm's range (flush_tlb_mm_range()) bumps its generation; it is local (reason 3) when
only this CPU has the mm in its cpumask, otherwise traced as an IPI send (reason 4) and
flushed on the CPUs running it (reason 1); a lazy CPU leaves the mm for init_mm when page
tables were freed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ...lib import MASK64
from ..defs import HARDIRQ, D

if TYPE_CHECKING:
    from .. import Workload
    from .calls import Path
    from .mm_types import MmStruct

TLB_FLUSH_ON_TASK_SWITCH, TLB_REMOTE_SHOOTDOWN, TLB_LOCAL_SHOOTDOWN = 0, 1, 2
TLB_LOCAL_MM_SHOOTDOWN, TLB_REMOTE_SEND_IPI = 3, 4
TLB_FLUSH_ALL = MASK64                  # -1UL: the whole TLB
TLB_NR_DYN_ASIDS = 6
FLUSH_CEILING = 33                      # tlb_single_page_flush_ceiling


class Tlb:
    def __init__(self, wl: Workload, path: Path, mmdrop: Callable[[MmStruct], None]) -> None:
        self.wl = wl
        self.path = path
        self.mmdrop = mmdrop
        n = wl.k.nr_cpus
        self.loaded: list[MmStruct | None] = [None] * n     # cpu_tlbstate.loaded_mm (None: init_mm)
        self.lazy: list[MmStruct | None] = [None] * n       # the active_mm a kernel task borrows
        self.running: list[MmStruct | None] = [None] * n    # the mm of the user task running
        self.asids: list[dict[int, tuple[MmStruct, int]]] = [{} for _ in range(n)]

    def _asid_gen(self, cpu: int, mm: MmStruct) -> int | None:
        got = self.asids[cpu].get(id(mm))
        return got[1] if got is not None else None

    def _asid_set(self, cpu: int, mm: MmStruct) -> None:
        slots = self.asids[cpu]
        slots.pop(id(mm), None)
        slots[id(mm)] = (mm, mm.tlb_gen)
        while len(slots) > TLB_NR_DYN_ASIDS:
            del slots[next(iter(slots))]

    # ------------------------------------------------------------------ switch
    def switch(self, cpu: int, prev_mm: MmStruct | None, next_mm: MmStruct | None) -> MmStruct | None:
        """context_switch() on ``cpu``, still in prev's context: ``prev_mm``/``next_mm``
        are the mms of the tasks (None: a kernel thread, the idle task, or a task past
        exit_mm()).  Returns the borrowed mm that finish_task_switch() drops (rq->prev_mm,
        put in next's context), if any."""
        if next_mm is None:
            if prev_mm is not None:
                # enter_lazy_tlb(): the kernel task borrows prev's mm (mmgrab_lazy_tlb)
                prev_mm.count += 1
                self.lazy[cpu] = prev_mm
            self.running[cpu] = None
            return None
        self.running[cpu] = next_mm
        if self.loaded[cpu] is not next_mm:
            self._load(cpu, next_mm)
        elif self._asid_gen(cpu, next_mm) != next_mm.tlb_gen:
            self._load(cpu, next_mm)        # it went stale while lazy
        held = self.lazy[cpu]
        if held is None or prev_mm is not None:
            return None
        self.lazy[cpu] = None
        return held

    def _load(self, cpu: int, mm: MmStruct, depth: int = 2) -> None:
        """switch_mm_irqs_off() to ``mm`` (irqs off; in a context switch the run-queue
        lock is held: preempt depth 2)."""
        need_flush = self._asid_gen(cpu, mm) != mm.tlb_gen
        self._asid_set(cpu, mm)
        self.loaded[cpu] = mm
        mm.cpus.add(cpu)
        if self.wl.tp("tlb_flush"):
            self.wl.emit_ctx(D, depth, "tlb_flush", TLB_FLUSH_ON_TASK_SWITCH, TLB_FLUSH_ALL if need_flush else 0)

    def activate(self, mm: MmStruct) -> None:
        """activate_mm() at exec (irqs off, task_lock held): the new mm is loaded on this
        CPU."""
        cpu = self.wl.k.sched.cpu
        self.running[cpu] = mm
        self._load(cpu, mm, 1)

    def detach(self, cpu: int, mm: MmStruct) -> None:
        """exit_mm(): the task keeps ``mm`` as its active_mm only (lazy, referenced)."""
        mm.count += 1
        self.lazy[cpu] = mm
        self.running[cpu] = None

    def reset(self) -> None:
        """Nothing is known of the CPUs' mms any more (they ran unobserved)."""
        n = len(self.loaded)
        self.loaded = [None] * n
        self.lazy = [None] * n
        self.running = [None] * n
        self.asids = [{} for _ in range(n)]

    def forget(self, mm: MmStruct) -> None:
        """cleanup_lazy_tlbs() before an mm is freed: no CPU keeps it."""
        for cpu in range(len(self.loaded)):
            if self.loaded[cpu] is mm:
                self.loaded[cpu] = None
            self.asids[cpu].pop(id(mm), None)

    # ------------------------------------------------------------------ flushes
    def flush_range(self, mm: MmStruct, start: int, end: int, freed_tables: bool = False) -> None:
        """flush_tlb_mm_range(mm, start, end, PAGE_SHIFT, freed_tables)."""
        wl = self.wl
        cpu = wl.k.sched.cpu
        if end == TLB_FLUSH_ALL or (end - start) >> 12 > FLUSH_CEILING:
            pages = TLB_FLUSH_ALL
        else:
            pages = (end - start) >> 12
        mm.tlb_gen += 1
        others = [c for c in sorted(mm.cpus) if c != cpu]
        traced = wl.tp("tlb_flush")
        self.path.enter("flush_tlb_mm_range", mm.addr, start, end, 12, int(freed_tables))
        if others:
            self.path.enter("flush_tlb_multi", 0, 0)
            if traced:
                wl.emit_ctx(0, 1, "tlb_flush", TLB_REMOTE_SEND_IPI, pages)
            for c in others:
                if self.loaded[c] is not mm:
                    mm.cpus.discard(c)          # it left the mm: its bit is trimmed
                elif self.running[c] is mm:
                    self._remote(c, TLB_REMOTE_SHOOTDOWN, pages, mm)
                elif freed_tables:
                    self._remote(c, TLB_FLUSH_ON_TASK_SWITCH, TLB_FLUSH_ALL, None)
            self.path.leave("flush_tlb_multi")
        if self.loaded[cpu] is mm:
            self.path.enter("flush_tlb_func", 0)
            if traced:
                wl.emit_ctx(D, 1, "tlb_flush", TLB_LOCAL_MM_SHOOTDOWN, pages)
            self.path.leave("flush_tlb_func")
            self._asid_set(cpu, mm)
        self.path.leave("flush_tlb_mm_range")

    def _remote(self, c: int, reason: int, pages: int, mm: MmStruct | None) -> None:
        """flush_tlb_func() in the IPI on CPU ``c`` (a lazy CPU switches to init_mm)."""
        wl = self.wl
        sched = wl.k.sched
        saved = sched.cpu
        sched.run_on(c)
        if mm is None:
            self.loaded[c] = None
        else:
            self._asid_set(c, mm)
        if wl.tp("tlb_flush"):
            wl.emit_ctx(HARDIRQ, 1, "tlb_flush", reason, pages)
        sched.run_on(saved)
