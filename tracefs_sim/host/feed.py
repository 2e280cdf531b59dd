"""The server's end of the tracer socket: the tracer's records into the simulated kernel.

The adapter calls :meth:`TracerFeed.drain` before it handles any request (so a request
from a traced task finds the task inside the syscall that made it: docs/host-tracing.md,
"Ordering") and whenever the socket is readable, and :meth:`TracerFeed.sync_mode` after
each request: when the kernel goes from "nothing attached" to "something attached" (or
back) the tracer switches between its lifecycle and syscalls modes, and waits for the
ACK, so no syscall after the switch is missed.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
from collections.abc import Callable
from typing import Any

from ..kernel.core import Kernel
from ..kernel.syscall_table import SyscallTable
from .capture import capture_table
from .procview import ProcView
from .proto import (
    MODE_LIFECYCLE,
    MODE_SYSCALLS,
    Ack,
    Attached,
    Comm,
    Exec,
    Exit,
    Faults,
    Gone,
    Interrupted,
    Maps,
    NewTask,
    Record,
    Signal,
    StreamDecoder,
    SysEnter,
    SysExit,
    encode_capture,
    encode_mode,
)

RECV_SIZE = 1 << 18

log = logging.getLogger("tracefs_sim.host")


class TracerFeed:
    """Reads the tracer's records without blocking and hands them to ``kernel``."""

    def __init__(self, kernel: Kernel, fd: int, tracer_pid: int) -> None:
        self.k = kernel
        self.sock = socket.socket(fileno=fd)
        self.sock.setblocking(False)
        self.tracer_pid = tracer_pid
        self.eof = False
        self.mode = MODE_LIFECYCLE
        self._seq = 0
        self._decoder = StreamDecoder()
        self._buf = bytearray(RECV_SIZE)
        self.records = 0
        kernel.workload.traced.host = ProcView()
        self._traced = kernel.workload.traced
        self._boot = kernel.boot_clock.from_monotonic
        # the handler of each record type: one dict lookup per record
        self._handlers: dict[type, Callable[[Any], None]] = {
            SysEnter: self._sys_enter, SysExit: self._sys_exit, Interrupted: self._interrupted,
            NewTask: self._new_task, Exec: self._exec, Exit: self._exit, Signal: self._signal,
            Gone: self._gone, Attached: self._attached, Comm: self._comm, Faults: self._faults,
            Maps: self._maps, Ack: self._ack}

    def fileno(self) -> int:
        return self.sock.fileno()

    def start(self) -> None:
        """The first mode, then the capture table (the tracer starts CMD once it has it)."""
        self.sync_mode()
        specs = capture_table(SyscallTable.load())
        self._send(encode_capture([(s.nr, s.argidx, int(s.kind), s.param) for s in specs]))

    def _send(self, msg: bytes) -> None:
        self.sock.setblocking(True)
        try:
            self.sock.sendall(msg)
        finally:
            self.sock.setblocking(False)
        if not self.eof:
            try:
                os.kill(self.tracer_pid, signal.SIGUSR1)
            except ProcessLookupError:
                self.eof = True     # it ended: its last records are in the socket

    # ------------------------------------------------------------------ records
    def drain(self) -> None:
        """Process every record the tracer has written so far."""
        while not self.eof:
            try:
                n = self.sock.recv_into(self._buf)
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno in (errno.ECONNRESET, errno.EPIPE):
                    self.eof = True
                    return
                raise
            if n == 0:
                self.eof = True
                return
            for rec in self._decoder.feed(memoryview(self._buf)[:n]):
                self._dispatch_logged(rec)

    def _dispatch_logged(self, rec: Record) -> None:
        """One record; a failure in the model is logged and the stream goes on (the
        records after it are still the tasks' real activity), as a request's failure
        does not take the mount down."""
        try:
            self.dispatch(rec)
        except Exception:
            log.exception("tracer record %r failed", rec)

    def dispatch(self, rec: Record) -> None:
        """One record to the kernel's traced-task model, its time made boot-relative."""
        self.records += 1
        handler = self._handlers.get(type(rec))
        if handler is None:
            raise TypeError(f"unexpected tracer record {rec!r}")
        handler(rec)

    def _sys_enter(self, rec: SysEnter) -> None:
        caps = {c.argidx: c.data for c in rec.caps} if rec.caps else {}
        self._traced.sys_enter(self._boot(rec.ts), rec.cpu, rec.tid, rec.tgid, rec.nr, rec.args,
                               caps, rec.compat)

    def _sys_exit(self, rec: SysExit) -> None:
        outs = {c.argidx: c.data for c in rec.caps} if rec.caps else {}
        self._traced.sys_exit(self._boot(rec.ts), rec.cpu, rec.tid, rec.tgid, rec.nr, rec.ret,
                              outs, rec.asleep_ns, rec.switches, rec.compat)

    def _interrupted(self, rec: Interrupted) -> None:
        self._traced.interrupted(self._boot(rec.ts), rec.cpu, rec.tid, rec.tgid, rec.nr, rec.ret)

    def _new_task(self, rec: NewTask) -> None:
        self._traced.new_task(self._boot(rec.ts), rec.cpu, rec.tid, rec.child_tid, rec.child_tgid,
                              rec.event, rec.clone_flags, rec.comm, rec.child_cpu)

    def _exec(self, rec: Exec) -> None:
        self._traced.exec(self._boot(rec.ts), rec.cpu, rec.tid, rec.old_tid, rec.tgid, rec.comm,
                          rec.filename)

    def _exit(self, rec: Exit) -> None:
        self._traced.exit(self._boot(rec.ts), rec.cpu, rec.tid, rec.tgid, rec.status, rec.group)

    def _signal(self, rec: Signal) -> None:
        self._traced.signal(self._boot(rec.ts), rec.cpu, rec.tid, rec.tgid, rec.signo, rec.errno,
                            rec.code, rec.pid, rec.uid)

    def _gone(self, rec: Gone) -> None:
        self._traced.gone(self._boot(rec.ts), rec.cpu, rec.tid, rec.tgid, rec.status)

    def _attached(self, rec: Attached) -> None:
        self._traced.attached(self._boot(rec.ts), rec.cpu, rec.tid, rec.tgid, rec.comm)

    def _comm(self, rec: Comm) -> None:
        self._traced.comm(self._boot(rec.ts), rec.cpu, rec.tid, rec.tgid, rec.comm)

    def _faults(self, rec: Faults) -> None:
        self._traced.faults(self._boot(rec.ts), rec.cpu, rec.tid, rec.tgid, rec.minflt, rec.majflt)

    def _maps(self, rec: Maps) -> None:
        self._traced.maps(self._boot(rec.ts), rec.cpu, rec.tid, rec.tgid, rec.text)

    def _ack(self, rec: Ack) -> None:
        """A late ACK of a mode change already waited for."""

    # ------------------------------------------------------------------ mode
    def sync_mode(self) -> None:
        """Syscalls mode while anything that could see a syscall is attached
        (``Workload.syscalls_visible``)."""
        want = MODE_SYSCALLS if self.k.workload.syscalls_visible() else MODE_LIFECYCLE
        if want == self.mode or self.eof:
            return
        if want == MODE_SYSCALLS:
            self.k.workload.traced.resync()
        self.mode = want
        self._seq += 1
        seq = self._seq
        self._send(encode_mode(want, seq))
        # the records that come before the ACK are stops handled in the old mode
        self.sock.setblocking(True)
        try:
            while not self.eof:
                n = self.sock.recv_into(self._buf)
                if n == 0:
                    self.eof = True
                    break
                acked = False
                for rec in self._decoder.feed(memoryview(self._buf)[:n]):
                    if isinstance(rec, Ack) and rec.seq == seq:
                        acked = True
                    else:
                        self._dispatch_logged(rec)
                if acked:
                    break
        finally:
            self.sock.setblocking(False)

    def close(self) -> None:
        self.sock.close()
