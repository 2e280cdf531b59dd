"""``tracefs-sim run [options] [-- CMD ARGS...]``: run an unmodified tracing tool against the simulator.

Without CMD, the user's shell (``$SHELL``, else /bin/sh) runs there instead, so whatever is
typed in it sees the simulator.

Tools do not take a tracing directory: libtracefs (trace-cmd) takes the first ``/proc/mounts``
line of type exactly ``tracefs`` and mounts a real one when there is none, perf ``statfs()``s
a list of paths for ``TRACEFS_MAGIC`` then reads ``/proc/mounts``, perf-tools hard-code
``/sys/kernel/debug/tracing`` (see ../shared/notes/tools.md).  A ``fuse.tracefs`` mount is found
by none of them.  So CMD runs in a private mount namespace set up like this:

* every tracefs/debugfs mount (and other simulator mounts: ftracetest takes the first
  ``/proc/mounts`` line containing "tracefs") is detached from the namespace, then a real tracefs is mounted on
  ``/sys/kernel/tracing`` (it gives the ``tracefs`` line libtracefs and perf look for) and the
  simulator is mounted over it ("over-mount": path lookup lands in the simulator);
* a real debugfs is mounted on ``/sys/kernel/debug`` (else libtracefs' ``tracefs_debug_dir()``
  would mount one itself, exposing the real tracefs at ``debug/tracing``) and the simulator is
  bind-mounted over ``/sys/kernel/debug/tracing``;
* ``/proc/kallsyms`` shows the simulated kernel's symbols (trace-cmd copies it into trace.dat
  and ``report`` names functions from it);
* ``/proc/sys/kernel/ftrace_enabled`` is a plain writable file (trace-cmd writes ``1`` there
  and dies when it cannot);
* ``/sys/devices/system/cpu/{possible,present,online}`` say ``0-(N-1)`` for the mount's N CPUs
  (``sysconf(_SC_NPROCESSORS_CONF)``, which trace-cmd uses to open ``per_cpu/cpuN``).

Nothing is written to the host's tracing files: the real tracefs is only a mount point.  When
CMD ends the simulator is unmounted, and the namespace (with all its mounts) goes away with
this process.  CMD's exit status is returned (128+N when it was killed by signal N, 127 when
it is not found, 126 when it cannot be executed).  Needs root (mount namespace, tracefs mount).

How CMD's own activity reaches the simulated kernel: with ``TRACEFS_SIM_TRACER=1`` CMD runs
under the host tracer (tracefs_sim/host, docs/host-tracing.md): every syscall, fork, exec,
exit and signal of CMD and its descendants, reported to the server over a socketpair
(``--tracer-fd``/``--tracer-pid``).  run starts the tracer first (the server needs its pid
for the SIGUSR1 after a control message), then the server, and lets CMD start (EOF on the
tracer's ``--go-fd``) once the mount and its debugfs bind are in place.  Otherwise CMD runs
under :mod:`tracefs_sim.syscall_mirror` (its open/symlink syscalls only) -- the default until
the server feeds the tracer's records to the simulated kernel.

Signals: the terminal's ^C and ^\\ go to CMD (run and the tracer ignore them), so ^C ends CMD
and then run unmounts; SIGTERM/SIGHUP sent to run are passed on to CMD, and a CMD still
running KILL_GRACE seconds later is killed (the tracer's PTRACE_O_EXITKILL takes every
descendant with it).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from .fuse.caller import possible_cpus

CLONE_NEWNS = 0x00020000
KILL_GRACE = 3.0    # seconds CMD has to end after run got SIGTERM/SIGHUP
TRACING = "/sys/kernel/tracing"
DEBUGFS = "/sys/kernel/debug"
CPU_FILES = ("possible", "present", "online")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="tracefs-sim run",
        description="Run CMD (default: $SHELL) in a private mount namespace where "
                    "/sys/kernel/tracing, /sys/kernel/debug/tracing, /proc/kallsyms and the CPU "
                    "count are the simulator's. Exit status: CMD's.")
    ap.add_argument("--cpus", type=int, default=None, help="CPUs (default: the machine's possible CPUs)")
    ap.add_argument("--seed", type=int, default=None, help="deterministic kernel with this seed")
    ap.add_argument("--buffer-kb", type=int, default=None, help="per-CPU ring buffer size")
    ap.add_argument("--module", action="append", default=[], metavar="FILE.py",
                    help="a Python kernel module to load (repeatable; see tracefs-sim --help)")
    ap.add_argument("--module-arg", action="append", default=[], metavar="K=V",
                    help="a parameter for the modules' init_module (repeatable)")
    ap.add_argument("--debug", action="store_true", help="server debug logging")
    ap.add_argument("--server-log", default=None, metavar="FILE",
                    help="write the server's log here (default: shown on stderr only on failure)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the mount")
    ap.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ARGS... (default: $SHELL)")
    args = ap.parse_args(argv)
    if args.cmd and args.cmd[0] == "--":
        args.cmd = args.cmd[1:]
    if not args.cmd:
        args.cmd = [os.environ.get("SHELL") or "/bin/sh"]
    return args


def _sh(*cmd: str, check: bool = True) -> bool:
    r = subprocess.run(list(cmd), stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if r.returncode and check:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip() or r.returncode}")
    return r.returncode == 0


def _mounts() -> list[tuple[str, str]]:
    """(mount point, fs type) of /proc/self/mounts, octal escapes undone, in order."""
    out = []
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 3:
                out.append((fields[1].encode().decode("unicode_escape"), fields[2]))
    return out


def _unshare_mounts() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWNS): {os.strerror(err)} (tracefs-sim run needs root)")
    _sh("mount", "--make-rprivate", "/")


def _bind_file(src_text: str, target: str, work: str) -> bool:
    """Bind a plain file holding ``src_text`` over ``target`` (skipped when target is missing)."""
    if not os.path.exists(target):
        return False
    path = os.path.join(work, target.strip("/").replace("/", "_"))
    with open(path, "w") as f:
        f.write(src_text)
    return _sh("mount", "--bind", path, target, check=False)


def _kallsyms_text() -> str:
    from .kernel.kallsyms import Kallsyms

    return "".join(line + "\n" for line in Kallsyms().text_lines())


def _prepare(nr_cpus: int, work: str) -> None:
    """Everything but the simulator mount itself (namespace already private)."""
    for mp, fstype in sorted(_mounts(), key=lambda m: m[0], reverse=True):  # innermost first
        if fstype in ("tracefs", "debugfs", "fuse.tracefs"):  # other sims: our copies only
            _sh("umount", "-l", mp, check=False)
    _sh("mount", "-t", "tracefs", "nodev", TRACING)
    if os.path.isdir(DEBUGFS):
        _sh("mount", "-t", "debugfs", "nodev", DEBUGFS, check=False)
    _bind_file(_kallsyms_text(), "/proc/kallsyms", work)
    if not _bind_file("1\n", "/proc/sys/kernel/ftrace_enabled", work):
        print("tracefs-sim run: warning: could not shadow /proc/sys/kernel/ftrace_enabled", file=sys.stderr)
    cpus = "0\n" if nr_cpus == 1 else f"0-{nr_cpus - 1}\n"
    for name in CPU_FILES:
        _bind_file(cpus, f"/sys/devices/system/cpu/{name}", work)


def _mounted(path: str) -> bool:
    return any(mp == path and fstype.startswith("fuse") for mp, fstype in _mounts())


def _start_server(args: argparse.Namespace, nr_cpus: int, log: str,
                  syscall_socket: str | None = None,
                  tracer: tuple[int, int] | None = None) -> subprocess.Popen:
    """The FUSE server on TRACING; ``tracer`` = (the server's end of the tracer socket, the
    tracer's pid)."""
    cmd = [sys.executable, "-m", "tracefs_sim", TRACING, "--cpus", str(nr_cpus)]
    if syscall_socket:
        cmd += ["--syscall-socket", syscall_socket]
    if tracer:
        cmd += ["--tracer-fd", str(tracer[0]), "--tracer-pid", str(tracer[1])]
    if args.seed is not None:
        cmd += ["--seed", str(args.seed)]
    if args.buffer_kb is not None:
        cmd += ["--buffer-kb", str(args.buffer_kb)]
    if args.debug:
        cmd.append("--debug")
    for m in args.module:
        cmd += ["--module", m]
    for kv in args.module_arg:
        cmd += ["--module-arg", kv]
    env = dict(os.environ)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [here, env.get("PYTHONPATH", "")]))
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=env,
                                pass_fds=tracer[:1] if tracer else (),
                                start_new_session=True)  # a terminal ^C goes to CMD only
    t0 = time.monotonic()
    while time.monotonic() - t0 < args.timeout:
        if _mounted(TRACING):
            return proc
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode}")
        time.sleep(0.02)
    _stop_server(proc)
    raise RuntimeError(f"mount not ready after {args.timeout} s")


def _stop_server(proc: subprocess.Popen) -> None:
    debug_tracing = os.path.join(DEBUGFS, "tracing")
    while _mounted(debug_tracing):
        if not _sh("umount", "-l", debug_tracing, check=False):
            break
    if _mounted(TRACING):
        fusermount = shutil.which("fusermount3") or shutil.which("fusermount")
        if not (fusermount and _sh(fusermount, "-u", "-z", TRACING, check=False)):
            _sh("umount", "-l", TRACING, check=False)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _wait(child: subprocess.Popen) -> int:
    """CMD's exit status, waiting for ``child`` (the tracer, or CMD itself).

    The terminal's ^C and ^\\ are CMD's own; a SIGTERM/SIGHUP sent to run is passed on to
    ``child``, and KILL_GRACE seconds later a child still running is killed (128+the signal).
    """
    got: list[int] = []

    def forward(sig: int, _frame: object) -> None:
        child.send_signal(sig)
        got.append(sig)

    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGHUP)}
    old.update({s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGQUIT)})
    deadline = None
    try:
        while True:
            try:
                rc = child.wait(0.1)
                break
            except subprocess.TimeoutExpired:
                pass
            if got and deadline is None:
                deadline = time.monotonic() + KILL_GRACE
            if deadline is not None and time.monotonic() > deadline:
                child.kill()
                child.wait()
                return 128 + got[0]
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return 128 - rc if rc < 0 else rc


def _run_cmd(cmd: list[str]) -> int:
    try:
        child = subprocess.Popen(cmd)
    except OSError as e:
        print(f"tracefs-sim run: {cmd[0]}: {e.strerror}", file=sys.stderr)
        return 127 if isinstance(e, FileNotFoundError) else 126
    return _wait(child)


def _tracing() -> bool:
    """CMD under the host tracer (TRACEFS_SIM_TRACER=1) or under syscall_mirror."""
    return os.environ.get("TRACEFS_SIM_TRACER") == "1"


def _start_traced(args: argparse.Namespace, nr_cpus: int,
                  log: str) -> tuple[subprocess.Popen, subprocess.Popen, int]:
    """The tracer (waiting), then the server: (server, tracer, the go fd to close for CMD)."""
    from .host.build import tracer_path
    from .host.channel import spawn_tracer

    go_r, go_w = os.pipe()
    try:
        tracer, ch = spawn_tracer(tracer_path(), args.cmd, go_fd=go_r)
    finally:
        os.close(go_r)
    try:
        try:
            proc = _start_server(args, nr_cpus, log, tracer=(ch.sock.fileno(), tracer.pid))
        finally:
            ch.sock.close()   # the server has its copy
    except (OSError, RuntimeError):
        tracer.kill()       # it has not started CMD: nothing else to end
        tracer.wait()
        os.close(go_w)
        raise
    return proc, tracer, go_w


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    nr_cpus = args.cpus if args.cpus and args.cpus > 0 else possible_cpus()
    try:
        _unshare_mounts()
    except (OSError, RuntimeError) as e:
        print(f"tracefs-sim run: {e}", file=sys.stderr)
        return 2
    work = tempfile.mkdtemp(prefix="tracefs-sim-run.")
    log = args.server_log or os.path.join(work, "server.log")
    proc = None
    try:
        try:
            _prepare(nr_cpus, work)
            if _tracing():
                proc, tracer, go = _start_traced(args, nr_cpus, log)
                _sh("mount", "--bind", TRACING, os.path.join(DEBUGFS, "tracing"), check=False)
                os.close(go)    # CMD may start
                return _wait(tracer)
            sock = os.path.join(work, "syscalls.sock")
            proc = _start_server(args, nr_cpus, log, sock)
            _sh("mount", "--bind", TRACING, os.path.join(DEBUGFS, "tracing"), check=False)
        except (OSError, RuntimeError) as e:
            print(f"tracefs-sim run: {e}", file=sys.stderr)
            try:
                with open(log, errors="replace") as f:
                    sys.stderr.write(f.read())
            except OSError:
                pass
            return 2
        # CMD's open/symlink syscalls outside the mount pass the simulated kernel too
        # (a probe on do_sys_openat2 sees what it opens): tracefs_sim.syscall_mirror
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.02)
        return _run_cmd([sys.executable, "-m", "tracefs_sim.syscall_mirror", sock, "--", *args.cmd])
    finally:
        if proc is not None:
            _stop_server(proc)
        # the namespace and its bind mounts end with this process; their sources may go now
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
