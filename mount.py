#!/usr/bin/env python3
"""Mount the simulator from a source checkout: ``python mount.py MOUNTPOINT [options]``."""

import sys

from tracefs_sim.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
