"""fprobe + rethook (6.12) on the simulated ftrace: handlers, entry data, maxactive."""

from __future__ import annotations

import errno

import pytest

from tracefs_sim.kernel import Kernel
from tracefs_sim.kernel.fprobe import Fprobe, FprobeCore, disable_fprobe, enable_fprobe
from tracefs_sim.kernel.mm import Regs


@pytest.fixture
def k() -> Kernel:
    return Kernel(nr_cpus=2, seed=1)


def _run(k: Kernel, name: str, parent: str, args, retval: int) -> None:
    """One call of ``name`` from ``parent`` through its ftrace call site."""
    ft = k.ftrace
    i = k.kallsyms.index_of(name)
    pip = k.kallsyms.addrs[k.kallsyms.index_of(parent)] + 0x2B
    token = ft.func_entry(i, pip, Regs(tuple(args)))
    ft.func_exit(i, token, retval)


def test_entry_exit_entry_data_and_names(k: Kernel) -> None:
    core = FprobeCore(k)
    seen = []

    def entry(fp, ip, ret_ip, regs, data):
        data[0:8] = regs.get_kernel_argument(2).to_bytes(8, "little")
        seen.append(("entry", k.kallsyms.format_pS(ip), k.kallsyms.format_pS(ret_ip)))
        return 0

    def exit_(fp, ip, ret_ip, regs, data):
        seen.append(("exit", k.kallsyms.format_ps(ip), k.kallsyms.format_pS(ret_ip),
                     regs.return_value(), int.from_bytes(data[:8], "little")))

    fp = Fprobe(entry, exit_, entry_data_size=8)
    assert core.register_fprobe(fp, "vfs_read", None) == 0
    assert fp.rethook is not None and fp.rethook.num == 1 * 2 * 2     # funcs × cpus × 2
    _run(k, "vfs_read", "ksys_read", [1, 2, 832, 4], 832)
    assert seen == [("entry", "vfs_read+0x4/0x370", "ksys_read+0x2f/0xf0"),
                    ("exit", "vfs_read", "ksys_read+0x2f/0xf0", 832, 832)]
    disable_fprobe(fp)
    _run(k, "vfs_read", "ksys_read", [0, 0, 0, 0], 0)
    assert len(seen) == 2
    enable_fprobe(fp)
    assert core.unregister_fprobe(fp) == 0
    # still "registered" (the ops keeps its saved_func, as in C): the ops is not live
    assert core.unregister_fprobe(fp) == -errno.EBUSY
    _run(k, "vfs_read", "ksys_read", [0, 0, 0, 0], 0)
    assert len(seen) == 2


def test_maxactive_exhaustion_counts_nmissed(k: Kernel) -> None:
    core = FprobeCore(k)
    exits = []
    fp = Fprobe(exit_handler=lambda fp, ip, r, regs, d: exits.append(regs.return_value()),
                nr_maxactive=1)
    assert core.register_fprobe(fp, "vfs_read", None) == 0
    ft = k.ftrace
    i = k.kallsyms.index_of("vfs_read")
    outer = ft.func_entry(i, 0, None)          # holds the only rethook node
    inner = ft.func_entry(i, 0, None)          # recursion: pool empty → missed
    ft.func_exit(i, inner, 1)
    ft.func_exit(i, outer, 2)
    assert fp.nmissed == 1
    assert exits == [2]
    core.unregister_fprobe(fp)


def test_register_errors_and_syms(k: Kernel) -> None:
    core = FprobeCore(k)
    assert core.register_fprobe(Fprobe(lambda *a: 0), "non_exist_func", None) == -errno.EINVAL
    assert core.register_fprobe_syms(Fprobe(lambda *a: 0), ["non_exist_func"]) == -errno.ENOENT
    fp = Fprobe(exit_handler=lambda *a: None)
    assert core.register_fprobe_syms(fp, ["vfs_write", "vfs_read"]) == 0
    assert fp.rethook is not None and fp.rethook.num == 2 * 2 * 2
    assert core.unregister_fprobe(fp) == 0


def test_fprobe_event_records_and_prints(k: Kernel) -> None:
    """f-events through ftrace → rethook → ring buffer → print_fentry/fexit_event."""
    from tracefs_sim.kernel.trace import trace_file_text

    kind = k.fprobe_events
    kind.fprobe = FprobeCore(k)
    k.trace.update_buffers()
    k.dynevent.write(b"f:myprobe vfs_read count=$arg3:u32\n"
                     b"f:myret vfs_read%return $retval cnt=$arg3\n")

    tr = k.trace.global_trace
    for tf in kind.probes():
        file = k.events.file(tr, tf.event.call)
        assert file is not None and k.events.event_enable_disable(file, True) == 0
    _run(k, "vfs_read", "ksys_read", [0xFFFF1, 2, 832, 3], 832)
    text = "".join(x.decode() for x in trace_file_text(tr))
    lines = [ln.split(": ", 1)[1] for ln in text.splitlines() if not ln.startswith("#")]
    assert lines == ["myprobe: (vfs_read+0x4/0x370) count=832",
                     "myret: (ksys_read+0x2f/0xf0 <- vfs_read) arg1=832 cnt=0x340"]
