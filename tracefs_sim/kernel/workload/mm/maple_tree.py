"""An mm's VMA tree (lib/maple_tree.c) as its tracepoints show it: ma_read, ma_write and
ma_op with the node, its range and the range written.

The tree stores every VMA and every gap between them as a range.  The model keeps the
leaves (maple_leaf_64: up to 16 ranges each) as (node, min, max) and the tree's range
boundaries; a write finds its leaf, counts the ranges the leaf holds after it and picks
the store 6.12 makes: an exact fit (same ranges), a slot store or an append (in place), a
node store (RCU mode: a new node replaces the leaf), a split (more than 16 ranges) or a
rebalance (fewer than 6 in a non-root leaf: merged with its neighbour), or a spanning
store when the write crosses the leaf's end.  A new node is a new maple_node, so its
address changes as the kernel's does.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

from .mm_types import ULONG_MAX

if TYPE_CHECKING:
    from .. import Workload

LEAF_SLOTS = 16              # mt_slots[maple_leaf_64]
LEAF_MIN = 6                 # mt_min_slots[maple_leaf_64]
SPLIT_AT = 10                # ranges in the left node of a split (mab_calc_split leaves room)
MAPLE_LEAF_64 = 1
MAPLE_NODE_ALIGN = 256


class Leaf:
    __slots__ = ("node", "min", "max")

    def __init__(self, node: int, lo: int, hi: int) -> None:
        self.node = node
        self.min = lo
        self.max = hi


class MapleTree:
    """mm->mm_mt of one mm."""

    def __init__(self, wl: Workload, addr: int) -> None:
        self.wl = wl
        self.addr = addr
        self.leaves: list[Leaf] = []
        self.mins: list[int] = []
        self.bounds: list[int] = [0]

    # ------------------------------------------------------------------ nodes
    def _new_node(self) -> int:
        """A maple_node from its slab, as an encoded leaf enode (mt_mk_node())."""
        raw = self.wl.slab.alloc_obj(MAPLE_NODE_ALIGN * 2)
        node = (raw + MAPLE_NODE_ALIGN - 1) & ~(MAPLE_NODE_ALIGN - 1)
        return node | (MAPLE_LEAF_64 << 3) | 4

    def _set(self, leaves: list[Leaf]) -> None:
        self.leaves = leaves
        self.mins = [lf.min for lf in leaves]

    def _leaf(self, index: int) -> int:
        return bisect.bisect_right(self.mins, index) - 1

    @staticmethod
    def _count(lo: int, hi: int, bounds: list[int]) -> int:
        """The ranges a node spanning [lo, hi] holds."""
        return bisect.bisect_right(bounds, hi) - bisect.bisect_right(bounds, lo) + 1

    def _partition(self, lo: int, hi: int, bounds: list[int]) -> list[Leaf]:
        """New leaves for [lo, hi], SPLIT_AT ranges each."""
        cuts = [b for b in bounds if lo < b <= hi]
        out: list[Leaf] = []
        start = lo
        while len(cuts) >= LEAF_SLOTS:
            nxt = cuts[SPLIT_AT - 1]
            out.append(Leaf(self._new_node(), start, nxt - 1))
            start = nxt
            cuts = cuts[SPLIT_AT:]
        out.append(Leaf(self._new_node(), start, hi))
        return out

    # ------------------------------------------------------------------ events
    def _fn(self, name: str) -> int:
        return self.wl.k.mem.kernel_string(name)

    def _write(self, fn: str, leaf: Leaf | None, index: int, last: int, piv: int, entry: int) -> None:
        lo, hi, node = (leaf.min, leaf.max, leaf.node) if leaf is not None else (0, ULONG_MAX, 0)
        self.wl.emit("ma_write", self._fn(fn), lo, hi, index, last, piv, entry, node)

    def _op(self, fn: str, leaf: Leaf, index: int, last: int) -> None:
        self.wl.emit("ma_op", self._fn(fn), leaf.min, leaf.max, index, last, leaf.node)

    def read(self, fn: str, index: int) -> None:
        """mt_find()/mtree_load(): ma_read of a fresh maple state (no node yet)."""
        if self.wl.tp("ma_read"):
            self.wl.emit("ma_read", self._fn(fn), 0, ULONG_MAX, index, index, 0)

    # ------------------------------------------------------------------ writes
    def store(self, index: int, last: int, entry: int, bounds: list[int],
              fn: str = "mas_store_prealloc") -> None:
        """Store ``entry`` (a vm_area_struct, or 0 for a gap) at [index, last]; ``bounds``
        are the tree's range boundaries after the store.  ``fn`` is the entry point that
        traces the write first (mas_store_prealloc(); "" for mas_store_gfp(), which
        traces only in the store it picks)."""
        traced = bool(self.wl.tp("ma_write") or self.wl.tp("ma_op"))
        traced_fn = traced and bool(fn)
        if not self.leaves:
            if traced_fn:
                self._write(fn, None, index, last, 0, entry)
            self._set([Leaf(self._new_node(), 0, ULONG_MAX)])
            self.bounds = bounds
            return
        i = self._leaf(index)
        leaf = self.leaves[i]
        if last > leaf.max or (last == leaf.max and not entry and last != ULONG_MAX):
            j = self._leaf(last)
            if traced:
                self._write("mas_is_span_wr", leaf, index, last, leaf.max, entry)
                if fn:
                    self._write(fn, leaf, index, last, 0, entry)
                self._op("mas_wr_spanning_store", leaf, index, last)
            j = max(j, min(i + 1, len(self.leaves) - 1))
            new = self._partition(leaf.min, self.leaves[j].max, bounds)
            self._set(self.leaves[:i] + new + self.leaves[j + 1:])
            self.bounds = bounds
            return
        if traced_fn:
            self._write(fn, leaf, index, last, 0, entry)
        before = self._count(leaf.min, leaf.max, self.bounds)
        after = self._count(leaf.min, leaf.max, bounds)
        old = self.bounds
        self.bounds = bounds
        if after > LEAF_SLOTS:
            if traced:
                self._write("mas_wr_bnode", leaf, index, last, 0, entry)
                self._op("mas_split", leaf, index, last)
            self._set(self.leaves[:i] + self._partition(leaf.min, leaf.max, bounds) + self.leaves[i + 1:])
            return
        if after < LEAF_MIN and len(self.leaves) > 1:
            if traced:
                self._write("mas_wr_bnode", leaf, index, last, 0, entry)
                self._op("mas_rebalance", leaf, index, last)
            k = i + 1 if i + 1 < len(self.leaves) else i - 1
            a, b = min(i, k), max(i, k)
            merged = self._partition(self.leaves[a].min, self.leaves[b].max, bounds)
            self._set(self.leaves[:a] + merged + self.leaves[b + 1:])
            return
        exact = after == before and index in old and (last + 1 in old or last == ULONG_MAX)
        if exact:
            return
        tail = bisect.bisect_right(old, index) == bisect.bisect_right(old, leaf.max)
        if after == before + 1 and tail or after == before + 2 and tail:
            if traced:
                self._write("mas_wr_append", leaf, index, last, after - 1, entry)
        elif after == before:
            if traced:
                self._write("mas_wr_slot_store", leaf, index, last, 0, entry)
        else:
            leaf.node = self._new_node()
            if traced:
                self._write("mas_wr_node_store", leaf, index, last, 0, entry)

    def bulk_store(self, index: int, last: int, entry: int) -> None:
        """vma_iter_bulk_store() → mas_store() into a duplicated tree: the ranges are
        there already (an exact fit), so only mas_store's own event."""
        if self.wl.tp("ma_write"):
            self._write("mas_store", self.leaves[self._leaf(index)], index, last, 0, entry)

    def dup(self, other: MapleTree) -> None:
        """__mt_dup(): the same shape in new nodes."""
        self._set([Leaf(self._new_node(), lf.min, lf.max) for lf in other.leaves])
        self.bounds = list(other.bounds)

    def destroy(self) -> None:
        """__mt_destroy()."""
        self._set([])
        self.bounds = [0]
