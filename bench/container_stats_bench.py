"""What reading the swarm's container stats costs, for 10, 50 and 100 small busybox containers.

    .venv/bin/python bench/container_stats_bench.py [--sizes 10,50,100] [--rounds 3] [--workers 8] [--out FILE]

Starts a Docker engine of its own (tests/docker_engine.py: a private dockerd and one-node swarm,
removed at the end), runs busybox containers labelled as swarm task containers (`sleep`, no
network), and times the exporter's background reading (exporter/container_stats.py `read`) of
all of them: seconds per reading and the exporter process's CPU per reading (its own threads
only: the engine's CPU is dockerd's), medians over rounds. At the smallest size the pool of `--workers` connections is
compared with one connection (the slow path: a second or more per container). Results go to bench/results/container_stats.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from docker_engine import busybox_image, running_engine  # noqa: E402 - found through the line above

from pharos_monitoring.exporter import container_stats  # noqa: E402

SERVICE = "bench"


def start_containers(engine, image: str, first: int, count: int) -> None:
    for index in range(first, first + count):
        engine.docker(
            "run", "--detach", "--network", "none", "--name", f"{SERVICE}-{index}",
            "--label", f"{container_stats.SERVICE_NAME_LABEL}={SERVICE}",
            "--label", f"{container_stats.TASK_NAME_LABEL}={SERVICE}.{index}.t{index}",
            "--label", f"{container_stats.TASK_ID_LABEL}=t{index}",
            image, "sleep", "3600",
        )


def measure(api, workers: int, rounds: int) -> dict:
    seconds, cpu = [], []
    for _ in range(rounds):
        cpu_before = time.process_time()
        reading = container_stats.read(api, workers)
        cpu.append(time.process_time() - cpu_before)
        seconds.append(reading.duration_seconds)
        assert reading.failures == 0, f"{reading.failures} containers without stats"
    return {
        "workers": workers,
        "containers_read": len(reading.usages),
        "seconds_per_reading": statistics.median(seconds),
        "cpu_seconds_per_reading": statistics.median(cpu),
        "cpu_ms_per_container": 1000 * statistics.median(cpu) / max(1, len(reading.usages)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,50,100")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=container_stats.DEFAULT_WORKERS)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "container_stats.json"))
    args = parser.parse_args(argv)
    sizes = sorted(int(size) for size in args.sizes.split(","))
    import docker

    rows = []
    with running_engine() as engine:
        image = engine.image_id(busybox_image(engine))
        api = docker.APIClient(base_url=engine.host, version="auto", timeout=120, max_pool_size=max(args.workers, 1))
        running = 0
        for size in sizes:
            start_containers(engine, image, running, size - running)
            running = size
            pooled = measure(api, args.workers, args.rounds)
            # One connection is the slow path (a second or two per container): measured at the smallest size only.
            single = measure(api, 1, 1) if size == sizes[0] else None
            row = {"containers": size, "pooled": pooled, "one_connection": single}
            rows.append(row)
            print(
                f"{size:4d} containers: {pooled['seconds_per_reading']:.2f} s per reading with {args.workers} workers "
                + (f"({single['seconds_per_reading']:.2f} s with one) " if single else "")
                + f"exporter CPU {pooled['cpu_seconds_per_reading'] * 1000:.0f} ms "
                f"({pooled['cpu_ms_per_container']:.1f} ms per container)",
                flush=True,
            )
        api.close()
    results = {
        "benchmark": "container_stats",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(), "load_average": list(os.getloadavg())},
        "rounds": args.rounds,
        "default_interval_seconds": container_stats.DEFAULT_INTERVAL_SECONDS,
        "sizes": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
