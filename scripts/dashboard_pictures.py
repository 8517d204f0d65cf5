"""Hold a live stack with injected faults long enough to draw the pictures of docs/dashboards.md.

    .venv/bin/python scripts/dashboard_pictures.py app   --out /tmp/pictures/app   --hold 5400
    .venv/bin/python scripts/dashboard_pictures.py swarm --out /tmp/pictures/swarm --hold 5400

`app` runs `pharos up --fast` (production and beta, the global store) and plays the faults below
with `pharos fault`; `swarm` starts the Docker test engine's one-node swarm (tests/docker_engine.py,
as root) with four busybox services, the exporter with `--swarm` (container stats every 5 s), a
local node_exporter and a Prometheus with the catalogue's rules, scraping both every 5 s. Each
writes the Prometheus URLs to OUT/urls.json as soon as they answer, then holds the stack for
--hold seconds (or until SIGTERM/Ctrl-C) and stops it. Draw while it holds, at 10 minutes and at
an hour, with `pharos dashboards render` (the commands are in docs/dashboards.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHAROS = str(Path(sys.executable).with_name("pharos"))

# (seconds after the stack answers, ENVIRONMENT/SERVICE, pharos fault arguments)
APP_FAULTS = (
    (40, "production/orders", ("--error-ratio", "0.3")),
    (200, "beta/orders", ("--latency-ms", "1200")),
    (1620, "beta/orders", ("--latency-ms", "0")),
    (2220, "beta/orders", ("--error-ratio", "0.15")),
    (2520, "production/orders", ("--allocation-pressure", "30")),
    (3120, "production/orders", ("--allocation-pressure", "0")),
)

SWARM_NETWORK = "shop"  # an overlay network of the picture's own: shop_worker downloads from shop_web's httpd (by task address: tasks.shop_web; the test engine has no iptables for virtual IPs)
SWARM_SERVICES = (
    # name, docker service create options, command
    ("shop_web", ("--replicas", "3", "--limit-memory", "64m", "--network", SWARM_NETWORK), ("httpd", "-f", "-p", "8080", "-h", "/bin")),
    ("shop_worker", ("--replicas", "2", "--network", SWARM_NETWORK),
     ("sh", "-c", "while true; do a=0; while [ $a -lt 20000 ]; do a=$((a+1)); done; wget -q -O /dev/null http://tasks.shop_web:8080/busybox; sleep 1; done")),
    # exits with status 3 after 5 s, restarted 20 s later: a restart loop
    ("shop_crashing", ("--restart-condition", "any", "--restart-delay", "20s"), ("sh", "-c", "sleep 5; exit 3")),
    # allocates past its 16 MiB limit 20 s after it starts: OOM-killed, restarted 60 s later
    ("shop_hog", ("--restart-condition", "any", "--restart-delay", "60s", "--limit-memory", "16m"),
     ("sh", "-c", 'sleep 20; a=xxxxxxxxxxxxxxxx; while true; do a="$a$a"; done')),
)


def log(message: str) -> None:
    print(time.strftime("%H:%M:%S", time.gmtime()), message, flush=True)


def app(out: Path, hold: float, stop: threading.Event) -> None:
    state = out / "state"
    up = subprocess.Popen([PHAROS, "up", "--fast", "--port-base", "0", "--state-dir", str(state)],
                          stdout=open(out / "up.log", "wb"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while not (state / "up.json").exists():
            if up.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"pharos up did not start: see {out / 'up.log'}")
            time.sleep(1)
        shutil.copy(state / "up.json", out / "urls.json")
        started = time.monotonic()
        log(f"stack up: {out / 'urls.json'}")
        for at, service, knobs in APP_FAULTS:
            if stop.wait(max(0.0, started + at - time.monotonic())):
                return
            subprocess.run([PHAROS, "fault", service, "--state-dir", str(state), *knobs], check=True, stdout=subprocess.DEVNULL)
            log(f"fault {service} {' '.join(knobs)}")
        stop.wait(max(0.0, started + hold - time.monotonic()))
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(60)
        log("stopped")


def swarm(out: Path, hold: float, stop: threading.Event) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    import docker_engine as de
    import yaml
    from pharos_monitoring.alerts import prometheus_rules
    from pharos_monitoring.config import node_scrape
    from pharos_monitoring.exporter.catalogue import Label as L
    from pharos_monitoring.exporter.collect import Exporter
    from pharos_monitoring.exporter.config import Config, Swarm
    from pharos_monitoring.exporter.serving.server import make_server

    with de.running_engine() as engine:
        image = engine.image_id(de.busybox_image(engine))
        engine.docker("network", "create", "--driver", "overlay", "--subnet", de.free_subnet(), SWARM_NETWORK)
        for name, options, command in SWARM_SERVICES:
            engine.docker("service", "create", "--detach", "--no-resolve-image", "--name", name, *options, image, *command)
        exporter = Exporter(Config(listen="127.0.0.1:0", swarm=Swarm(enabled=True, docker_host=engine.host, container_stats_interval_seconds=5)))
        server = make_server(exporter, "127.0.0.1:0")
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        target = f"127.0.0.1:{server.server_address[1]}"
        node_port = de.free_tcp_port()
        node_exporter = subprocess.Popen(
            [shutil.which("prometheus-node-exporter") or "node_exporter", f"--web.listen-address=127.0.0.1:{node_port}", "--no-collector.systemd"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        (out / "rules").mkdir(exist_ok=True)
        for name, content in prometheus_rules.rule_files("production", "https://example.invalid/runbooks.md").items():
            (out / "rules" / name).write_text(yaml.safe_dump(content))
        # The node's name as the swarm collector gives it (as Swarm discovery would), not 127.0.0.1.
        node_job = node_scrape.scrape_job("production", (f"127.0.0.1:{node_port}",), None)
        node_job["relabel_configs"].append({"target_label": L.NODE, "replacement": engine.text("info", "--format", "{{.Name}}")})
        config = {
            "global": {"scrape_interval": "5s", "scrape_timeout": "4s", "evaluation_interval": "5s"},
            "rule_files": [str(out / "rules" / "*.yml")],
            "scrape_configs": [
                {"job_name": "pharos-exporter", "static_configs": [{"targets": [target]}],
                 "relabel_configs": [{"target_label": L.ENVIRONMENT, "replacement": "production"}]},
                node_job,
            ],
        }
        (out / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = de.free_tcp_port()
        prometheus = subprocess.Popen(
            ["prometheus", f"--config.file={out / 'prometheus.yml'}", f"--storage.tsdb.path={out / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=open(out / "prometheus.log", "wb"), stderr=subprocess.STDOUT)
        (out / "urls.json").write_text(json.dumps({"prometheus": f"http://127.0.0.1:{port}", "exporter": f"http://{target}"}) + "\n")
        log(f"stack up: prometheus http://127.0.0.1:{port}, exporter {target}")
        try:
            stop.wait(hold)
        finally:
            for child in (prometheus, node_exporter):
                child.terminate()
                child.wait(20)
            server.shutdown()
            exporter.close()
            for name, _, _ in SWARM_SERVICES:
                engine.docker("service", "rm", name, check=False)
            engine.docker("network", "rm", SWARM_NETWORK, check=False)
            log("stopped")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stack", choices=("app", "swarm"))
    parser.add_argument("--out", type=Path, required=True, help="a directory of its own (state, data, logs, urls.json)")
    parser.add_argument("--hold", type=float, default=5400.0, help="seconds to keep the stack running (default 5400)")
    options = parser.parse_args()
    options.out.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stop.set())
    (app if options.stack == "app" else swarm)(options.out, options.hold, stop)


if __name__ == "__main__":
    main()
