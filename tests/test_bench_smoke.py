"""The exporter benchmark runs end to end (tiny sizes, no timing assertions): bench/exporter_bench.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))
import exporter_bench  # noqa: E402 - found through the line above
import payloads  # noqa: E402


def test_quick_run_writes_every_figure(tmp_path):
    out = tmp_path / "exporter.json"
    command = [sys.executable, str(BENCH / "exporter_bench.py"), "--quick", "--sizes", "20,60", "--targets", "3",
               "--multi-series", "30", "--rounds", "1", "--batch-seconds", "0.05", "--multi-seconds", "0.5", "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "CPU ratio" in result.stdout and "multi-target: 3 targets" in result.stdout
    results = json.loads(out.read_text())
    assert [row["series"] for row in results["sidecar"]] == [payloads.series_count(payloads.body(payloads.rows_for(n))) for n in (20, 60)]
    for row in results["sidecar"]:
        for key in ("direct_ms", "exporter_ms", "overhead_ratio", "floor_cpu_ms", "payload_bytes"):
            assert row[key] > 0, (key, row)
        assert row["exporter_cpu_ms"] >= 0
    multi = results["multi_target"]
    assert multi["targets"] == 3 and multi["scrapes"] > 0 and multi["scrapes_per_second"] > 0
    assert results["sidecar_rss_mb"] > 0
    assert set(results["aims"]) == {"cpu_ratio_at_1000", "core_fraction_200_targets", "sidecar_rss_mb"}


def test_a_baseline_build_runs_beside_the_current_one(tmp_path):
    """--baseline-command (here the same build) alternates with the current exporter in every
    round, on documents both read alike, and reports the new/old ratios."""
    out = tmp_path / "exporter.json"
    pharos = Path(sys.executable).parent / "pharos"
    command = [sys.executable, str(BENCH / "exporter_bench.py"), "--quick", "--sizes", "20", "--targets", "3", "--multi-series", "30",
               "--rounds", "2", "--batch-seconds", "0.05", "--multi-seconds", "0.3", "--baseline-command", str(pharos), "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "against the baseline" in result.stdout
    results = json.loads(out.read_text())
    for row in (*results["sidecar"], results["multi_target"]):
        assert len(row["exporter_cpu_ms_rounds"]) == len(row["baseline_cpu_ms_rounds"]) == 2, row
        assert row["cpu_vs_baseline"] > 0 and row["baseline_cpu_ms_min"] >= 0, row
    assert b"processes" not in exporter_bench.common_body(2)  # a section older builds do not read
    assert exporter_bench.series_count(exporter_bench.common_body(2)) < exporter_bench.series_count(payloads.body(2))


def test_payload_sizes_are_counted_in_exposition_samples():
    for wanted in (100, 1000):
        assert abs(payloads.series_count(payloads.body(payloads.rows_for(wanted))) - wanted) <= 14  # one request row yields 14
    with pytest.raises(ValueError, match="route cap"):
        payloads.document(payloads.MAX_ROUTES * payloads.ROWS_PER_ROUTE + 1)


def test_an_exporter_output_missing_a_series_is_refused():
    body = payloads.body(2)
    exposition = payloads.floor(body, {"target": "app"}) + b'pharos_scrape_success{target="app"} 1.0\n'
    exporter_bench.check_same_series(exposition, body, {"target": "app"}, "test")
    first_sample = next(line for line in exposition.splitlines() if not line.startswith(b"#"))
    with pytest.raises(RuntimeError, match="series differ"):
        exporter_bench.check_same_series(exposition.replace(first_sample + b"\n", b""), body, {"target": "app"}, "test")
    failed = exposition.replace(b"pharos_scrape_success{target=\"app\"} 1.0", b"pharos_scrape_success{target=\"app\"} 0.0")
    with pytest.raises(RuntimeError, match="did not succeed"):
        exporter_bench.check_same_series(failed, body, {"target": "app"}, "test")


def test_quick_serving_bench_measures_every_abuse_beside_its_baseline(tmp_path):
    """bench/serving_bench.py --quick against the current exporter: every phase ran and counted
    something (latencies and ratios are the benchmark's output, not asserted here)."""
    out = tmp_path / "serving.json"
    result = subprocess.run([sys.executable, str(BENCH / "serving_bench.py"), "--quick", "--out", str(out)], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    (run,) = json.loads(out.read_text())["runs"]
    assert run["exporter_alive_at_end"] is True
    assert set(run["phases"]) == {"slow_client_flood", "connect_burst", "stuck_targets", "wrong_passwords"}
    for name, phase in run["phases"].items():
        for half in ("baseline", "abuse"):
            assert phase[half]["healthy_latency_ms"]["count"] > 0, (name, half)
            assert phase[half]["healthy_ok"] + phase[half]["healthy_failed"] == phase[half]["healthy_latency_ms"]["count"], (name, half)
        assert phase["abuse"]["abuser_count"] > 0 and phase["abuse"]["abuser_stopped"] is True, name
    abuses = {name: phase["abuse"] for name, phase in run["phases"].items()}
    assert abuses["slow_client_flood"]["slow"]["most_held_open"] > 0
    assert abuses["connect_burst"]["burst"]["connections"] > 0 and abuses["connect_burst"]["burst"]["connect_ms"]["count"] > 0
    assert abuses["stuck_targets"]["stuck"]["probes"] > 0
    assert abuses["wrong_passwords"]["wrong_passwords"]["requests"] > 0
    assert "HTTP 200" not in abuses["wrong_passwords"]["wrong_passwords"]["outcomes"]  # a wrong password never passes


@pytest.mark.slow
def test_quick_fleet_bench_measures_the_global_store_beside_one_prometheus(tmp_path):
    """bench/fleet_bench.py --quick on the real binaries (three Prometheus, VictoriaMetrics,
    vmalert, synthetic sidecars): every figure is there (timings are its output, not asserted)."""
    out = tmp_path / "fleet.json"
    result = subprocess.run([sys.executable, str(BENCH / "fleet_bench.py"), "--quick", "--out", str(out)], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "store/Prom" in result.stdout and out.with_suffix(".md").exists()
    (run,) = json.loads(out.read_text())["sizes"].values()
    assert run["warm_up"]["missing"] == [], run["warm_up"]
    for environment, health in run["ingestion"]["scrape_health"].items():
        assert health["targets_up"] == health["targets"] == run["instances_per_environment"][environment]
    assert run["ingestion"]["store_samples_per_second"] > 0
    (measured,) = run["queries"]  # nothing refused at this size: no second variant
    assert measured["errors"] == {"store": 0, "store_nocache": 0, "prometheus_production": 0}
    assert set(measured["by_kind"]) == {"variable", "stat", "table", "timeseries", "annotation"}
    for kind, figures in measured["by_kind"].items():
        for source in ("store", "store_nocache", "prometheus_production"):
            assert figures[source]["count"] == figures["queries"] * measured["rounds"], (kind, source)
    assert measured["variables_selected"]["environment"] == 3
    # Every variable, table cell and curve has data in the store (alert thresholds show only near the data).
    drawn = [query for query in measured["per_query"] if query["kind"] in ("variable", "table", "timeseries") and not query["threshold_line"]]
    assert drawn and all(query["store"]["series"] > 0 for query in drawn), [query["name"] for query in drawn if not query["store"]["series"]]
    lag = run["remote_write"]["all"]
    assert lag["highest_appended_minus_sent"]["count"] > 0 and lag["store_behind_prometheus"]["count"] > 0
    store = run["store"]
    assert store["series"] > run["target_series"] and store["samples_ingested"] > 0
    assert store["disk"]["total_mb"] > 0 and store["rss_mb"] > 0 and store["disk_mb_per_million_samples"] > 0
    assert all(figures["remote_write_failed"] == 0 for figures in store["prometheus"].values())
