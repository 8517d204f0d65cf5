"""The json mapping benchmark runs end to end (tiny sizes, no timing assertions): bench/jsonmap_bench.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "jsonmap_bench.py"


def test_quick_run_writes_every_figure(tmp_path):
    out = tmp_path / "jsonmap.json"
    result = subprocess.run([sys.executable, str(BENCH), "--items", "30", "--rounds", "2", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    results = json.loads(out.read_text())
    assert results["series"] == 60  # 20 of the 30 items pass the filter, three values each
    assert results["items"] == 30
    for name in ("floor", "engine"):
        assert results["median_ms"][name] > 0
        assert results["ratio_to_floor"][name] > 0
    # /probe is measured once the exporter's configuration takes modules, and says why not until then.
    assert ("probe" in results["median_ms"]) != bool(results["probe_skipped"])
