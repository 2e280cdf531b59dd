"""The tracing map alone (tracing_map.py, kernel/trace/tracing_map.c): element
creation and the size limit (hits and drops), lookups, clearing, and
tracing_map_sort_entries() with sum and key fields, C-typed key compares and a
secondary sort key."""

from __future__ import annotations

from tracefs_sim.kernel.tracing_map import (
    TRACING_MAP_BITS_MIN,
    TracingMap,
    cmp_none,
    cmp_num,
    cmp_string,
)


def _map(bits: int = TRACING_MAP_BITS_MIN) -> TracingMap[str]:
    m: TracingMap[str] = TracingMap(bits, lambda: "private")
    m.add_sum_field()                    # field 0: hitcount
    m.add_sum_field()                    # field 1: a value
    m.add_key_field(0, cmp_num(4, True))  # field 2: an s32 key
    return m


def test_insert_creates_up_to_max_elts_then_drops() -> None:
    m = _map()
    assert m.max_elts == 128
    for i in range(128):
        elt = m.insert((i,))
        assert elt is not None and elt.private == "private"
    assert m.insert((1000,)) is None             # full: a drop, no hit
    assert m.insert((5,)) is not None            # an existing key still hits
    assert (m.hits, m.drops, len(m.elts)) == (129, 1, 128)
    assert m.lookup((1000,)) is None and m.hits == 129       # lookups do not hit
    m.clear()
    assert (m.hits, m.drops, len(m.elts)) == (0, 0, 0)


def test_elements_get_sums_and_var_slots() -> None:
    m = _map()
    assert m.add_var() == 0 and m.add_var() == 1
    elt = m.insert((7,))
    assert elt is not None
    assert elt.sums == [0, 0] and elt.vars == [0, 0] and elt.var_set == [False, False]
    assert m.insert((7,)) is elt


def _fill(m: TracingMap[str], rows: list[tuple[int, int, int]]) -> None:
    for key, hits, val in rows:
        elt = m.insert((key,))
        assert elt is not None
        elt.sums[0] += hits
        elt.sums[1] += val


def test_sort_by_sum_then_secondary_key_descending() -> None:
    m = _map()
    _fill(m, [(3, 2, 10), (1, 1, 99), (2, 2, 5), (-4, 1, 7)])
    order = [e.key[0] for e in m.sort_entries([(0, False), (2, True)])]
    # hitcount ascending; equal hitcounts by the key, descending
    assert order == [1, -4, 3, 2]
    assert [e.key[0] for e in m.sort_entries([(1, True)])] == [1, 3, -4, 2]


def test_key_sort_compares_the_c_type() -> None:
    m = _map()
    # 0xFFFFFFFF is -1 as an s32: it sorts first, not last
    _fill(m, [(5, 1, 0), (0xFFFFFFFF, 1, 0), (0, 1, 0)])
    assert [e.key[0] for e in m.sort_entries([(2, False)])] == [0xFFFFFFFF, 0, 5]
    u32 = cmp_num(4, False)
    assert u32(0xFFFFFFFF) == 0xFFFFFFFF and cmp_num(4, True)(0xFFFFFFFF) == -1
    assert cmp_num(1, True)(0x80) == -128


def test_string_and_stacktrace_keys_and_stable_ties() -> None:
    m: TracingMap[None] = TracingMap(TRACING_MAP_BITS_MIN, lambda: None)
    m.add_sum_field()
    m.add_key_field(0, cmp_string)
    m.add_key_field(1, cmp_none)
    for name, stack in ((b"sshd", (3,)), (b"bash", (1,)), (b"cat", (2,)), (b"bash", (0,))):
        assert m.insert((name, stack)) is not None
    assert [e.key[0] for e in m.sort_entries([(1, False)])] == [b"bash", b"bash", b"cat", b"sshd"]
    # stack traces compare equal: insertion order stays
    assert [e.key[1] for e in m.sort_entries([(2, False)])] == [(3,), (1,), (2,), (0,)]
