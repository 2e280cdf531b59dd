#!/usr/bin/env python3
"""Use tracefs files from a program: enable one event, read ``trace_pipe`` with a timeout.

Works the same against a real /sys/kernel/tracing and the simulator:

    scripts/mount /tmp/t &                    # or: scripts/run -- python3 examples/read_trace.py
    python3 examples/read_trace.py --dir /tmp/t --event sched/sched_switch --timeout 2

``trace_pipe`` is a consuming read that blocks while the buffer is empty; opening it with
O_NONBLOCK and waiting in ``poll()`` gives a read with a deadline (a blocked read would
otherwise ignore SIGINT through FUSE until data comes).  Only the standard library is used.
"""

from __future__ import annotations

import argparse
import errno
import os
import select
import sys
import time

DEFAULT_DIR = "/sys/kernel/tracing"


def write(tracing: str, rel: str, text: str) -> None:
    """One write(2), as ``echo TEXT > FILE`` does (errors surface as OSError)."""
    fd = os.open(os.path.join(tracing, rel), os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def read_pipe(tracing: str, timeout: float, max_lines: int = 0) -> list[str]:
    """Lines of ``trace_pipe`` until ``timeout`` seconds pass (or ``max_lines`` are read)."""
    fd = os.open(os.path.join(tracing, "trace_pipe"), os.O_RDONLY | os.O_NONBLOCK)
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    deadline = time.monotonic() + timeout
    pending = b""
    lines: list[str] = []
    try:
        while not max_lines or len(lines) < max_lines:
            left = deadline - time.monotonic()
            if left <= 0 or not poller.poll(left * 1000):
                break
            try:
                chunk = os.read(fd, 65536)
            except OSError as e:
                if e.errno in (errno.EAGAIN, errno.EINTR):
                    time.sleep(0.01)  # poll said ready but another reader was quicker
                    continue
                raise
            if not chunk:
                break
            pending += chunk
            *done, pending = pending.split(b"\n")
            lines += [line.decode(errors="replace") for line in done]
    finally:
        os.close(fd)
    return lines[:max_lines] if max_lines else lines


def trace_event(tracing: str, event: str, timeout: float, max_lines: int = 0) -> list[str]:
    """Enable ``event`` ("system/name") alone, read its records, then leave it disabled."""
    write(tracing, "trace", "")                       # empty the buffer (O_TRUNC clears it)
    write(tracing, f"events/{event}/enable", "1")
    write(tracing, "tracing_on", "1")
    try:
        return read_pipe(tracing, timeout, max_lines)
    finally:
        write(tracing, f"events/{event}/enable", "0")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default=DEFAULT_DIR, help=f"tracing directory (default {DEFAULT_DIR})")
    ap.add_argument("--event", default="sched/sched_switch", help="SYSTEM/EVENT to enable")
    ap.add_argument("--timeout", type=float, default=2.0, help="seconds to read")
    ap.add_argument("--max", type=int, default=0, help="stop after this many lines (0: no limit)")
    args = ap.parse_args(argv)
    try:
        lines = trace_event(args.dir, args.event, args.timeout, args.max)
    except OSError as e:
        print(f"read_trace: {e}", file=sys.stderr)
        return 1
    for line in lines:
        print(line)
    print(f"read_trace: {len(lines)} lines in {args.timeout} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
