"""kallsyms / ftrace function list built from tracefs_sim/data."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracefs_sim.kernel.kallsyms import Kallsyms

REF = Path(__file__).resolve().parents[2] / "shared" / "reference" / "linux-6.12"
needs_ref = pytest.mark.skipif(not REF.is_dir(), reason="../shared not present")


@pytest.fixture(scope="module")
def k() -> Kallsyms:
    return Kallsyms()


def test_function_list_shape(k: Kallsyms) -> None:
    assert len(k) == len(k.names) == len(k.addrs) == len(k.mods) == 43280
    assert len(set(k.names)) == 42932
    assert sum(m is not None for m in k.mods) == 418
    assert k.names[0] == "__traceiter_initcall_level"
    assert k.addrs[0] == 0xFFFFFFFFB0402014
    assert k.modules == ["9p", "9pnet_virtio", "9pnet", "netfs"]


def test_vfs_read(k: Kallsyms) -> None:
    i = k.index_of("vfs_read")
    assert i is not None and k.is_traceable("vfs_read")
    assert k.addrs[i] == 0xFFFFFFFFB0857344          # rec->ip from the capture
    assert k.mods[i] is None
    start = k.addr_of("vfs_read")
    assert start == 0xFFFFFFFFB0857340 == k.func_start(i)   # ip - 4 (endbr64)
    name, off, size, mod = k.lookup_addr(start + 5)
    assert (name, off, mod) == ("vfs_read", 5, None)
    # vfs_read ends where the padding of the next function begins
    nxt = k.lookup_addr(start + size)
    assert nxt is not None and nxt[0] == "__pfx___kernel_write_iter" and nxt[1] == 0
    assert k.lookup_addr(start - 1)[0] == "__pfx_vfs_read"
    assert k.format_ps(k.addrs[i]) == "vfs_read"
    assert k.format_pS(k.addrs[i]) == f"vfs_read+0x4/{size:#x}"
    assert k.format_pS(start) == f"vfs_read+0x0/{size:#x}"


def test_not_traceable_symbol(k: Kallsyms) -> None:
    assert not k.is_traceable("__pfx_vfs_read")
    assert k.index_of("perf_trace_initcall_level") is None
    a = k.addr_of("perf_trace_initcall_level")
    assert a is not None and k.lookup_addr(a)[:2] == ("perf_trace_initcall_level", 0)
    assert k.addr_of("no_such_symbol_xyz") is None


def test_duplicates(k: Kallsyms) -> None:
    dups = [n for n in ("type_show", "show") if len(k.indexes_of(n)) > 1]
    assert dups
    idx = k.indexes_of(dups[0])
    assert idx[0] == k.index_of(dups[0])
    assert all(k.names[i] == dups[0] for i in idx)


def test_module_symbol(k: Kallsyms) -> None:
    i = k.index_of("v9fs_mount")
    assert i is not None and k.mods[i] == "9p"
    assert k.format_ps(k.addrs[i]) == "v9fs_mount [9p]"
    assert k.format_pS(k.addrs[i]).startswith("v9fs_mount+0x4/0x")
    assert k.format_pS(k.addrs[i]).endswith(" [9p]")


def test_unknown_address(k: Kallsyms) -> None:
    assert k.lookup_addr(0x1234) is None
    assert k.format_ps(0x1234) == "0x1234"
    assert k.format_pS(0xDEAD) == "0xdead"


def test_every_traceable_function_resolves_to_itself(k: Kallsyms) -> None:
    for n, a in zip(k.names[::97], k.addrs[::97], strict=True):
        r = k.lookup_addr(a)
        assert r is not None and r[0] == n and r[1] == a & 0xF


def test_text_lines(k: Kallsyms) -> None:
    lines = list(k.text_lines())
    assert lines[0] == "ffffffffb0400000 T _stext"
    assert "ffffffffb0857340 T vfs_read" in lines or "ffffffffb0857340 t vfs_read" in lines
    mod = [ln for ln in lines if ln.endswith("\t[9pnet_virtio]")]
    assert len(mod) == 30
    assert len(lines) == k.symbol_count() >= 108187


@needs_ref
def test_filter_function_files_byte_exact(k: Kallsyms) -> None:
    assert k.available_filter_functions_text() == (REF / "available_filter_functions.txt").read_bytes()
    assert (k.available_filter_functions_addrs_text()
            == (REF / "available_filter_functions_addrs.txt").read_bytes())


@needs_ref
def test_all_captured_text_symbols_present(k: Kallsyms) -> None:
    want = (REF / "kallsyms-text-names.txt").read_text().splitlines()
    got = [ln.split(" ", 2)[2].replace("\t[", " [") for ln in k.text_lines() if ln[17] in "tT"]
    assert got == want
