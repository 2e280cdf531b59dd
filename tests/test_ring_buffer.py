"""Ring buffer: binary layout (checked by an independent decoder and against bytes of a
real 6.12 kernel), overwrite/producer-consumer accounting, readers, sizes."""

from __future__ import annotations

import errno
import random
import struct

import pytest

from tracefs_sim.kernel.errors import KernelError
from tracefs_sim.kernel.ring_buffer import RingBuffer

MISSED_EVENTS = 1 << 31
MISSED_STORED = 1 << 30


def decode_page(buf: bytes) -> dict:
    """Minimal libtraceevent-style decoder of one sub-buffer (kbuffer.c logic)."""
    ts, commit = struct.unpack_from("<QQ", buf, 0)
    size = commit & ~(3 << 30) & 0xFFFFFFFF
    events = []
    pos = 16
    end = 16 + size
    while pos < end:
        (w,) = struct.unpack_from("<I", buf, pos)
        tl, delta = w & 31, w >> 5
        if tl == 29:
            if delta == 0:
                events.append(("null", ts, None))
                break
            (a0,) = struct.unpack_from("<I", buf, pos + 4)
            events.append(("pad", ts, a0))
            pos += 4 + a0
        elif tl == 30:
            (a0,) = struct.unpack_from("<I", buf, pos + 4)
            ts += (a0 << 27) + delta
            events.append(("extend", ts, (a0 << 27) + delta))
            pos += 8
        elif tl == 31:
            (a0,) = struct.unpack_from("<I", buf, pos + 4)
            ts = (a0 << 27) | delta
            events.append(("stamp", ts, None))
            pos += 8
        elif tl == 0:
            (a0,) = struct.unpack_from("<I", buf, pos + 4)
            ts += delta
            events.append(("data0", ts, bytes(buf[pos + 8:pos + 4 + a0])))
            pos += 4 + a0
        else:
            ts += delta
            events.append((tl, ts, bytes(buf[pos + 4:pos + 4 + tl * 4])))
            pos += 4 + tl * 4
    missed = None
    if commit & MISSED_STORED:
        (missed,) = struct.unpack_from("<Q", buf, end)
    return {"ts": struct.unpack_from("<Q", buf, 0)[0], "commit": commit, "size": size,
            "events": events, "missed": missed, "tail": bytes(buf[end + (8 if missed else 0):])}


def data_events(page: dict) -> list:
    return [e for e in page["events"] if e[0] not in ("pad", "extend", "stamp", "null")]


def drain_pages(rb: RingBuffer, cpu: int) -> list[dict]:
    out = []
    while (p := rb.read_page(cpu)) is not None:
        out.append(decode_page(p))
    return out


# ---------------------------------------------------------------------- sizes (golden 18)
def test_sizes_match_golden_buffer_size_kb():
    rb = RingBuffer(2, 1)                       # boot: minimal buffer
    assert rb.nr_pages(0) == 2
    assert rb.size_bytes(0) >> 10 == 7          # "7 (expanded: 1408)"
    rb.resize(1408 << 10)
    assert rb.size_bytes(0) >> 10 == 1410 and rb.nr_pages(1) == 354
    rb.resize(100 << 10)
    assert [rb.size_bytes(c) >> 10 for c in (0, 1)] == [103, 103]
    rb.resize(200 << 10, cpu=1)
    assert rb.size_bytes(0) >> 10 == 103 and rb.size_bytes(1) >> 10 == 203
    rb.resize(1 << 10)
    assert rb.size_bytes(0) >> 10 == 7


def test_subbuf_size_rounding_and_errors():
    rb = RingBuffer(1, 1408 << 10)
    rb.set_subbuf_size(8)
    assert rb.subbuf_size == 8192 and rb.subbuf_order == 1 and rb.capacity == 8176
    assert rb.nr_pages(0) == 177                 # DIV_ROUND_UP(4080*354, 8176)
    rb.set_subbuf_size(3)
    assert rb.subbuf_size == 4096 and rb.subbuf_order == 0
    rb.set_subbuf_size(5)
    assert rb.subbuf_size == 8192
    rb.set_subbuf_size(9)
    assert rb.subbuf_size == 16384
    rb.set_subbuf_size(512)
    assert rb.subbuf_order == 7
    for bad in (0, 513, 1 << 60):
        with pytest.raises(KernelError) as ei:
            rb.set_subbuf_size(bad)
        assert ei.value.errno == errno.EINVAL
    assert rb.subbuf_order == 7
    with pytest.raises(KernelError):
        rb.set_subbuf_order(-1)


def test_subbuf_change_discards_data_and_pages_are_bigger():
    rb = RingBuffer(1, 64 << 10)
    for i in range(100):
        rb.write(0, 1000 + i, b"a" * 20)
    rb.set_subbuf_size(8)
    assert rb.empty(0)
    assert rb.write(0, 5000, b"b" * 16)
    page = rb.read_page(0)
    assert len(page) == 8192
    assert data_events(decode_page(page)) == [(4, 5000, b"b" * 16)]


# ---------------------------------------------------------------------- encoding
@pytest.mark.parametrize(
    "n, type_len, paylen",
    [(0, 1, 4), (1, 1, 4), (4, 1, 4), (5, 3, 12), (8, 3, 12), (9, 3, 12), (12, 3, 12),
     (13, 4, 16), (16, 4, 16), (110, 28, 112), (112, 28, 112), (113, 0, 116), (200, 0, 200)],
)
def test_event_length_encoding(n, type_len, paylen):
    rb = RingBuffer(1, 8192)
    payload = bytes(range(n)) if n else b""
    assert rb.write(0, 777, payload)
    buf = rb.read_page(0)
    (w,) = struct.unpack_from("<I", buf, 16)
    assert w & 31 == type_len and w >> 5 == 0
    if type_len == 0:
        assert struct.unpack_from("<I", buf, 20)[0] == paylen + 4
    ev = data_events(decode_page(buf))
    assert len(ev) == 1 and ev[0][1] == 777
    assert ev[0][2][:n] == payload and len(ev[0][2]) == paylen
    # What the reader API reports is the aligned length too.
    rb.write(0, 778, payload)
    ts, page, off, length = rb.peek(0)
    assert (ts, length, bytes(page[off:off + n])) == (778, paylen, payload)


def test_first_event_delta_zero_and_page_timestamp():
    rb = RingBuffer(1, 8192)
    rb.write(0, 10_000, b"x" * 16)
    rb.write(0, 10_250, b"y" * 16)
    buf = rb.read_page(0)
    p = decode_page(buf)
    assert p["ts"] == 10_000 and p["commit"] == 40
    assert struct.unpack_from("<I", buf, 16)[0] >> 5 == 0
    assert struct.unpack_from("<I", buf, 36)[0] >> 5 == 250
    assert [e[1] for e in data_events(p)] == [10_000, 10_250]


def test_time_extend():
    rb = RingBuffer(1, 8192)
    big = (5 << 27) + 12345
    rb.write(0, 100, b"a" * 8)
    rb.write(0, 100 + big, b"b" * 8)
    rb.write(0, 100 + big + 7, b"c" * 8)
    assert [t for t, *_ in rb.iter_cpu(0)] == [100, 100 + big, 100 + big + 7]
    p = decode_page(rb.read_page(0))
    kinds = [e[0] for e in p["events"]]
    assert kinds == [3, "extend", 3, 3]
    assert p["events"][1][2] == big
    assert [e[1] for e in data_events(p)] == [100, 100 + big, 100 + big + 7]
    assert p["size"] == 16 + 8 + 16 + 16


def test_clock_going_backwards_stores_zero_extend():
    rb = RingBuffer(1, 8192)
    rb.write(0, 1000, b"a" * 4)
    rb.write(0, 900, b"b" * 4)
    p = decode_page(rb.read_page(0))
    assert [e[0] for e in p["events"]] == [1, "extend", 1]
    assert p["events"][1][2] == 0
    assert [e[1] for e in data_events(p)] == [1000, 1000]


def test_absolute_timestamps():
    rb = RingBuffer(1, 8192)
    rb.set_time_stamp_abs(True)
    assert rb.max_event_size() == 4064
    rb.write(0, 5 << 30, b"a" * 4)
    rb.write(0, (5 << 30) + 3, b"b" * 4)
    p = decode_page(rb.read_page(0))
    assert [e[0] for e in p["events"]] == ["stamp", 1, "stamp", 1]
    assert [e[1] for e in data_events(p)] == [5 << 30, (5 << 30) + 3]


def test_large_events_and_max_size():
    rb = RingBuffer(1, 64 << 10)
    assert rb.max_event_size() == 4072
    assert rb.reserve(0, 4073, 1) == -1
    payload = bytes(i & 0xFF for i in range(4072))
    assert rb.write(0, 1, payload)
    ts, page, off, length = rb.consume(0)
    assert length == 4072 and bytes(page[off:off + 4072]) == payload


def test_page_end_padding_and_real_end():
    rb = RingBuffer(1, 64 << 10)
    n = 0
    while rb.cpu_buffers[0].tail_idx == 0:
        rb.write(0, 100 + n, b"z" * 100)     # 104-byte events: 39 fit in 4080
        n += 1
    assert n == 40                           # the 40th went to the next page
    first = rb.cpu_buffers[0].ring[0]
    assert first.real_end == 39 * 104 and first.commit == 4080
    raw = rb.read_page(0)
    p = decode_page(raw)
    assert p["commit"] == 39 * 104            # real_end, padding excluded
    assert len(data_events(p)) == 39 and set(p["tail"]) == {0}
    # In the live page the padding is a discarded event: delta 1, array[0] = rest - 4.
    w, a0 = struct.unpack_from("<II", first.data, 16 + 39 * 104)
    assert (w & 31, w >> 5, a0) == (29, 1, 4080 - 39 * 104 - 4)
    assert [t for t, *_ in rb.iter_cpu(0)] == [100 + 39]


def test_null_padding_when_less_than_8_bytes_left():
    rb = RingBuffer(1, 64 << 10)
    cb = rb.cpu_buffers[0]
    rb.write(0, 0, b"q" * 16)                # 20 bytes
    for i in range(507):                     # + 507 * 8 = 4076: 4 bytes left
        rb.write(0, 1 + i, b"")
    assert cb.write == 4076
    rb.write(0, 999, b"abc")
    assert cb.tail_idx == 1
    # Null padding (type 29, delta 0) beyond commit; write/commit/real_end = 4076.
    assert cb.ring[0].commit == 4076 and cb.ring[0].real_end == 4076
    assert struct.unpack_from("<I", cb.ring[0].data, 16 + 4076)[0] == 29
    assert rb.bytes(0) == 4076 + 8
    evs = list(rb.iter_cpu(0))
    assert len(evs) == 509 and evs[-1][0] == 999
    p = decode_page(rb.read_page(0))
    assert p["commit"] == 4076 and len(data_events(p)) == 508


# ---------------------------------------------------------------------- golden bytes (20)
GOLDEN_MARKER = bytes.fromhex(
    "85df55630100000020000000000000000700000005000000bb000000ff77e3a9ffffffff41424344454647480a")
GOLDEN_SCHED = bytes.fromhex(
    "c7ec021f010000001001000000000000100000003601010200000000737761707065722f3000000000000000000000"
    "007800000000000000000000007263755f707265656d70740000000000120000007800000030124e0036010102120000"
    "007263755f707265656d707400000000001200000078000000800000000000000073680000000000000000000000000000"
    "a9000000780000001067c00336010102a900000073680000000000000000000000000000a90000007800000002000000"
    "00000000737761707065722f30000000000000000000000078000000508624003601010200000000737761707065722f"
    "30000000000000000000000078000000000000000000000073680000000000000000000000000000a900000078")


def test_golden_single_marker_page():
    rb = RingBuffer(2, 1408 << 10)
    ts = struct.unpack_from("<Q", GOLDEN_MARKER, 0)[0]
    payload = GOLDEN_MARKER[20:20 + 26]       # print entry: 8 + ip 8 + "ABCDEFGH\n\0"
    assert rb.write(0, ts, payload)
    page = rb.read_page(0, length=300)       # `head -c 300 trace_pipe_raw`
    assert len(page) == 4096
    assert page[:300] == GOLDEN_MARKER + bytes(300 - len(GOLDEN_MARKER))


def test_golden_sched_switch_page_read_with_300_byte_buffer():
    rb = RingBuffer(2, 1408 << 10)
    ts = struct.unpack_from("<Q", GOLDEN_SCHED, 0)[0]
    for k in range(4):
        pos = 16 + 68 * k
        (w,) = struct.unpack_from("<I", GOLDEN_SCHED, pos)
        ts += w >> 5
        assert rb.write(0, ts, GOLDEN_SCHED[pos + 4:pos + 68])
    assert rb.write(0, ts + 5, b"\x01" * 64)  # a 5th event the 300-byte read cannot take
    page = rb.read_page(0, length=300)
    assert page[:300] == GOLDEN_SCHED + bytes(300 - len(GOLDEN_SCHED))
    assert rb.read_events(0) == 4 and rb.entries(0) == 1
    rest = decode_page(rb.read_page(0))
    assert rest["ts"] == ts and data_events(rest) == [(16, ts + 5, b"\x01" * 64)]


# ---------------------------------------------------------------------- overwrite / drops
def test_overwrite_drops_oldest_pages_and_counts_overrun():
    rb = RingBuffer(1, 1)                    # 2 pages + reader page
    per_page = 4080 // 20                    # 204 events of 16 bytes per page
    total = per_page * 5 + 7
    for i in range(total):
        assert rb.write(0, 1000 + i, struct.pack("<QQ", i, 0))
    assert rb.overrun(0) == per_page * 4
    assert rb.entries(0) == per_page + 7
    assert rb.entries(0) + rb.overrun(0) == total
    assert rb.dropped_events(0) == 0
    seq = [struct.unpack_from("<Q", pg, off)[0] for _, pg, off, _ in rb.iter_cpu(0)]
    assert seq == list(range(per_page * 4, total))
    assert rb.oldest_event_ts(0) == 1000 + per_page * 4
    # consumer sees the loss once, with the first event after it
    ts, page, off, _ = rb.peek(0)
    assert rb.lost_events(0) == per_page * 4 and ts == 1000 + per_page * 4
    rb.consume(0)
    assert rb.lost_events(0) == 0
    assert rb.read_events(0) == 1


def test_read_page_missed_events_flags():
    rb = RingBuffer(1, 1)
    for i in range(204 * 3):                 # 16-byte payloads fill pages exactly
        rb.write(0, 10 + i, b"m" * 16)
    p = decode_page(rb.read_page(0))
    assert p["commit"] == 4080 | MISSED_EVENTS  # full page: no room to store the count
    assert p["missed"] is None and len(data_events(p)) == 204
    assert data_events(p)[0][1] == 10 + 204
    nxt = decode_page(rb.read_page(0))
    assert not nxt["commit"] & MISSED_EVENTS


def test_read_page_missed_count_stored_after_real_end():
    rb = RingBuffer(1, 1)
    for i in range(39 * 3):                  # 104-byte events: 39 per page, 24 bytes padding
        rb.write(0, 10 + i, b"m" * 100)
    assert rb.overrun(0) == 39
    raw = rb.read_page(0)
    p = decode_page(raw)
    assert p["commit"] == 39 * 104 | MISSED_EVENTS | MISSED_STORED
    assert p["missed"] == 39 and set(p["tail"]) == {0}
    assert [e[1] for e in data_events(p)] == [10 + 39 + k for k in range(39)]
    assert rb.lost_events(0) == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_read_page_loss_accounting_invariant(seed):
    """Every event is either seen by the page reader or counted in a stored missed
    count that equals the gap in sequence numbers (104-byte events leave room)."""
    rng = random.Random(seed)
    rb = RingBuffer(1, 3 * 4080)
    seq = 0
    seen: list[int] = []
    missed_total = pending = padding_only = 0
    for _ in range(200):
        for _ in range(rng.randrange(0, 150)):
            assert rb.write(0, 1000 + seq * 3, struct.pack("<Q", seq) + bytes(92))
            seq += 1
        for _ in range(rng.randrange(0, 4)):
            raw = rb.read_page(0)
            if raw is None:
                break
            p = decode_page(raw)
            ids = [struct.unpack_from("<Q", e[2])[0] for e in data_events(p)]
            assert [e[1] for e in data_events(p)] == [1000 + i * 3 for i in ids]
            if p["commit"] & MISSED_EVENTS:
                assert p["commit"] & MISSED_STORED
                pending += p["missed"]
                missed_total += p["missed"]
            if not ids:
                # Kernel quirk: the rest of a partly copied page is only padding.
                assert [e[0] for e in p["events"]] == ["pad"]
                padding_only += 1
                continue
            assert ids[0] - (seen[-1] + 1 if seen else 0) == pending
            pending = 0
            assert ids == list(range(ids[0], ids[0] + len(ids)))
            seen += ids
    assert rb.entries(0) + rb.overrun(0) + rb.read_events(0) == seq
    while (raw := rb.read_page(0)) is not None:
        p = decode_page(raw)
        missed_total += p["missed"] or 0
        seen += [struct.unpack_from("<Q", e[2])[0] for e in data_events(p)]
    assert len(seen) + missed_total == seq == rb.read_events(0) + rb.overrun(0)
    assert rb.bytes(0) == 0 and rb.entries(0) == 0
    assert missed_total


@pytest.mark.parametrize("seed", [4, 5])
def test_consumer_loss_accounting_invariant(seed):
    """Same for the event consumer (trace_pipe): lost_events() == gap."""
    rng = random.Random(seed)
    rb = RingBuffer(1, 2 * 4080)
    seq = 0
    last = -1
    lost_total = 0
    for _ in range(300):
        for _ in range(rng.randrange(0, 120)):
            rb.write(0, seq, struct.pack("<Q", seq) + bytes(rng.randrange(0, 60)))
            seq += 1
        for _ in range(rng.randrange(0, 150)):
            ev = rb.peek(0)
            if ev is None:
                break
            ts, page, off, _ = ev
            ident = struct.unpack_from("<Q", page, off)[0]
            assert ts == ident
            assert ident - last - 1 == rb.lost_events(0)
            lost_total += rb.lost_events(0)
            rb.consume(0)
            last = ident
    assert rb.read_events(0) + lost_total + rb.entries(0) <= seq
    assert rb.entries(0) + rb.overrun(0) + rb.read_events(0) == seq


def test_producer_consumer_mode_drops_new_events():
    rb = RingBuffer(1, 1, overwrite=False)
    written = 0
    for i in range(204 * 5):
        written += rb.write(0, 100 + i, struct.pack("<QQ", i, 0))
    # two ring pages + the (empty) reader page cannot be used before a read: 2 pages
    assert written == 204 * 2
    assert rb.dropped_events(0) == 204 * 3
    assert rb.overrun(0) == 0 and rb.entries(0) == 408
    seq = [struct.unpack_from("<Q", pg, off)[0] for _, pg, off, _ in rb.iter_cpu(0)]
    assert seq == list(range(408))
    # reading frees a page: writing resumes
    assert rb.read_page(0) is not None
    assert rb.write(0, 99_999, b"x" * 16)


def test_producer_consumer_padding_on_failed_event():
    rb = RingBuffer(1, 1, overwrite=False)
    for i in range(204 * 2 - 1):
        rb.write(0, i, b"x" * 16)
    assert not rb.write(0, 10_000, b"y" * 100)    # 104 bytes do not fit in 20 left
    cb = rb.cpu_buffers[0]
    assert cb.write == 4080 and rb.dropped_events(0) == 1
    assert not rb.write(0, 10_001, b"")           # nothing fits any more
    assert rb.dropped_events(0) == 2


# ---------------------------------------------------------------------- readers
def test_consume_and_iter_and_counters():
    rb = RingBuffer(2, 64 << 10)
    for i in range(500):
        rb.write(i % 2, 1000 + i, struct.pack("<I", i))
    assert rb.entries(0) == 250 and rb.entries(1) == 250 and rb.entries_total() == 500
    assert [t for t, *_ in rb.iter_cpu(1)][:3] == [1001, 1003, 1005]
    got = []
    while (ev := rb.consume(0)) is not None:
        ts, page, off, length = ev
        got.append((ts, struct.unpack_from("<I", page, off)[0], length))
    assert got == [(1000 + 2 * k, 2 * k, 4) for k in range(250)]
    assert rb.read_events(0) == 250 and rb.entries(0) == 0 and rb.empty(0)
    assert not rb.empty() and not rb.empty(1)
    assert rb.bytes(0) == 0 and rb.bytes(1) == 250 * 8
    assert rb.peek(0) is None and rb.read_page(0) is None


def test_iter_after_partial_consume_uses_read_stamp():
    rb = RingBuffer(1, 64 << 10)
    for i in range(10):
        rb.write(0, 100 + i * 10, b"e" * 4)
    for _ in range(3):
        rb.consume(0)
    assert [t for t, *_ in rb.iter_cpu(0)] == [130 + 10 * k for k in range(7)]


def test_read_page_copy_path_when_writer_on_page_and_full_flag():
    rb = RingBuffer(1, 64 << 10)
    for i in range(3):
        rb.write(0, 50 + i, b"w" * 16)
    assert rb.read_page(0, full=True) is None
    p = decode_page(rb.read_page(0))
    assert p["commit"] == 60 and [e[1] for e in data_events(p)] == [50, 51, 52]
    assert rb.read_page(0) is None and rb.empty(0)
    rb.write(0, 60, b"v" * 16)                # writer continues on the reader page
    q = decode_page(rb.read_page(0))
    assert q["ts"] == 52                      # header stamp = read stamp (last consumed)
    assert data_events(q) == [(4, 60, b"v" * 16)]
    assert rb.read_events(0) == 4


def test_read_page_can_return_padding_only_page():
    """Kernel behaviour: after the reader copied the writer's page, the writer pads it
    when it moves on, and the next read hands out just that padding."""
    rb = RingBuffer(1, 64 << 10)
    for i in range(39):
        rb.write(0, i, b"p" * 100)
    assert len(data_events(decode_page(rb.read_page(0)))) == 39
    rb.write(0, 100, b"n" * 100)
    p = decode_page(rb.read_page(0))
    assert p["commit"] == 24 and p["events"] == [("pad", 38, 20)]
    assert data_events(decode_page(rb.read_page(0)))[0][1] == 100
    assert rb.bytes(0) == 0 and rb.read_events(0) == 40


def test_read_page_too_small_length():
    rb = RingBuffer(1, 64 << 10)
    rb.write(0, 1, b"x" * 64)
    assert rb.read_page(0, length=16) is None
    assert rb.read_page(0, length=60) is None   # 68-byte event does not fit
    assert rb.entries(0) == 1


def test_bytes_counts_headers_and_padding():
    rb = RingBuffer(1, 64 << 10)
    for i in range(40):                       # 39 fit, padding 24 bytes, 1 on next page
        rb.write(0, i, b"p" * 100)
    assert rb.bytes(0) == 4080 + 104
    rb.read_page(0)
    assert rb.bytes(0) == 104


def test_per_cpu_independence_and_record_disable():
    rb = RingBuffer(3, 1)
    rb.record_disable(1)
    assert rb.write(0, 1, b"a") and not rb.write(1, 1, b"a") and rb.write(2, 1, b"a")
    rb.record_enable(1)
    assert rb.write(1, 2, b"b")
    rb.record_off()
    assert not rb.record_is_on() and not rb.write(0, 3, b"c") and rb.reserve(2, 4, 3) == -1
    rb.record_disable()
    rb.record_on()
    assert rb.record_is_set_on() and not rb.record_is_on()
    rb.record_enable()
    assert rb.record_is_on() and rb.write(0, 4, b"d")
    for i in range(204 * 4):
        rb.write(2, 10 + i, b"z" * 16)
    assert rb.overrun(2) > 0 and rb.overrun(0) == 0 and rb.overrun(1) == 0
    assert rb.entries(0) == 2 and rb.entries(1) == 1
    assert rb.overrun_total() == rb.overrun(2)


def test_reset():
    rb = RingBuffer(2, 1)
    for i in range(204 * 4):
        rb.write(0, 10 + i, b"z" * 16)
    rb.write(1, 5, b"k")
    rb.reset(0)
    assert rb.empty(0) and rb.entries(0) == 0 and rb.overrun(0) == 0 and rb.bytes(0) == 0
    assert rb.entries(1) == 1
    assert rb.oldest_event_ts(0) != 0          # stale page stamp, like the kernel
    rb.write(0, 7, b"n")
    assert [t for t, *_ in rb.iter_cpu(0)] == [7]
    rb.reset()
    assert rb.empty()


def test_resize_keeps_data_and_shrink_overruns():
    rb = RingBuffer(1, 40 * 4080)
    for i in range(204 * 10):
        rb.write(0, i, struct.pack("<QQ", i, 0))
    rb.resize(80 * 4080)
    assert rb.nr_pages(0) == 80 and rb.entries(0) == 2040
    for i in range(204 * 10, 204 * 12):
        rb.write(0, i, struct.pack("<QQ", i, 0))
    seq = [struct.unpack_from("<Q", pg, off)[0] for _, pg, off, _ in rb.iter_cpu(0)]
    assert seq == list(range(204 * 12))
    rb.resize(1)                               # 2 pages: keeps tail page + one after it
    assert rb.nr_pages(0) == 2
    assert rb.entries(0) + rb.overrun(0) == 204 * 12
    seq = [struct.unpack_from("<Q", pg, off)[0] for _, pg, off, _ in rb.iter_cpu(0)]
    assert seq == sorted(seq) and seq[-1] == 204 * 12 - 1


def test_wakeups_and_watermark():
    rb = RingBuffer(2, 10 * 4080)
    hits: list[str] = []
    rb.cpu_buffers[0].waitq.add(lambda: hits.append("cpu0"))
    rb.waitq.add(lambda: hits.append("any"))
    rb.write(1, 1, b"x")
    assert hits == ["any"]
    rb.write(0, 2, b"x")
    assert hits == ["any", "cpu0", "any"]
    assert rb.watermark_hit(0, 0) and rb.watermark_hit(None, 50)
    assert not rb.watermark_hit(0, 50)         # writer on the only dirty page
    assert rb.cpu_buffers[0].shortest_full == 50
    full: list[int] = []
    rb.cpu_buffers[0].full_waitq.add(lambda: full.append(1))
    for i in range(204 * 4):                   # 4 pages dirty + tail: (4+1)*100 >= 50*10
        rb.write(0, 10 + i, b"f" * 16)
    assert full and rb.watermark_hit(0, 50) and not rb.watermark_hit(0, 100)
    assert rb.nr_dirty_pages(0) == 4
    rb.wake_waiters()
    assert hits[-1] == "any"


def test_reserve_pack_commit_api():
    rb = RingBuffer(1, 64 << 10)
    off = rb.reserve(0, 16, 123)
    assert off >= 0
    struct.pack_into("<QQ", rb.cpu_buffers[0].page, off, 7, 8)
    assert rb.cpu_buffers[0].tail_page_data is rb.cpu_buffers[0].page
    rb.commit(0)
    ts, page, o, n = rb.peek(0)
    assert (ts, n, struct.unpack_from("<QQ", page, o)) == (123, 16, (7, 8))


def test_discard_rolls_back_the_last_event_and_forces_an_absolute_stamp():
    rb = RingBuffer(1, 8192)
    rb.write(0, 1000, b"a" * 8)
    cb = rb.cpu_buffers[0]
    before = (cb.write, rb.bytes(0))
    off = rb.reserve(0, 16, 1100)
    struct.pack_into("<QQ", cb.page, off, 1, 2)
    rb.discard(0)                       # filtered after reserve: never an entry
    assert (cb.write, rb.bytes(0)) == before
    assert rb.entries(0) == 1
    rb.write(0, 1200, b"c" * 8)
    p = decode_page(rb.read_page(0))
    assert [e[0] for e in p["events"]] == [3, "stamp", 3]
    assert [e[1] for e in data_events(p)] == [1000, 1200]
    assert rb.entries(0) == 0 and rb.read_events(0) == 2
    rb.write(0, 1300, b"d" * 8)          # one absolute stamp only
    p = decode_page(rb.read_page(0))
    assert [e[0] for e in p["events"]] == [3]


def test_discard_after_time_extend_and_first_on_page():
    rb = RingBuffer(1, 8192)
    off = rb.reserve(0, 8, 50)           # first event of the page
    rb.discard(0)
    assert rb.empty(0) and rb.entries(0) == 0 and rb.bytes(0) == 0
    rb.write(0, 60, b"a" * 8)
    off = rb.reserve(0, 8, 60 + (3 << 27))   # needs a time extend: both go
    assert off >= 0
    rb.discard(0)
    rb.discard(0)                        # nothing reserved: no effect
    rb.write(0, 70 + (3 << 27), b"b" * 8)
    assert [t for t, *_ in rb.iter_cpu(0)] == [60, 70 + (3 << 27)]
    assert rb.entries(0) == 2
