"""Build ``tracefs-sim-tracer`` from tracer.c: ``python -m tracefs_sim.host.build [OUT]``.

scripts/setup runs it; the tests build a copy of their own.  One place for the compiler
command, so the warnings the tracer is kept free of are the same everywhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

SOURCE = Path(__file__).with_name("tracer.c")
BINARY = Path(__file__).with_name("tracefs-sim-tracer")
CFLAGS = ("-O2", "-Wall", "-Wextra")


def compiler() -> str:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise FileNotFoundError("no C compiler (cc) to build the tracer: install gcc")
    return cc


def build(out: Path = BINARY) -> Path:
    """Compile tracer.c into ``out`` unless it is newer than the source already."""
    if out.exists() and out.stat().st_mtime >= SOURCE.stat().st_mtime:
        return out
    tmp = out.with_name(out.name + ".tmp")
    subprocess.run([compiler(), *CFLAGS, "-o", str(tmp), str(SOURCE)], check=True)
    tmp.replace(out)
    return out


def tracer_path() -> Path:
    """The built tracer; missing or older than tracer.c is an error (scripts/setup builds it)."""
    if not BINARY.exists():
        raise FileNotFoundError(f"{BINARY} is not built: run scripts/setup")
    if BINARY.stat().st_mtime < SOURCE.stat().st_mtime:
        raise FileNotFoundError(f"{BINARY} is older than {SOURCE.name}: run scripts/setup")
    return BINARY


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else BINARY))
