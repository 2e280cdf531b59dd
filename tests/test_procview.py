"""The host's /proc as the traced-task model reads it (host/procview.py)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from tracefs_sim.host.procview import MAPS_TIMEOUT_S, ProcView


def test_maps_that_cannot_be_read_do_not_block_the_server(tmp_path: Path) -> None:
    """Opening /proc/PID/maps waits for a process in execve (exec_update_lock), which may
    wait for a thread blocked in a request of this server: maps() gives up after
    MAPS_TIMEOUT_S and answers None; a readable file is read whole."""
    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "maps").write_text("00400000-00401000 r-xp 00000000 00:21 12 /bin/x\n")
    (tmp_path / "9").mkdir()
    fifo = tmp_path / "9" / "maps"
    os.mkfifo(fifo)          # an open for reading blocks until a writer comes
    view = ProcView(str(tmp_path))
    assert view.maps(7) == "00400000-00401000 r-xp 00000000 00:21 12 /bin/x\n"
    assert view.maps(8) is None                      # no such process
    t0 = time.monotonic()
    assert view.maps(9) is None
    waited = time.monotonic() - t0
    assert waited >= MAPS_TIMEOUT_S
    # the helper thread ends once the open can complete
    with open(fifo, "w"):
        pass
    deadline = time.monotonic() + 5
    while any(t.name == "maps-9" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the helper thread did not end"
        time.sleep(0.01)
