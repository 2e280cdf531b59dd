"""kprobe_multi / kprobe_session links for Python programs (kernel/trace/bpf_trace.c
bpf_kprobe_multi_link_attach() on fprobe, 6.12)."""

from __future__ import annotations

import errno
import re

import pytest

from tracefs_sim.kernel import Kernel
from tracefs_sim.kernel.bpf_trace import KprobeMultiRunCtx
from tracefs_sim.kernel.errors import KernelError
from tracefs_sim.kernel.ftrace_iter import enabled_functions_text


@pytest.fixture
def k() -> Kernel:
    k = Kernel(nr_cpus=2, seed=1)
    k.workload.enabled = False
    return k


def call(k: Kernel, name: str) -> None:
    k.workload.sites.call(name, "ksys_read")


def start(k: Kernel, name: str) -> int:
    return k.kallsyms.addr_of(name) or 0


def test_symbols_with_cookies_and_func_ip(k: Kernel) -> None:
    seen = []

    def prog(ctx: KprobeMultiRunCtx) -> int:
        seen.append((ctx.get_func_ip(), ctx.get_attach_cookie(), ctx.session_is_return()))
        return 0

    link = k.kprobe_multi.attach(prog, syms=["vfs_write", "vfs_read"], cookies=[2, 1])
    assert link.addrs == sorted([start(k, "vfs_read"), start(k, "vfs_write")])
    text = enabled_functions_text(k.ftrace)
    for name in ("vfs_read", "vfs_write"):
        assert re.search(rf"^{name} \(1\) R +\ttramp: 0x[0-9a-f]+ \(fprobe_handler\+0x0/0x240\) "
                         r"->fprobe_handler\+0x0/0x240$", text, re.M), text
    call(k, "vfs_read")
    call(k, "vfs_write")
    call(k, "vfs_read")
    assert seen == [(start(k, "vfs_read"), 1, False), (start(k, "vfs_write"), 2, False),
                    (start(k, "vfs_read"), 1, False)]
    link.detach()
    assert enabled_functions_text(k.ftrace) == ""
    call(k, "vfs_read")
    assert len(seen) == 3
    with pytest.raises(KernelError):
        link.detach()


def test_addresses_and_pattern(k: Kernel) -> None:
    hits: list[int] = []
    link = k.kprobe_multi.attach(lambda ctx: hits.append(ctx.get_attach_cookie()),
                                 addrs=[start(k, "schedule")], cookies=[7])
    call(k, "schedule")
    assert hits == [7]
    link.detach()
    ips: list[int] = []
    link = k.kprobe_multi.attach(lambda ctx: ips.append(ctx.get_func_ip()), pattern="vfs_rea?")
    assert link.cnt == sum(1 for n in k.ftrace.names if re.fullmatch(r"vfs_rea.", n))
    call(k, "vfs_read")
    assert ips == [start(k, "vfs_read")]
    link.detach()


def test_return_mode_sees_the_return_value(k: Kernel) -> None:
    seen = []
    link = k.kprobe_multi.attach(
        lambda ctx: seen.append((ctx.session_is_return(), ctx.regs.return_value())),
        syms=["vfs_read"], retprobe=True)
    k.workload.syscalls.syscall("read", name="x", count=42)
    assert seen == [(True, 42)]
    link.detach()


def test_session_entry_decides_and_cookie_is_shared(k: Kernel) -> None:
    """kprobe_session: the entry run's return value decides whether the return run
    happens; bpf_session_cookie() is one u64 both runs of a call see."""
    seen = []

    def prog(ctx: KprobeMultiRunCtx) -> int:
        name = k.kallsyms.format_ps(ctx.get_func_ip())
        if not ctx.session_is_return():
            ctx.session_cookie = 0xC0FFEE + len(seen)
            seen.append(("entry", name))
            return 1 if name == "vfs_write" else 0       # no return run for vfs_write
        seen.append(("return", name, hex(ctx.session_cookie)))
        return 0

    link = k.kprobe_multi.attach(prog, syms=["vfs_read", "vfs_write"], session=True)
    call(k, "vfs_read")
    call(k, "vfs_write")
    call(k, "vfs_read")
    assert seen == [("entry", "vfs_read"), ("return", "vfs_read", hex(0xC0FFEE)),
                    ("entry", "vfs_write"), ("entry", "vfs_read"),
                    ("return", "vfs_read", hex(0xC0FFEE + 3))]
    link.detach()


def test_misses(k: Kernel) -> None:
    """A program never runs inside another on a CPU (bpf_prog_active): a miss of the
    program; a program that raises is logged and counted in the link's missed."""
    runs = []

    def prog(ctx: KprobeMultiRunCtx) -> int:
        runs.append(ctx.get_func_ip())
        if len(runs) == 1:
            call(k, "vfs_write")      # an attached function, from inside the program
        return 0

    link = k.kprobe_multi.attach(prog, syms=["vfs_read", "vfs_write"])
    call(k, "vfs_read")
    assert runs == [start(k, "vfs_read")] and link.prog_misses == 1 and link.missed == 0
    link.detach()
    bad = k.kprobe_multi.attach(lambda ctx: 1 // 0, syms=["vfs_read"])
    call(k, "vfs_read")
    assert bad.missed == 1
    assert re.search(r"WARNING: CPU: \d+ PID: \d+ at .*<lambda>: ZeroDivisionError", "\n".join(k.log))
    bad.detach()


def test_attach_errors(k: Kernel) -> None:
    prog = lambda ctx: 0   # noqa: E731
    cases = [({"syms": ["vfs_read"], "addrs": [1]}, errno.EINVAL), ({}, errno.EINVAL),
             ({"syms": []}, errno.EINVAL), ({"syms": ["vfs_read", "no_such_fn"]}, errno.ESRCH),
             ({"syms": ["vfs_read"], "cookies": [1, 2]}, errno.EINVAL),
             ({"addrs": [0x1234]}, errno.EINVAL), ({"pattern": "no_such_*"}, errno.ENOENT)]
    for kw, err in cases:
        with pytest.raises(KernelError) as e:
            k.kprobe_multi.attach(prog, **kw)
        assert e.value.errno == err, kw
    assert enabled_functions_text(k.ftrace) == "" and not k.kprobe_multi.links


def test_attaching_ten_thousand_functions(k: Kernel) -> None:
    """(Its attach time is a scripts/bench-kapi figure, never asserted here.)"""
    names = [n for n in dict.fromkeys(k.kallsyms.names) if "." not in n][:10000]
    hits = [0]
    link = k.kprobe_multi.attach(lambda ctx: hits.__setitem__(0, hits[0] + 1), syms=names)
    assert link.cnt == 10000
    call(k, names[1234])
    assert hits == [1]
    link.detach()
