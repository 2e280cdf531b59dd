"""The captured facts of the reference kernel, packaged in ``tracefs_sim/data``.

scripts/gen_data.py writes them (symbols, BTF, event formats, README, uname); the
installed package needs nothing else.  One reader, so every module opens them the same
way and a missing file fails loudly: the simulator is not the reference kernel without it.
"""

from __future__ import annotations

import gzip
from importlib import resources


def data_bytes(name: str) -> bytes:
    """The file ``name`` of tracefs_sim/data, decompressed when it ends in ``.gz``."""
    raw = resources.files("tracefs_sim").joinpath("data", name).read_bytes()
    return gzip.decompress(raw) if name.endswith(".gz") else raw
