"""The tracing map (kernel/trace/tracing_map.c): the storage under a histogram.

A map holds at most ``2**bits`` elements, one per distinct key.  An element keeps the
sums (hitcount and the values), the variables with their "set" bits, and private data
its user allocates when the element is created (``elt_alloc``, the kernel's
``tracing_map_ops.elt_alloc``/``elt_init``: the hist code keeps the comm for
``.execname`` and the save() values there).  A key is a tuple of the key fields'
values; it stands for the kernel's compound key bytes.

The user declares its fields in order (tracing_map_add_sum_field(),
tracing_map_add_key_field() with the key's compare function, tracing_map_add_var());
sort keys name those field indices, so sort_entries() orders the elements without
knowing what a histogram is.  The map knows nothing of events or hist_fields.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

# tracing_map.h
TRACING_MAP_BITS_DEFAULT = 11
TRACING_MAP_BITS_MAX = 17
TRACING_MAP_BITS_MIN = 7
TRACING_MAP_KEYS_MAX = 3
TRACING_MAP_VALS_MAX = 3
TRACING_MAP_VARS_MAX = 16
TRACING_MAP_SORT_KEYS_MAX = 2

P = TypeVar("P")

# One key field's value in the key tuple: a number, a string's bytes, a stack trace.
KeyValue = int | bytes | tuple[int, ...]
# A variable's value: a u64, or a string variable's bytes (the kernel keeps a pointer).
MapValue = int | bytes
# A compare function as a Python sort key: what the C compare function orders by.
KeyCmp = Callable[[KeyValue], int | bytes]


def cmp_num(size: int, signed: bool) -> KeyCmp:
    """tracing_map_cmp_num(): the key compared as its field's C integer type."""
    bits = size * 8
    mask = (1 << bits) - 1
    sign = 1 << (bits - 1)

    def typed(v: KeyValue) -> int:
        assert isinstance(v, int)
        v &= mask
        if signed and v & sign:
            v -= 1 << bits
        return v
    return typed


def cmp_string(v: KeyValue) -> bytes:
    """tracing_map_cmp_string(): strcmp of the key's bytes."""
    assert isinstance(v, bytes)
    return v


def cmp_none(v: KeyValue) -> int:
    """tracing_map_cmp_none(): every element compares equal (stack trace keys)."""
    return 0


@dataclass(frozen=True, slots=True)
class MapField:
    """``struct tracing_map_field``: a sum (``idx`` into ``Elt.sums``) or a key
    (``idx`` into the key tuple, compared through ``cmp``)."""

    is_key: bool
    idx: int
    cmp: KeyCmp | None = None


class Elt(Generic[P]):
    """``struct tracing_map_elt``: sums, variables and the user's private data."""

    __slots__ = ("key", "sums", "vars", "var_set", "private")

    def __init__(self, key: tuple[KeyValue, ...], n_sums: int, n_vars: int, private: P) -> None:
        self.key = key
        self.sums = [0] * n_sums
        self.vars: list[MapValue] = [0] * n_vars
        self.var_set = [False] * n_vars
        self.private = private


class TracingMap(Generic[P]):
    """``struct tracing_map``: at most ``2**bits`` elements; ``hits`` and ``drops``."""

    def __init__(self, bits: int, elt_alloc: Callable[[], P]) -> None:
        self.bits = bits
        self.max_elts = 1 << bits
        self.elt_alloc = elt_alloc
        self.fields: list[MapField] = []
        self.n_sums = 0
        self.n_vars = 0
        self.elts: dict[tuple[KeyValue, ...], Elt[P]] = {}
        self.hits = 0
        self.drops = 0

    # ------------------------------------------------------------------ fields
    def add_sum_field(self) -> int:
        """tracing_map_add_sum_field(): the field index (the sum slot is n_sums)."""
        self.fields.append(MapField(False, self.n_sums))
        self.n_sums += 1
        return len(self.fields) - 1

    def add_key_field(self, pos: int, cmp: KeyCmp) -> int:
        """tracing_map_add_key_field(): ``pos`` is the key's place in the key tuple."""
        self.fields.append(MapField(True, pos, cmp))
        return len(self.fields) - 1

    def add_var(self) -> int:
        """tracing_map_add_var(): the variable's slot in every element."""
        self.n_vars += 1
        return self.n_vars - 1

    # ------------------------------------------------------------------ elements
    def insert(self, key: tuple[KeyValue, ...]) -> Elt[P] | None:
        """tracing_map_insert(): the element of ``key``, created if there is room;
        None (a drop) when the map is full."""
        elt = self.elts.get(key)
        if elt is None:
            if len(self.elts) >= self.max_elts:
                self.drops += 1
                return None
            elt = Elt(key, self.n_sums, self.n_vars, self.elt_alloc())
            self.elts[key] = elt
        self.hits += 1
        return elt

    def lookup(self, key: tuple[KeyValue, ...]) -> Elt[P] | None:
        """tracing_map_lookup(): no insertion, no hit."""
        return self.elts.get(key)

    def clear(self) -> None:
        """tracing_map_clear()."""
        self.elts.clear()
        self.hits = 0
        self.drops = 0

    # ------------------------------------------------------------------ sorting
    def _sort_value(self, field_idx: int) -> Callable[[Elt[P]], int | bytes]:
        f = self.fields[field_idx]
        idx = f.idx
        if f.is_key:
            cmp = f.cmp
            assert cmp is not None
            return lambda e: cmp(e.key[idx])
        return lambda e: e.sums[idx]

    def sort_entries(self, sort_keys: list[tuple[int, bool]]) -> list[Elt[P]]:
        """tracing_map_sort_entries(): by the primary key (field index, descending),
        then each run of entries equal on it by the secondary key (sort_secondary()).
        Entries that compare equal keep insertion order (the kernel's heapsort over
        hash slots leaves them in an order not reproduced here)."""
        entries = list(self.elts.values())
        if len(entries) < 2:
            return entries
        idx0, desc0 = sort_keys[0]
        primary = self._sort_value(idx0)
        entries.sort(key=primary, reverse=desc0)
        if len(sort_keys) < 2:
            return entries
        idx1, desc1 = sort_keys[1]
        secondary = self._sort_value(idx1)
        out: list[Elt[P]] = []
        i = 0
        while i < len(entries):
            j = i + 1
            while j < len(entries) and primary(entries[j]) == primary(entries[i]):
                j += 1
            group = entries[i:j]
            if len(group) > 1:
                group.sort(key=secondary, reverse=desc1)
            out.extend(group)
            i = j
        return out
