"""``python -m tracefs_sim.host.dump [--mode syscalls|lifecycle] [--count] -- CMD ARGS``

Run CMD under the tracer and print its records, one line each, strace-like::

    1234.567890123 [001] 4242 sys_enter openat(0xffffff9c, "/etc/passwd", 0x0, 0x0)
    1234.567901234 [001] 4242 sys_exit openat = -2 ENOENT

An exit that slept says for how long and how often the task was switched back in
(``slept=1003us/1``), from the tracer's schedstat readings.

It plays the server's part on the socket (sends CAPTURE and MODE, reads records), so the
tracer can be tried and measured without a mount.  ``--count`` decodes and discards the
records and prints their number and rate at the end.  Exit status: CMD's.
"""

from __future__ import annotations

import argparse
import errno
import signal
import sys
import time
from collections import Counter
from dataclasses import asdict

from ..kernel.syscall_table import SyscallTable
from . import proto
from .build import tracer_path
from .capture import capture_table
from .channel import spawn_tracer

EVENTS = {proto.EVENT_UNKNOWN: "?", proto.EVENT_FORK: "fork", proto.EVENT_VFORK: "vfork",
          proto.EVENT_CLONE: "clone"}


def _signame(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return str(sig)


def _arg(value: int, cap: proto.Capture | None) -> str:
    if cap is None:
        return hex(value)
    if cap.kind == proto.CaptureKind.CSTRING:
        return '"' + cap.data.decode("utf-8", "backslashreplace").replace('"', '\\"') + '"'
    return "{" + cap.data.hex() + "}"


# the records that print as their fields
FORMATS: dict[type, str] = {
    proto.NewTask: "new_task child={child_tid} tgid={child_tgid} {event_name} flags={clone_flags:#x} comm={comm} "
                   "cpu={child_cpu}",
    proto.Exec: "exec old_tid={old_tid} filename={filename} comm={comm}",
    proto.Exit: "exit status={status:#x} group={group:d}",
    proto.Signal: "signal {signame} errno={errno} code={code} pid={pid} uid={uid}",
    proto.Gone: "gone status={status:#x}",
    proto.Attached: "attached tgid={tgid} comm={comm}",
    proto.Comm: "comm {comm}",
    proto.Interrupted: "interrupted {name} = {ret}",
    proto.Faults: "faults minflt={minflt} majflt={majflt}",
    proto.Maps: "maps {lines} lines",
}


def format_record(rec: proto.Record, table: SyscallTable) -> str:
    """One line for a record (the columns of trace: ts, [cpu], tid, then what happened)."""
    if isinstance(rec, proto.Ack):
        return f"ack {rec.seq}"
    head = f"{rec.ts // 10**9}.{rec.ts % 10**9:09d} [{rec.cpu:03d}] {rec.tid}"
    if isinstance(rec, proto.SysEnter):
        sc = table.by_nr.get(rec.nr)
        caps = {c.argidx: c for c in rec.caps}
        args = ", ".join(_arg(rec.args[i], caps.get(i)) for i in range(len(sc.args) if sc else 6))
        return f"{head} sys_enter {sc.name if sc else rec.nr}({args})"
    if isinstance(rec, proto.SysExit):
        sc = table.by_nr.get(rec.nr)
        err = f" {errno.errorcode.get(-rec.ret, '')}" if -4096 < rec.ret < 0 else ""
        outs = "".join(" " + _arg(0, c) for c in rec.caps)
        slept = f" slept={rec.asleep_ns // 1000}us/{rec.switches}" \
            if rec.switches not in (0, proto.SWITCHES_UNKNOWN) else ""
        return f"{head} sys_exit {sc.name if sc else rec.nr} = {rec.ret}{err}{outs}{slept}"
    fields = asdict(rec)
    if isinstance(rec, proto.NewTask):
        fields["event_name"] = EVENTS.get(rec.event, rec.event)
    elif isinstance(rec, proto.Signal):
        fields["signame"] = _signame(rec.signo)
    elif isinstance(rec, proto.Interrupted):
        sc = table.by_nr.get(rec.nr)
        fields["name"] = sc.name if sc else rec.nr
    elif isinstance(rec, proto.Maps):
        fields["lines"] = rec.text.count("\n")
    return f"{head} " + FORMATS[type(rec)].format(**fields)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tracefs_sim.host.dump",
                                 description="Run CMD under tracefs-sim-tracer and print its records.")
    ap.add_argument("--mode", choices=("syscalls", "lifecycle"), default="syscalls")
    ap.add_argument("--count", action="store_true", help="decode and discard; print counts at the end")
    ap.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    args = ap.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        ap.error("no command given")
    table = SyscallTable.load()
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # ^C is CMD's
    t0 = time.monotonic()
    proc, ch = spawn_tracer(tracer_path(), cmd)
    if args.mode == "syscalls":
        ch.set_mode(proto.MODE_SYSCALLS)   # before CMD starts: no record yet
    ch.send_capture(capture_table(table))
    counts: Counter[str] = Counter()
    out = sys.stdout
    while not ch.eof:
        records = ch.read()
        if args.count:
            for rec in records:
                counts[type(rec).__name__] += 1
        else:
            out.write("".join(format_record(r, table) + "\n" for r in records))
    status = proc.wait()
    if args.count:
        dt = time.monotonic() - t0
        total = sum(counts.values())
        print(f"{total} records in {dt:.3f} s ({total / dt:,.0f}/s): "
              + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())), file=sys.stderr)
    return status if status >= 0 else 128 - status


if __name__ == "__main__":
    sys.exit(main())
