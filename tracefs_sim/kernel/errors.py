"""The one error type that crosses layers, and the "would block" sentinel.

Kernel code raises ``KernelError(errno)`` where the real kernel returns ``-errno``;
the FUSE adapter maps it mechanically to the same errno for the caller.  Reads that
the kernel would sleep in return ``WOULD_BLOCK`` instead: only the adapter waits.
"""

from __future__ import annotations

import errno as _errno


class KernelError(Exception):
    """A ``-errno`` return of the simulated kernel."""

    def __init__(self, err: int, msg: str = "") -> None:
        super().__init__(err, msg or _errno.errorcode.get(err, str(err)))
        self.errno = err
        self.msg = msg


def raise_errno(err: int, msg: str = "") -> None:
    """Raise ``KernelError(err)``: one greppable place for every errno choice."""
    raise KernelError(err, msg)


class _WouldBlock:
    """Sentinel: the read would sleep (the kernel's wait_event); poll the wait queue."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "WOULD_BLOCK"

    def __bool__(self) -> bool:
        return False


WOULD_BLOCK = _WouldBlock()
