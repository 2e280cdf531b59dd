"""The server's end of the tracer socket, blocking (dump, tests, benchmarks).

Starting the tracer (:func:`spawn_tracer`), sending it the capture table and mode changes,
and reading its records.  A control message is followed by SIGUSR1 to the tracer, which
sleeps in waitpid (docs/host-tracing.md); while a MODE waits for its ACK the records that
arrive meanwhile are returned by :meth:`TracerChannel.set_mode` (they precede the switch).
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

from .capture import CaptureSpec
from .proto import Ack, Record, StreamDecoder, encode_capture, encode_mode

RECV_SIZE = 1 << 18


class TracerChannel:
    __slots__ = ("_buf", "_decoder", "_pending", "_seq", "eof", "sock", "tracer_pid")
    # _pending: records decoded after an ACK in the same read, for the next read()

    def __init__(self, sock: socket.socket, tracer_pid: int) -> None:
        self.sock = sock
        self.tracer_pid = tracer_pid
        self.eof = False
        self._decoder = StreamDecoder()
        self._buf = bytearray(RECV_SIZE)
        self._pending: list[Record] = []
        self._seq = 0

    def _send(self, msg: bytes) -> None:
        self.sock.sendall(msg)
        os.kill(self.tracer_pid, signal.SIGUSR1)

    def send_capture(self, specs: Sequence[CaptureSpec]) -> None:
        self._send(encode_capture([(s.nr, s.argidx, int(s.kind), s.param) for s in specs]))

    def set_mode(self, mode: int) -> list[Record]:
        """Switch the tracer's mode and wait for its ACK (every running tracee asked to stop).

        Returns the records that arrived before the ACK: stops the tracer handled in the
        old mode, to be processed before anything read() returns later.
        """
        self._seq += 1
        self._send(encode_mode(mode, self._seq))
        before: list[Record] = self._pending
        self._pending = []
        while not self.eof:
            records = self._recv(None)
            for i, rec in enumerate(records):
                if isinstance(rec, Ack) and rec.seq == self._seq:
                    self._pending = [r for r in records[i + 1:] if not isinstance(r, Ack)]
                    return before
                if not isinstance(rec, Ack):
                    before.append(rec)
        raise ConnectionError("the tracer closed the socket before it acknowledged the mode")

    def read(self, timeout: float | None = None) -> list[Record]:
        """The next records ([] after ``timeout`` seconds or at EOF; see ``eof``)."""
        if self._pending:
            out, self._pending = self._pending, []
            return out
        return [r for r in self._recv(timeout) if not isinstance(r, Ack)]

    def _recv(self, timeout: float | None) -> list[Record]:
        if timeout is not None and not select.select([self.sock], [], [], timeout)[0]:
            return []
        n = self.sock.recv_into(self._buf)
        if n == 0:
            self.eof = True
            if self._decoder.pending:
                raise ConnectionError(f"the tracer's stream ends inside a message ({self._decoder.pending} bytes)")
            return []
        return self._decoder.feed(memoryview(self._buf)[:n])


def spawn_tracer(tracer: Path, cmd: Sequence[str], go_fd: int | None = None,
                 **popen: object) -> tuple[subprocess.Popen, TracerChannel]:
    """Start ``tracer`` on ``cmd`` with a fresh socketpair; CMD starts once it has a CAPTURE
    (and EOF on ``go_fd``, when given).

    The tracer starts with SIGUSR1 ignored (a disposition exec keeps), so a control message's
    signal that arrives before it has installed its handler cannot kill it; it reads the
    socket before it starts CMD anyway.  Call from the main thread.
    """
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    args = [str(tracer), "--sock", str(theirs.fileno())]
    fds = [theirs.fileno()]
    if go_fd is not None:
        args += ["--go-fd", str(go_fd)]
        fds.append(go_fd)
    old = signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    try:
        proc = subprocess.Popen([*args, "--", *cmd], pass_fds=fds, **popen)  # type: ignore[call-overload]
    finally:
        signal.signal(signal.SIGUSR1, old)
        theirs.close()
    return proc, TracerChannel(ours, proc.pid)
