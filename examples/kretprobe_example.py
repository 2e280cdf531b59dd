"""A port of the kernel's samples/kprobes/kretprobe_example.c to the simulated kernel.

A kretprobe on ``func`` (default ``kernel_clone``) that reports each call's return value
and how long it took to execute (ktime_get() at the entry, kept in the instance's data,
against ktime_get() at the return).  Kernel threads are skipped (the entry handler
returns 1: no return handler for that call).  At most 20 calls are probed at once;
``nmissed`` at unload says how many were not.  Load it into a running mount:

    tracefs-sim insmod /tmp/t examples/kretprobe_example.py func=vfs_read
    cat /tmp/t/README > /dev/null
    tracefs-sim rmmod /tmp/t kretprobe_example
    tracefs-sim dmesg /tmp/t
"""

from __future__ import annotations

import struct
from typing import Any

from tracefs_sim.kernel.kprobes import Kprobe, Kretprobe
from tracefs_sim.kernel.ptrace import PtRegs
from tracefs_sim.kernel.trace_events_fmt import hashed_ptr

KSYM_NAME_LEN = 512
MY_DATA = struct.Struct("<q")       # struct my_data { ktime_t entry_stamp; }


class _State:
    kernel: Any = None
    func_name = "kernel_clone"
    rp: Kretprobe | None = None


state = _State()


def entry_handler(rp: Kretprobe, data: bytearray, _ret_addr: int, regs: PtRegs) -> int:
    """Per-instance private data: the time stamp of the entry."""
    k = state.kernel
    if k.sched.current.kthread:      # !current->mm
        return 1                     # Skip kernel threads
    MY_DATA.pack_into(data, 0, k.boot_clock.ns())
    return 0


def ret_handler(rp: Kretprobe, data: bytearray, _ret_addr: int, regs: PtRegs) -> int:
    """Return-probe handler: log the return value and the duration of the call."""
    k = state.kernel
    retval = regs.return_value()
    delta = k.boot_clock.ns() - MY_DATA.unpack_from(data, 0)[0]
    k.printk(f"{state.func_name} returned {retval} and took {delta} ns to execute")
    return 0


def init_module(kernel: Any, func: str = "kernel_clone") -> int:
    """kretprobe_init(): module_param_string(func, func_name, …)."""
    state.kernel = kernel
    state.func_name = func[:KSYM_NAME_LEN - 1]
    rp = Kretprobe(Kprobe(symbol_name=state.func_name), maxactive=20)   # Probe up to 20 instances concurrently
    rp.handler = ret_handler
    rp.entry_handler = entry_handler
    rp.data_size = MY_DATA.size
    ret = kernel.kprobes.register_kretprobe(rp)
    if ret < 0:
        kernel.printk(f"register_kretprobe failed, returned {ret}")
        return ret
    state.rp = rp
    kernel.printk(f"Planted return probe at {rp.kp.symbol_name}: {hashed_ptr(rp.kp.addr)}")
    return 0


def cleanup_module(kernel: Any) -> None:
    """kretprobe_exit(): nmissed > 0 suggests that maxactive was set too low."""
    rp = state.rp
    if rp is None:
        return
    kernel.kprobes.unregister_kretprobe(rp)
    kernel.printk(f"kretprobe at {hashed_ptr(rp.kp.addr)} unregistered")
    kernel.printk(f"Missed probing {rp.nmissed} instances of {rp.kp.symbol_name}")
    state.rp = None
