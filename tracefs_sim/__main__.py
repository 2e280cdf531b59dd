"""``python -m tracefs_sim …``, the ``tracefs-sim`` console script and ``mount.py``: one
program.  ``insmod``, ``rmmod``, ``lsmod`` and ``dmesg`` talk to a running mount
(tracefs_sim/modctl.py); everything else (a mount, ``run``) is tracefs_sim/mount.py."""

from __future__ import annotations

import sys

from . import modctl
from .mount import main as mount_main


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] and argv[0] in modctl.OPS:
        return modctl.main(argv)
    return mount_main(argv)


if __name__ == "__main__":
    sys.exit(main())
