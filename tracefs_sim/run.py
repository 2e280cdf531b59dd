"""``tracefs-sim run [options] [-- CMD ARGS...]``: run a program, and any unmodified tracing
tool, against the simulated kernel, with everything CMD does traced for real.

Without CMD, the user's shell (``$SHELL``, else /bin/sh) runs there instead, so whatever is
typed in it sees the simulator and is traced.

CMD runs under the host tracer (tracefs_sim/host, docs/host-tracing.md): every syscall,
fork, exec, exit and signal of CMD and its descendants reaches the simulated kernel as that
task.  run starts the tracer first (the server needs its pid for the SIGUSR1 after a control
message), then the server with ``--tracer-fd``/``--tracer-pid``, and lets CMD start (EOF on
the tracer's ``--go-fd``) once the mount and the rest of the namespace are in place.

Tools do not take a tracing directory: libtracefs (trace-cmd) takes the first ``/proc/mounts``
line of type exactly ``tracefs`` and mounts a real one when there is none, and its debugfs
the first line of type ``debugfs``; perf ``statfs()``s a list of paths for ``TRACEFS_MAGIC``
then reads ``/proc/mounts``; perf-tools hard-code ``/sys/kernel/debug/tracing``; ftracetest
takes the first ``/proc/mounts`` line containing "tracefs" (see ../shared/notes/tools.md).
A ``fuse.tracefs`` mount is found by none of them, and the files around tracefs that the
tracing code reads or writes belong to the host kernel.  So CMD runs in a private mount
namespace where the machine is the simulated kernel's:

* every tracefs/debugfs mount (and other simulator mounts) is detached, a real tracefs is
  mounted on ``/sys/kernel/tracing`` (the ``tracefs`` line) and the simulator over it
  ("over-mount": path lookup lands in the simulator);
* a real debugfs is mounted on ``/sys/kernel/debug`` (the ``debugfs`` line: else libtracefs'
  ``tracefs_debug_dir()`` would mount one itself, exposing the real tracefs at
  ``debug/tracing``) and a tmpfs over it holding the simulated kernel's debugfs files
  (``kprobes/list``: the server publishes them) and ``tracing``, where the simulator is bound;
* ``/proc/kallsyms``, ``/proc/modules`` (the ``--module`` Python modules included) and
  ``/proc/version`` are the simulated kernel's (the server writes them at start);
* each ``/proc/sys`` directory holding one of the simulated kernel's sysctls
  (``kernel/stack_tracer_enabled``, ``debug/kprobes-optimization``) is a tmpfs with the
  simulator's as files the server mirrors and the host's other entries as symlinks into a
  bind of the host's /proc/sys (live; one mount, where a bind per entry made hundreds);
  ``kernel/ftrace_enabled`` is a writable file (trace-cmd writes 1 there and dies when it
  cannot), ``kernel/sched_rt_runtime_us`` a private copy (ftracetest sets and restores it:
  never the host's);
* ``/sys/devices/system/cpu/{possible,present,online}`` say ``0-(N-1)`` for the mount's N CPUs
  (``sysconf(_SC_NPROCESSORS_CONF)``, which trace-cmd uses to open ``per_cpu/cpuN``), and
  each ``cpuN/online`` is a private file (taking a CPU offline never touches a host CPU);
* mount(8) is a wrapper that hands a remount of the simulator (``mount -o remount,gid=N``:
  tracefs's ``uid=``/``gid=``, which FUSE cannot deliver) to the server and everything else
  to the real mount(8).

Nothing is written to the host's tracing files: the real tracefs and debugfs are only mount
points.  When CMD ends the simulator is unmounted, and the namespace (with all its mounts)
goes away with this process.  CMD's exit status is returned (128+N when it was killed by
signal N, 127 when it is not found, 126 when it cannot be executed).  Needs root (mount
namespace, tracefs mount, ptrace).

Signals: the terminal's ^C and ^\\ go to CMD (run and the tracer ignore them), so ^C ends CMD
and then run unmounts; SIGTERM/SIGHUP sent to run are passed on to the tracer, which passes
them to CMD, and a CMD still running KILL_GRACE seconds later is killed (the tracer's
PTRACE_O_EXITKILL takes every descendant with it).
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
from .host.build import tracer_path
from .host.channel import spawn_tracer
from .sysctl_mirror import PROC_FILES

CLONE_NEWNS = 0x00020000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
KILL_GRACE = 3.0    # seconds CMD has to end after run got SIGTERM/SIGHUP
TRACING = "/sys/kernel/tracing"
DEBUGFS = "/sys/kernel/debug"
PROC_SYS = "/proc/sys"
CPU_DIR = "/sys/devices/system/cpu"
CPU_FILES = ("possible", "present", "online")
# /proc/sys files of run's own: plain files in place of the host's (name -> initial text;
# None: a private copy of the host's value)
SYSCTL_FILES: dict[str, str | None] = {"kernel/ftrace_enabled": "1\n",
                                       "kernel/sched_rt_runtime_us": None}
REMOUNT_XATTR = "trusted.tracefs_sim.remount"
# mount(8) in the namespace: a remount of a simulator mount goes to its server as the
# remount xattr of its root (handlers.setxattr), anything else to the real mount(8)
MOUNT_WRAPPER = """#!/bin/sh
opts="" ; remount=0 ; target="" ; prev=""
for a in "$@"; do
    case "$prev" in -o) opts="$a" ;; esac
    case "$a" in -o|-t) ;; *) [ "$prev" != "-o" ] && [ "$prev" != "-t" ] && target="$a" ;; esac
    prev="$a"
done
case ",$opts," in *,remount,*) remount=1 ;; esac
if [ "$remount" = 1 ] && [ -n "$target" ]; then
    dir=$(cd "$target" 2>/dev/null && pwd -P)
    if [ -n "$dir" ] && awk -v d="$dir" '$2 == d && $3 == "fuse.tracefs" {{f=1}} END {{exit !f}}' /proc/mounts; then
        exec {python} -c 'import os, sys; os.setxattr(sys.argv[1], "{xattr}", sys.argv[2].encode())' "$dir" "$opts"
    fi
fi
exec {real} "$@"
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="tracefs-sim run",
        description="Run CMD (default: $SHELL) traced, in a private mount namespace where "
                    "/sys/kernel/tracing, /sys/kernel/debug, /proc/kallsyms, /proc/modules, the "
                    "tracing sysctls and the CPU count are the simulator's. Exit status: CMD's.")
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


_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source: str | None, target: str, fstype: str | None = None, flags: int = 0,
          data: str | None = None) -> None:
    """mount(2) (a mount(8) process per mount made the set-up slow)."""
    def enc(v: str | None) -> bytes | None:
        return None if v is None else os.fsencode(v)

    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
           f"mount {source} on {target}")


def bind(source: str, target: str, rec: bool = False) -> None:
    mount(source, target, None, MS_BIND | (MS_REC if rec else 0))


def detach(target: str) -> bool:
    """umount2(MNT_DETACH): a lazy unmount (False when it failed)."""
    return _libc.umount2(os.fsencode(target), MNT_DETACH) == 0


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
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS) (tracefs-sim run needs root)")
    mount(None, "/", None, MS_REC | MS_PRIVATE)


def _write(path: str, text: str) -> str:
    with open(path, "w") as f:
        f.write(text)
    return path


def _bind_over(src: str, target: str) -> None:
    """Bind ``src`` over ``target`` (skipped when target is missing: nothing to stand in for)."""
    if os.path.exists(target):
        bind(src, target)


class Namespace:
    """The private namespace's machine, set up around the server (see the module doc):
    ``before_server`` what the server needs in place, ``after_server`` what needs it."""

    def __init__(self, nr_cpus: int, work: str) -> None:
        self.nr_cpus = nr_cpus
        self.work = work
        self.proc_dir = os.path.join(work, "proc")         # the server writes /proc files here
        self.sysctl_dir = os.path.join(work, "sysctl")     # a tmpfs: the /proc/sys stand-ins
        self.host_sys = os.path.join(work, "hostsys")      # the host's /proc/sys, bound

    def before_server(self) -> list[str]:
        """Detach the tracing mounts, mount the real tracefs and debugfs with a tmpfs over
        the debugfs, the sysctl tmpfs; the server's arguments for its files."""
        for mp, fstype in sorted(_mounts(), key=lambda m: m[0], reverse=True):  # innermost first
            if fstype in ("tracefs", "debugfs", "fuse.tracefs"):  # other sims: our copies only
                detach(mp)
        mount("nodev", TRACING, "tracefs")
        args = ["--proc-dir", self.proc_dir]
        os.mkdir(self.proc_dir)
        if os.path.isdir(DEBUGFS):
            try:
                mount("nodev", DEBUGFS, "debugfs")
            except OSError:
                pass        # no debugfs in this kernel: the tmpfs alone stands in
            mount("debugfs", DEBUGFS, "tmpfs", data="mode=0700")
            os.mkdir(os.path.join(DEBUGFS, "tracing"))
            args += ["--debugfs-dir", DEBUGFS]
        os.mkdir(self.sysctl_dir)
        mount("sim-sysctl", self.sysctl_dir, "tmpfs", data="mode=0555")
        return [*args, "--sysctl-dir", self.sysctl_dir]

    def after_server(self) -> None:
        """Bind the simulator at debug/tracing, the server's /proc files, the /proc/sys
        stand-ins, the CPU files and the mount(8) wrapper."""
        if os.path.isdir(DEBUGFS):
            bind(TRACING, os.path.join(DEBUGFS, "tracing"))
        for name in PROC_FILES:
            _bind_over(os.path.join(self.proc_dir, name), f"/proc/{name}")
        self._sysctls()
        self._cpus()
        self._mount_wrapper()

    def _sysctls(self) -> None:
        """Each /proc/sys directory with a file of the simulator's (the server made its
        sysctls under the tmpfs) or of run's: the host's other entries as symlinks into
        the bind of the host's /proc/sys, then the tmpfs directory bound over the host's."""
        for rel, text in SYSCTL_FILES.items():
            path = os.path.join(self.sysctl_dir, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if os.path.exists(path):
                continue        # the simulated kernel's own
            if text is None:
                try:
                    with open(os.path.join(PROC_SYS, rel)) as f:
                        text = f.read()
                except OSError:
                    continue    # the host has none: neither do we
            _write(path, text)
        os.mkdir(self.host_sys)
        bind(PROC_SYS, self.host_sys, rec=True)
        for d in sorted(os.listdir(self.sysctl_dir)):
            shadow = os.path.join(self.sysctl_dir, d)
            host = os.path.join(PROC_SYS, d)
            if not os.path.isdir(host):
                continue    # /proc/sys has no place for it (no directory can be made there)
            ours = set(os.listdir(shadow))
            for name in sorted(os.listdir(host)):
                if name not in ours:
                    os.symlink(os.path.join(self.host_sys, d, name), os.path.join(shadow, name))
            bind(shadow, host)

    def _cpus(self) -> None:
        cpus = "0\n" if self.nr_cpus == 1 else f"0-{self.nr_cpus - 1}\n"
        text = os.path.join(self.work, "cpus")
        _write(text, cpus)
        for name in CPU_FILES:
            _bind_over(text, os.path.join(CPU_DIR, name))
        for d in sorted(os.listdir(CPU_DIR)):
            online = os.path.join(CPU_DIR, d, "online")
            if d.startswith("cpu") and d[3:].isdigit() and os.path.isfile(online):
                try:
                    with open(online) as f:
                        _bind_over(_write(os.path.join(self.work, f"online-{d}"), f.read()), online)
                except OSError:
                    continue

    def _mount_wrapper(self) -> None:
        found = shutil.which("mount")
        if found is None:
            return
        real = os.path.realpath(found)
        copy = shutil.copy2(real, os.path.join(self.work, "mount.real"))
        wrapper = _write(os.path.join(self.work, "mount"),
                         MOUNT_WRAPPER.format(python=sys.executable, xattr=REMOUNT_XATTR, real=copy))
        os.chmod(wrapper, 0o755)
        bind(wrapper, real)


def _mounted(path: str) -> bool:
    return any(mp == path and fstype.startswith("fuse") for mp, fstype in _mounts())


def _start_server(args: argparse.Namespace, nr_cpus: int, log: str, files: list[str],
                  tracer: tuple[int, int]) -> subprocess.Popen:
    """The FUSE server on TRACING; ``tracer`` = (the server's end of the tracer socket, the
    tracer's pid)."""
    cmd = [sys.executable, "-m", "tracefs_sim", TRACING, "--cpus", str(nr_cpus), *files,
           "--tracer-fd", str(tracer[0]), "--tracer-pid", str(tracer[1])]
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
                                pass_fds=tracer[:1],
                                start_new_session=True)  # a terminal ^C goes to CMD only
    t0 = time.monotonic()
    while time.monotonic() - t0 < args.timeout:
        if _mounted(TRACING):
            return proc
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode}")
        time.sleep(0.01)
    _stop_server(proc)
    raise RuntimeError(f"mount not ready after {args.timeout} s")


def _stop_server(proc: subprocess.Popen) -> None:
    debug_tracing = os.path.join(DEBUGFS, "tracing")
    while _mounted(debug_tracing) and detach(debug_tracing):
        pass
    if _mounted(TRACING):
        # the FUSE mount goes; the server sees the end of its session and exits
        detach(TRACING)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class _Abort(Exception):
    """A signal asked run to stop before CMD started: clean up, exit 128+signal."""

    def __init__(self, sig: int) -> None:
        super().__init__(sig)
        self.sig = sig


def _abort(sig: int, _frame: object) -> None:
    raise _Abort(sig)


STOP_SIGNALS = (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP)


def _wait(child: subprocess.Popen, go: int) -> int:
    """Let CMD start (close ``go``) and return its exit status, waiting for the tracer
    (which exits with it).

    The terminal's ^C and ^\\ are CMD's own (run ignores them); a SIGTERM/SIGHUP sent to
    run is passed on to the tracer (which passes it to CMD), and KILL_GRACE seconds later
    a tracer still running is killed (128+the signal; PTRACE_O_EXITKILL ends every
    tracee).
    """
    got: list[int] = []

    def forward(sig: int, _frame: object) -> None:
        child.send_signal(sig)
        got.append(sig)

    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, forward)
    for s in (signal.SIGINT, signal.SIGQUIT):
        signal.signal(s, signal.SIG_IGN)
    os.close(go)    # CMD may start
    deadline = None
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
    return 128 - rc if rc < 0 else rc


def _start_traced(args: argparse.Namespace, nr_cpus: int, log: str,
                  files: list[str]) -> tuple[subprocess.Popen, subprocess.Popen, int]:
    """The tracer (waiting), then the server: (server, tracer, the go fd to close for CMD)."""
    go_r, go_w = os.pipe()
    try:
        tracer, ch = spawn_tracer(tracer_path(), args.cmd, go_fd=go_r)
    finally:
        os.close(go_r)
    try:
        try:
            proc = _start_server(args, nr_cpus, log, files, tracer=(ch.sock.fileno(), tracer.pid))
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
    if not os.access(tracer_path(), os.X_OK):
        print(f"tracefs-sim run: {tracer_path()} is not built (scripts/setup builds it)",
              file=sys.stderr)
        return 2
    old = {s: signal.signal(s, _abort) for s in STOP_SIGNALS}   # until CMD may start
    try:
        return _main(args, nr_cpus)
    except _Abort as e:
        return 128 + e.sig
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _main(args: argparse.Namespace, nr_cpus: int) -> int:
    try:
        _unshare_mounts()
    except (OSError, RuntimeError) as e:
        print(f"tracefs-sim run: {e}", file=sys.stderr)
        return 2
    work = tempfile.mkdtemp(prefix="sim-run.")  # no "tracefs" in /proc/mounts but the tracing dir's
    log = args.server_log or os.path.join(work, "server.log")
    ns = Namespace(nr_cpus, work)
    proc = tracer = None
    try:
        try:
            files = ns.before_server()
            proc, tracer, go = _start_traced(args, nr_cpus, log, files)
            ns.after_server()
        except (OSError, RuntimeError, _Abort) as e:
            if tracer is not None:
                tracer.kill()   # still waiting for the go: CMD never started
                tracer.wait()
            if isinstance(e, _Abort):
                raise
            print(f"tracefs-sim run: {e}", file=sys.stderr)
            try:
                with open(log, errors="replace") as f:
                    sys.stderr.write(f.read())
            except OSError:
                pass
            return 2
        return _wait(tracer, go)
    finally:
        for s in STOP_SIGNALS:
            signal.signal(s, signal.SIG_IGN)    # the clean-up is not interrupted
        if proc is not None:
            _stop_server(proc)
        # the sysctl stand-ins hold bind mounts of /proc/sys entries: detach them before
        # the work directory goes (the namespace ends with this process anyway)
        for d in (ns.sysctl_dir, ns.host_sys):
            detach(d)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
