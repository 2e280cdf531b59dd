"""The simulated kernel's /proc files as ``tracefs-sim run`` shows them (sysctl_mirror):
/proc/modules and /proc/kallsyms with a loaded Python module, in the kernel's formats."""

from __future__ import annotations

import re
from pathlib import Path

from tracefs_sim.kernel import Kernel
from tracefs_sim.kernel.version import proc_version
from tracefs_sim.sysctl_mirror import PROC_FILES, proc_modules, write_proc_files

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fprobe_example.py"


def test_proc_files_with_a_python_module(tmp_path: Path) -> None:
    k = Kernel(nr_cpus=2)
    k.insmod(str(EXAMPLE))
    try:
        write_proc_files(k, str(tmp_path))
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(PROC_FILES)
        modules = (tmp_path / "modules").read_text().splitlines()
        # m_show(): name size refcount deps state address, then the taints
        m = re.fullmatch(r"fprobe_example (\d+) 0 - Live (0x[0-9a-f]{16}) \(OE\)", modules[0])
        assert m, modules
        size, base = int(m.group(1)), int(m.group(2), 16)
        assert size % 4096 == 0 and base & 0xFFF == 0
        # then the reference kernel's modules as captured
        assert modules[1:] == proc_modules(Kernel(nr_cpus=1)).splitlines()
        assert all(len(line.split()) == 6 for line in modules[1:])
        syms = [line.split() for line in (tmp_path / "kallsyms").read_text().splitlines()
                if line.endswith("\t[fprobe_example]")]
        names = {s[2] for s in syms}
        assert {"sample_entry_handler", "sample_exit_handler", "init_module"} <= names, syms
        assert all(s[1] == "t" and base <= int(s[0], 16) < base + size for s in syms), syms
        assert (tmp_path / "version").read_text() == proc_version()
    finally:
        k.rmmod("fprobe_example")
