"""The short soak (scripts/soak --minutes 2): a busy mount keeps its RSS under the
bound of its buffers plus fixed overhead, answers throughout, and leaves nothing behind.
The hour-long run is ``scripts/soak`` with its default."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.mount, pytest.mark.slow]


def test_short_soak(tmp_path):
    out = tmp_path / "soak.json"
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "soak"), "--minutes", "2",
                        "--json", str(out)], capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(out.read_text())
    assert report["failures"] == []
    assert report["samples"] >= 20 and report["steps"] > 500
    assert 0 < report["rss_kb_max"] <= report["bound_kb"]
