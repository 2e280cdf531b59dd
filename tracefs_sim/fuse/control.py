"""The server side of a mount's control channel: ``tracefs-sim insmod/rmmod/lsmod/dmesg``
(the client and the wire format are tracefs_sim/modctl.py).

``serve(ops)`` runs beside the FUSE session (serve.py starts it): it listens on the
mount's abstract socket, accepts only peers of the server's own user or root
(SO_PEERCRED), and runs each request in the simulated kernel between two FUSE requests
(one trio thread: the kernel is never entered twice).  A request runs as the caller's
task (its pid, comm and CPU), as the init_module(2)/delete_module(2) syscall would:
records a module's init makes show that task.  A failed load answers the kernel's
errno and message; the mount stays up whatever the module does (its Python exceptions
are in the kernel log, kernel/module.py).
"""

from __future__ import annotations

import errno
import json
import logging
import socket

import trio

from .. import modctl
from ..kernel.module import ModuleError
from .handlers import Operations

log = logging.getLogger("tracefs_sim.control")


async def serve(ops: Operations) -> None:
    """Accept control requests for ``ops``' mount until cancelled."""
    srv = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await srv.bind(modctl.address(ops.mountpoint))
    except OSError as e:
        # another server owns the name (the same mountpoint mounted twice): this mount
        # has no control channel, which the log says
        log.warning("control socket for %s: %s", ops.mountpoint, e)
        srv.close()
        return
    srv.listen(8)
    with srv:
        while True:
            conn, _ = await srv.accept()
            with conn:
                try:
                    await _one(ops, conn)
                except Exception:    # one boundary: a bad request never ends the mount
                    log.exception("control request failed")


async def _one(ops: Operations, conn: trio.socket.SocketType) -> None:
    pid, uid = modctl.peer_uid(conn)          # the raw socket underneath: getsockopt only
    if not modctl.trusted(uid):
        log.warning("control request from uid %d (pid %d) refused", uid, pid)
        return
    chunks: list[bytes] = []
    size = 0
    while True:
        data = await conn.recv(65536)
        if not data:
            break
        size += len(data)
        if size > modctl.MAX_MESSAGE:
            return
        chunks.append(data)
    try:
        req = json.loads(b"".join(chunks))
        reply = handle(ops, req, pid, uid) if isinstance(req, dict) else _bad()
    except ValueError:
        reply = _bad()
    out = memoryview(json.dumps(reply).encode())
    try:
        while out:
            out = out[await conn.send(out):]
    except (BrokenPipeError, ConnectionResetError):
        log.info("control client pid %d left before the reply", pid)


def _bad() -> dict[str, object]:
    return {"err": errno.EINVAL, "msg": "malformed request"}


def handle(ops: Operations, req: dict[str, object], pid: int, uid: int) -> dict[str, object]:
    """One request, as task ``pid``: the reply."""
    k = ops.kernel
    op = req.get("op")
    if op == "lsmod":
        return {"err": 0, "text": k.modules.lsmod_text()}
    if op == "dmesg":
        return {"err": 0, "text": k.modules.dmesg_text()}
    name = req.get("name")
    if not isinstance(name, str):
        return _bad()
    comm, cpu = ops.tasks.lookup(pid)
    k.syscall_enter(pid, comm, cpu, uid)
    ret = 0
    try:
        if op == "insmod":
            source, path, params = req.get("source"), req.get("path"), req.get("params")
            if not isinstance(source, str) or not isinstance(path, str) or not isinstance(params, dict):
                return _bad()
            k.modules.load(name, source, path, {str(a): str(b) for a, b in params.items()})
            log.info("insmod %s (%s) by pid %d", name, path, pid)
        elif op == "rmmod":
            k.modules.delete_module(name)
            log.info("rmmod %s by pid %d", name, pid)
        else:
            return _bad()
    except ModuleError as e:
        ret = -(e.errno or errno.EINVAL)
        return {"err": e.errno or errno.EINVAL, "msg": e.strerror or str(e)}
    finally:
        k.syscall_exit(ret)
    return {"err": 0, "text": ""}
