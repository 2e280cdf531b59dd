"""debugfs kprobes/list and the optprobe sysctl (kernel/kprobes.c, arch/x86 opt.c, 6.12).

kprobe_opt_types.tc greps ``[OPTIMIZED]`` in /sys/kernel/debug/kprobes/list after
enabling a kprobe at successive offsets; the list line format is report_probe()'s.
"""

from __future__ import annotations

import errno
import os
import re

import pytest

from tracefs_sim.kernel import Kernel
from tracefs_sim.kernel.errors import KernelError
from tracefs_sim.kernel.kprobes import SYSCTL_OPTIMIZATION
from tracefs_sim.sysctl_mirror import SysctlMirror
from tracefs_sim.tracefs import build_tree
from tracefs_sim.tracefs.files import write_file

LINE = re.compile(r"^([0-9a-f]{16})  ([kr])  (\w+)\+0x([0-9a-f]+)    (\[\w+\])*$")


@pytest.fixture
def env() -> tuple[Kernel, object]:
    k = Kernel(nr_cpus=2, seed=1)
    return k, build_tree(k)


def _lines(k: Kernel) -> list[str]:
    return k.debugfs["kprobes/list"]().splitlines()


def test_list_shows_each_probe_with_its_state(env):
    k, root = env
    assert _lines(k) == []
    write_file(root, "kprobe_events", "p:a vfs_read\nr:b vfs_write\n", append=True)
    lines = _lines(k)
    assert len(lines) == 2
    for line in lines:
        m = LINE.match(line)
        assert m, line
        addr, kind, sym, off, flags = m.groups()
        assert int(addr, 16) == k.kallsyms.addr_of(sym) + int(off, 16)
    # registered but not enabled: [DISABLED]; on the fentry site: [FTRACE]
    by_sym = {LINE.match(x).group(3): x for x in lines}
    assert by_sym["vfs_read"].endswith("[DISABLED][FTRACE]")
    assert "  r  vfs_write+0x4  " in by_sym["vfs_write"]
    write_file(root, "events/kprobes/a/enable", "1")
    assert [x for x in _lines(k) if "vfs_read" in x][0].endswith("  [FTRACE]")
    write_file(root, "events/kprobes/a/enable", "0")
    write_file(root, "kprobe_events", "", append=False)
    assert _lines(k) == []


def _optimized_offsets(k: Kernel, root, sym: str, upto: int) -> tuple[set[int], set[int]]:
    """Offsets of ``sym`` whose enabled kprobe is listed [OPTIMIZED] / plain int3."""
    opt, plain = set(), set()
    for off in range(upto):
        try:
            write_file(root, "kprobe_events", f"p:t {sym}+{off}", append=False)
        except KernelError as e:
            assert e.errno == errno.EILSEQ   # not an instruction boundary
            continue
        write_file(root, "events/kprobes/enable", "1")
        line = next(x for x in _lines(k) if f" {sym}+" in x)
        write_file(root, "events/kprobes/enable", "0")
        if line.endswith("[OPTIMIZED]"):
            opt.add(off)
        elif line.endswith("    ") or line.endswith(" "):
            plain.add(off)
    write_file(root, "kprobe_events", "", append=False)
    return opt, plain


def test_optimization_follows_the_sysctl(env):
    k, root = env
    read, write = k.sysctls[SYSCTL_OPTIMIZATION]
    assert read() == "1\n"
    opt, plain = _optimized_offsets(k, root, "vfs_read", 64)
    assert opt                      # some int3 probes are replaced by jumps
    assert 0 not in opt and 4 not in opt   # the fentry site is an ftrace probe
    write("0")
    assert read() == "0\n"
    opt_off, plain_off = _optimized_offsets(k, root, "vfs_read", 64)
    assert opt_off == set() and plain_off == opt | plain
    with pytest.raises(KernelError):
        write("2")
    assert read() == "0\n"


def test_jump_must_fit_in_the_function(env):
    k, _root = env
    r = k.kallsyms.lookup_addr(k.kallsyms.addr_of("vfs_read"))
    size = r[2]
    start = k.kallsyms.addr_of("vfs_read")
    assert not k.kprobes.can_optimize(start + size - 4)


def test_mirror_publishes_debugfs_files(env, tmp_path):
    k, root = env
    mirror = SysctlMirror(k, None, str(tmp_path))
    path = tmp_path / "kprobes" / "list"
    assert path.read_text() == ""
    assert oct(os.stat(path).st_mode & 0o777) == "0o444"
    write_file(root, "kprobe_events", "p:a vfs_read\n", append=True)
    mirror.publish()
    assert "vfs_read+0x4" in path.read_text()
    mirror.close()
    assert not (tmp_path / "kprobes").exists()
