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


kernel: Any = None      # the kernel this module is loaded into
func_name = "kernel_clone"


def entry_handler(rp: Kretprobe, data: bytearray, _ret_addr: int, regs: PtRegs) -> int:
    """Per-instance private data: the time stamp of the entry."""
    if kernel.sched.current.kthread:      # !current->mm
        return 1                          # Skip kernel threads
    MY_DATA.pack_into(data, 0, kernel.boot_clock.ns())
    return 0


def ret_handler(rp: Kretprobe, data: bytearray, _ret_addr: int, regs: PtRegs) -> int:
    """Return-probe handler: log the return value and the duration of the call."""
    retval = regs.return_value()
    delta = kernel.boot_clock.ns() - MY_DATA.unpack_from(data, 0)[0]
    kernel.printk(f"{func_name} returned {retval} and took {delta} ns to execute")
    return 0


# static struct kretprobe my_kretprobe = { ..., .maxactive = 20 }: up to 20 at once
my_kretprobe = Kretprobe(Kprobe(), maxactive=20)
my_kretprobe.handler = ret_handler
my_kretprobe.entry_handler = entry_handler
my_kretprobe.data_size = MY_DATA.size


def init_module(k: Any, func: str = "kernel_clone") -> int:
    """kretprobe_init(): module_param_string(func, func_name, …)."""
    global kernel, func_name
    kernel = k
    func_name = func[:KSYM_NAME_LEN - 1]
    my_kretprobe.kp.symbol_name = func_name
    ret = k.kprobes.register_kretprobe(my_kretprobe)
    if ret < 0:
        k.printk(f"register_kretprobe failed, returned {ret}")
        return ret
    k.printk(f"Planted return probe at {my_kretprobe.kp.symbol_name}: "
             f"{hashed_ptr(my_kretprobe.kp.addr)}")
    return 0


def cleanup_module(k: Any) -> None:
    """kretprobe_exit()."""
    k.kprobes.unregister_kretprobe(my_kretprobe)
    k.printk(f"kretprobe at {hashed_ptr(my_kretprobe.kp.addr)} unregistered")
    # nmissed > 0 suggests that maxactive was set too low.
    k.printk(f"Missed probing {my_kretprobe.nmissed} instances of {my_kretprobe.kp.symbol_name}")
