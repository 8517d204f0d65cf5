"""The soak benchmark runs end to end in its quick mode and reports its figures (no growth or
latency assertions: those are the benchmark's output, not a test's): bench/soak.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_quick_soak_reports_memory_threads_files_and_starvation(tmp_path):
    out = tmp_path / "soak.json"
    command = [sys.executable, str(BENCH / "soak.py"), "--quick", "--scrapes", "800", "--max-seconds", "5", "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    for figure in ("RSS MB", "threads", "open fds", "to targets", "other fds", "growth", "starvation", "one_stuck_target", "many_stuck_targets"):
        assert figure in result.stdout, figure
    results = json.loads(out.read_text())
    assert results["exporter_alive_at_end"] is True
    soak = results["soak"]
    assert soak["http_failures"] == 0, soak["http_failure_examples"]
    assert 0 < soak["scrapes"] <= 800
    for moment in ("start", "end"):
        assert soak[moment]["rss_mb"] > 0 and soak[moment]["threads"] >= 1 and soak[moment]["open_fds"] > 0
    assert set(soak["growth_percent"]) == {"rss_mb", "threads", "open_fds", "target_connections", "other_fds"}
    assert soak["end"]["target_connections"] + soak["end"]["other_fds"] == soak["end"]["open_fds"]
    # Faults end the way they must, whatever the timing: a scrape never answers anything but 200.
    outcomes = soak["outcomes"]
    assert set(outcomes["down"]) == {"connection_refused"}
    assert set(outcomes["garbage"]) == {"not_json"}
    assert set(outcomes["stuck"]) <= {"timeout", "concurrency_limit"}
    assert set(outcomes["slow"]) <= {"timeout", "concurrency_limit"}
    assert outcomes["healthy"].get("success", 0) > 0
    starvation = results["starvation"]
    assert set(starvation) == {"alone", "one_stuck_target", "many_stuck_targets"}
    # Forty clients on one stuck target: all but max_concurrent_per_target wait for a slot, in vain.
    assert starvation["one_stuck_target"]["stuck_outcomes"].get("concurrency_limit", 0) > 0
    for phase in starvation.values():
        assert phase["healthy_latency_ms"]["count"] > 0 and phase["healthy_median_ratio"] > 0
    # Counted on the exporter's side, sampled: a sample can miss a peak, never invent one.
    settings = results["settings"]
    assert 0 < starvation["one_stuck_target"]["most_connections_to_stuck_targets"] <= settings["per_target"]
    assert 0 < starvation["many_stuck_targets"]["most_connections_to_stuck_targets"] <= settings["overall"]
