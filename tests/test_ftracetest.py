"""The unmodified ftrace selftests (scripts/ftracetest): listed cases must PASS.

tests/expected-ftracetest.txt lists the cases (as in the reference TSV, with
" (instance)" for instance variants; a tab and XFAIL for the expected-failure case).  Skipped when the list is empty, or when the
tool cannot be set up (not root, no FUSE, no unshare).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# case -> expected result: PASS, or the result given after a tab (XFAIL, as on the kernel)
EXPECTED = {case.strip(): (want.strip() or "PASS")
            for line in (ROOT / "tests" / "expected-ftracetest.txt").read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")
            for case, _, want in [line.partition("\t")]}


@pytest.mark.mount
@pytest.mark.slow
def test_expected_ftracetest_cases_pass(tmp_path):
    if not EXPECTED:
        pytest.skip("tests/expected-ftracetest.txt lists no case yet")
    if os.getuid() != 0 or not shutil.which("unshare"):
        pytest.skip("scripts/ftracetest needs root and unshare")
    cases = sorted({c.removesuffix(" (instance)") for c in EXPECTED})
    # two shards per CPU, each its own namespace and mount on one CPU (scripts/ftracetest):
    # a second shard fills a CPU while the first sleeps in a case
    results, r = run_cases(tmp_path / "results.tsv", cases, jobs=JOBS)
    bad = {c: results.get(c, "MISSING") for c, want in EXPECTED.items() if results.get(c) != want}
    if bad:
        # One fresh run of the failed cases tells a regression (fails again) from a case
        # that lost a race with background load (simulated activity runs on wall time).
        retry = sorted({c.removesuffix(" (instance)") for c in bad})
        again, r = run_cases(tmp_path / "retry.tsv", retry, jobs=JOBS if len(retry) > 10 else 1)
        bad = {c: again.get(c, "MISSING") for c in bad if again.get(c) != EXPECTED[c]}
    assert not bad, f"expected PASS: {bad}\n{r.stdout[-3000:]}"


JOBS = 2 * len(os.sched_getaffinity(0))   # two shards per CPU, each shard on one CPU
TIMEOUT = 2700   # seconds for one run; every case in four shards on 2 CPUs takes 150-300


def run_cases(tsv: Path, cases: list[str], jobs: int = 1
              ) -> tuple[dict[str, str], subprocess.CompletedProcess]:
    r = subprocess.run(["bash", str(ROOT / "scripts" / "ftracetest"), "--out", str(tsv),
                        "--jobs", str(jobs), "--timeout", str(TIMEOUT), *cases],
                       capture_output=True, text=True, timeout=TIMEOUT + 300)
    if not tsv.is_file():
        pytest.skip(f"scripts/ftracetest could not run (rc {r.returncode}): {r.stderr[-2000:]}")
    results = dict(line.split("\t", 1) for line in tsv.read_text().splitlines()
                   if "\t" in line and not line.startswith(("test\t", "#")))
    return results, r
