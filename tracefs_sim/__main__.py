"""``python -m tracefs_sim MOUNTPOINT ...``: same as the ``tracefs-sim`` console script."""

import sys

from .mount import main

sys.exit(main())
