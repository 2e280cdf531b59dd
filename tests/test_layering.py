"""The layers point down only: the simulated kernel and the file tree import neither
pyfuse3 nor trio, and the kernel keeps no module-level mutable state."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_kernel_and_tree_import_no_fuse_or_trio():
    code = ("import sys, tracefs_sim.kernel, tracefs_sim.tracefs\n"
            "from tracefs_sim.kernel import Kernel\n"
            "from tracefs_sim.tracefs import build_tree\n"
            "build_tree(Kernel(nr_cpus=2, seed=1))\n"
            "bad = [m for m in ('pyfuse3', 'trio') if m in sys.modules]\n"
            "print(','.join(bad))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "", f"imported by the kernel or the tree: {out}"


def test_no_import_statement_of_fuse_or_trio_below_the_adapter():
    for pkg in ("kernel", "tracefs"):
        for path in (ROOT / "tracefs_sim" / pkg).glob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                for name in names:
                    assert name.split(".")[0] not in ("pyfuse3", "trio"), f"{path}: imports {name}"


def test_two_kernels_are_independent():
    from tracefs_sim.kernel import Kernel
    from tracefs_sim.tracefs import build_tree
    from tracefs_sim.tracefs.files import read_file, write_file

    a, b = Kernel(nr_cpus=2, seed=1), Kernel(nr_cpus=2, seed=2)
    ta, tb = build_tree(a), build_tree(b)
    write_file(ta, "trace_clock", "global")
    write_file(ta, "buffer_size_kb", "100")
    assert read_file(tb, "trace_clock").startswith(b"[local]")
    assert read_file(tb, "buffer_size_kb") == b"7 (expanded: 1408)\n"
    assert read_file(ta, "buffer_size_kb") == b"103\n"


def test_subsystems_and_files_are_wired_by_explicit_calls():
    """No subsystem or file builder is looked up by name at run time (importlib), so a
    missing piece fails at import or boot instead of being skipped."""
    for pkg in ("kernel", "tracefs"):
        for path in (ROOT / "tracefs_sim" / pkg).glob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.Attribute) and node.attr == "import_module":
                    raise AssertionError(f"{path.name}:{node.lineno}: importlib.import_module")
                if isinstance(node, ast.ImportFrom) and node.module == "importlib":
                    names = {a.name for a in node.names}
                    assert "import_module" not in names, f"{path.name}: imports import_module"


def test_kernel_subsystems_are_typed_fields():
    """Every subsystem the Kernel builds is declared with its type on the class (what
    other modules may rely on without getattr)."""
    from tracefs_sim.kernel import Kernel
    from tracefs_sim.kernel.core import Kernel as CoreKernel

    assert Kernel is CoreKernel
    k = Kernel(nr_cpus=1, seed=1)
    hints = CoreKernel.__annotations__
    for name in ("trace", "ftrace", "fgraph", "events", "dynevent", "fprobe", "kprobes",
                 "fprobe_events", "kprobe_events", "uprobe_events", "workload"):
        assert name in hints, name
        assert getattr(k, name) is not None, name
    assert k.trace.global_trace is k.trace.printk_trace
