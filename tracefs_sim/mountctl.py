"""Start and stop simulator mounts: one lifecycle for tests, benchmarks and scripts.

A server is a subprocess, ``python -m tracefs_sim PATH ARGS`` by default, with its
stdout and stderr in a log file.  It is *ready* when PATH is listed in
/proc/self/mountinfo (reading that never touches the FUSE file system, so a hung server
cannot hang the caller).  It is *stopped* by a lazy unmount (``fusermount3 -u -z``:
a busy mount goes too, and a server whose mount went away ends by itself), then
SIGTERM, then SIGKILL.  The server logs an unexpected exception with its Traceback and
goes on serving: callers that must not tolerate one check ``traceback()``.

The server runs the package this module was imported from (its directory leads
PYTHONPATH and is the server's working directory), so a checkout's tests and scripts
mount that checkout, with the checkout's ``.venv`` interpreter when it has one (the one
``scripts/setup`` gives pyfuse3 and trio).  Standard library only: scripts import it
with any python3.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # the directory holding tracefs_sim/
READY_TIMEOUT = 60.0    # seconds from start to mounted (a loaded 2-core machine needs ~2)
READY_POLL = 0.005      # seconds between looks at mountinfo (start-to-ready is a figure)
UNMOUNT_WAIT = 2.0      # seconds a server gets to end by itself after the lazy unmount
TERM_WAIT = 5.0         # seconds after SIGTERM before SIGKILL


class MountError(RuntimeError):
    """The server exited before its mount was ready, or was not ready in time."""


def have_fuse() -> bool:
    """Whether this host can mount: /dev/fuse and fusermount3."""
    return os.path.exists("/dev/fuse") and shutil.which("fusermount3") is not None


def mount_points() -> set[str]:
    """Mount points listed in /proc/self/mountinfo (field 5, octal escapes undone)."""
    out = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            out.add(line.split()[4].encode().decode("unicode_escape"))
    return out


def lazy_unmount(path: Path | str) -> bool:
    """``fusermount3 -u -z PATH``; True when it succeeded."""
    return subprocess.run(["fusermount3", "-u", "-z", str(path)], capture_output=True).returncode == 0


def server_python() -> str:
    """The interpreter servers run with: the checkout's .venv/bin/python when the package
    sits in a checkout that has one, else this one."""
    venv = PACKAGE_ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def server_command(path: Path | str, args: Sequence[str] = (), python: str | None = None
                   ) -> list[str]:
    """The command line of a simulator server mounting ``path``."""
    return [python or server_python(), "-m", "tracefs_sim", str(path), *args]


class Mount:
    """A FUSE server subprocess and its mountpoint, ready when the constructor returns.

    ``args`` are the simulator's options (``--cpus 2 --seed 1``); ``command`` replaces
    the whole command line (another FUSE server, e.g. the benchmark's floor file
    system).  ``pythonpath`` entries go before the package's own directory (a test's
    ``--tree-factory`` module).  ``ready_s`` is the start-to-ready time.
    """

    def __init__(self, path: Path | str, args: Sequence[str] = (), *,
                 python: str | None = None, command: Sequence[str] | None = None,
                 log: Path | str | None = None, pythonpath: Sequence[Path | str] = (),
                 timeout: float = READY_TIMEOUT) -> None:
        self.path = Path(path)
        self.log = Path(log) if log is not None else self.path.with_name(self.path.name + ".server.log")
        cmd = list(command) if command is not None else server_command(self.path, args, python)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [*map(str, pythonpath), str(PACKAGE_ROOT), *filter(None, [env.get("PYTHONPATH")])])
        self._log_file = open(self.log, "wb")
        self._stopped = False
        t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, cwd=PACKAGE_ROOT, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._log_file, stderr=self._log_file)
        while not self.mounted():
            if self.proc.poll() is not None:
                self.stop()
                raise MountError(f"mount server exited with {self.proc.returncode}:\n"
                                 f"{self.stderr()[-3000:]}")
            if time.monotonic() - t0 > timeout:
                self.stop()
                raise MountError(f"mount not ready after {timeout} s:\n{self.stderr()[-3000:]}")
            time.sleep(READY_POLL)
        self.ready_s = time.monotonic() - t0

    def __enter__(self) -> Mount:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def mounted(self) -> bool:
        return str(self.path) in mount_points()

    def stderr(self) -> str:
        """What the server wrote so far (stdout and stderr)."""
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def traceback(self) -> str | None:
        """The server's output from its first Traceback on, None when it logged none."""
        text = self.stderr()
        at = text.find("Traceback")
        return None if at < 0 else text[at:]

    def rss_kb(self) -> int:
        """The server's resident set size (0 once it is gone)."""
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    def terminate(self, timeout: float = TERM_WAIT) -> int:
        """SIGTERM (the server unmounts and exits 0), SIGKILL after ``timeout``; the
        exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(TERM_WAIT)
        return self.proc.returncode

    def stop(self) -> int | None:
        """Unmount and end the server, whatever state it is in (idempotent); its exit
        status, None when even SIGKILL did not end it."""
        if self._stopped:
            return self.proc.returncode
        self._stopped = True
        try:
            if self.mounted():
                lazy_unmount(self.path)
                try:     # an unmounted server ends by itself
                    self.proc.wait(UNMOUNT_WAIT)
                except subprocess.TimeoutExpired:
                    pass
            self.terminate()
            if self.mounted():  # killed before it could unmount
                lazy_unmount(self.path)
        except subprocess.TimeoutExpired:
            pass
        finally:
            self._log_file.close()
        return self.proc.returncode
