"""`pharos up`: the whole stack on this machine, without Docker, until Ctrl-C or SIGTERM.

    pharos up [--state-dir DIR] [--port-base N] [--fast]

1. writes the local stack file (pharos/local/local_stack.py) and webhook secrets into the state
   directory and runs `pharos build` on it: Prometheus and Alertmanager get exactly what a user's
   `pharos build` would give them;
2. starts, each as a child in its own session with its log in STATE/logs: the mail and Slack
   sinks (`pharos sinks`, printing here), a demo service per environment, the sidecar and
   multi-target exporters, this machine's node_exporter (Debian's prometheus-node-exporter; the
   `node` job of every environment), Alertmanager, and one Prometheus per environment, waiting
   for each to answer;
3. writes STATE/up.json, prints where everything is, and waits;
4. on Ctrl-C, SIGTERM or SIGHUP, or when a child dies, stops every child (SIGTERM, then SIGKILL
   after a grace period) and removes up.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

from pharos_monitoring.demo.processes import Child, StartError, pharos_command, stop_all, wait_until_answers, wait_until_listening

from . import local_stack, up_state
from ..config.build import build
from .local_stack import HOST, SERVICES, Ports
from ..config.stack_config import SIDECAR, StackConfig, StackConfigError, load
from .time_to_signal import describe, error_rate_signal
from ..config.yaml_out import dump

DEFAULT_STATE_DIR = ".pharos"
START_TIMEOUT_SECONDS = 60
POLL_SECONDS = 0.25
DEMO_MEMORY_LIMIT_MB = 1024  # gives the memory panels and alerts a limit to compare with
INSTALL_HINT = "sudo apt-get install prometheus prometheus-alertmanager prometheus-node-exporter"
BINARIES = {
    # what -> names it has on Debian, then upstream
    "Prometheus": ("prometheus",),
    "Alertmanager": ("prometheus-alertmanager", "alertmanager"),
    "node_exporter": ("prometheus-node-exporter", "node_exporter"),
}
# There is no systemd here to ask: that collector would log an error on every scrape.
NODE_EXPORTER_FLAGS = ("--no-collector.systemd",)


def find_binaries() -> dict[str, str]:
    """What -> path of the Prometheus and Alertmanager binaries; StartError naming the install command."""
    found, missing = {}, []
    for what, names in BINARIES.items():
        path = next((shutil.which(name) for name in names if shutil.which(name)), None)
        if path:
            found[what] = path
        else:
            missing.append(f"{what} (none of {', '.join(names)} on PATH)")
    if missing:
        listed = " and ".join(missing) if len(missing) < 3 else ", ".join(missing[:-1]) + " and " + missing[-1]
        raise StartError(f"{listed} not installed; on Debian or Ubuntu install them with: {INSTALL_HINT}")
    return found


class Stack:
    """The running children of one `pharos up`, in start order."""

    def __init__(self, state_dir: Path, ports: Ports, stack: StackConfig, binaries: dict[str, str], traffic: float, stop: threading.Event):
        self.state_dir = state_dir
        self.ports = ports
        self.stack = stack
        self.binaries = binaries
        self.traffic = traffic
        self.stop = stop
        self.children: list[Child] = []

    def _start(self, name: str, command: list[str], **output) -> Child:
        child = Child(name, command, log=self.state_dir / "logs" / f"{name.replace('/', '-')}.log", **output)
        self.children.append(child)
        return child

    def _url(self, port: int) -> str:
        return f"http://{HOST}:{port}"

    def start(self) -> None:
        ports = self.ports
        sinks = self._start(
            "sinks",
            pharos_command(
                "sinks", "--dir", str(self.state_dir), "--smtp", f"{HOST}:{ports.smtp}", "--slack", f"{HOST}:{ports.slack}",
                "--smtp-username", local_stack.SMTP_USERNAME, "--smtp-password-file", str(self.state_dir / "secrets" / local_stack.SMTP_PASSWORD_FILE),
            ),
            inherit_stdout=True,
        )
        for service in SERVICES:
            port = ports.apps[service.key]
            app = self._start(
                f"demo-app {service.key}",
                pharos_command(
                    "demo-app", "--listen", f"{HOST}:{port}", "--service", service.service, "--environment", service.environment,
                    "--traffic", f"{self.traffic:g}", "--memory-limit-mb", str(DEMO_MEMORY_LIMIT_MB),
                ),
            )
            if service.mode == SIDECAR:
                # A sidecar runs beside its application: it also reads the app's process (CPU,
                # memory, threads, open files), which an exporter reading over the network cannot.
                sidecar = self.state_dir / "config" / f"exporter-{service.key.replace('/', '-')}.yml"
                sidecar.parent.mkdir(parents=True, exist_ok=True)
                target = {"name": service.service, "url": f"{self._url(port)}/stats", "profile": "pharo", "process": {"pid": app.pid}}
                sidecar.write_text(dump({"listen": f"{HOST}:{ports.sidecars[service.key]}", "targets": [target]}))
                self._start(f"exporter {service.key}", pharos_command("exporter", "--config", str(sidecar)))
        self._start("exporter multi-target", pharos_command("exporter", "--listen", f"{HOST}:{ports.probe_exporter}", "--allow", f"{HOST}/32"))
        self._start("node_exporter", [self.binaries["node_exporter"], f"--web.listen-address={HOST}:{ports.node_exporter}", *NODE_EXPORTER_FLAGS])
        config = self.state_dir / "config"
        first = self.stack.environments[0].name  # every environment's set holds the same alertmanager.yml
        self._start(
            "alertmanager",
            [
                self.binaries["Alertmanager"],
                f"--config.file={config / first / 'alertmanager' / 'alertmanager.yml'}",
                f"--storage.path={self.state_dir / 'data' / 'alertmanager'}",
                f"--web.listen-address={HOST}:{ports.alertmanager}",
                f"--web.external-url={self._url(ports.alertmanager)}",  # the links in notifications
                "--cluster.listen-address=",  # a single instance: no gossip port
            ],
        )
        for environment in self.stack.environments:
            self._start(
                f"prometheus {environment.name}",
                [
                    self.binaries["Prometheus"],
                    f"--config.file={config / environment.name / 'prometheus' / 'prometheus.yml'}",
                    f"--storage.tsdb.path={self.state_dir / 'data' / f'prometheus-{environment.name}'}",
                    f"--web.listen-address={HOST}:{ports.prometheus[environment.name]}",
                    f"--web.external-url={self._url(ports.prometheus[environment.name])}",
                ],
            )
        # Everything is started before anything is waited for: they come up side by side.
        wait_until_listening(sinks, HOST, ports.smtp, START_TIMEOUT_SECONDS, self.stop)
        for child, url in self._readiness():
            wait_until_answers(child, url, START_TIMEOUT_SECONDS, self.stop, ready=lambda status: status == 200)

    def _readiness(self):
        """(child, URL that answers 200 once the child is ready to work)."""
        by_name = {child.name: child for child in self.children}
        yield by_name["sinks"], self._url(self.ports.slack) + "/"
        for service in SERVICES:
            yield by_name[f"demo-app {service.key}"], self._url(self.ports.apps[service.key]) + "/health"
            if service.mode == SIDECAR:
                yield by_name[f"exporter {service.key}"], self._url(self.ports.sidecars[service.key]) + "/"
        yield by_name["exporter multi-target"], self._url(self.ports.probe_exporter) + "/"
        yield by_name["node_exporter"], self._url(self.ports.node_exporter) + "/"
        yield by_name["alertmanager"], self._url(self.ports.alertmanager) + "/-/ready"
        for environment in self.stack.environments:
            yield by_name[f"prometheus {environment.name}"], self._url(self.ports.prometheus[environment.name]) + "/-/ready"

    def describe(self, fast: bool) -> dict:
        """up.json: what runs where, for `pharos fault`, tests and scripts."""
        ports = self.ports
        services = []
        for service in SERVICES:
            url = self._url(ports.apps[service.key])
            if service.mode == SIDECAR:
                metrics = self._url(ports.sidecars[service.key]) + "/metrics"
            else:
                metrics = f"{self._url(ports.probe_exporter)}/probe?target={HOST}:{ports.apps[service.key]}&profile=pharo"
            services.append({"name": service.key, "environment": service.environment, "service": service.service, "mode": service.mode, "url": url, "metrics": metrics})
        return {
            "pid": os.getpid(),
            "fast": fast,
            "state_dir": str(self.state_dir.resolve()),
            "prometheus": {environment: self._url(port) for environment, port in ports.prometheus.items()},
            "alertmanager": self._url(ports.alertmanager),
            "exporter": self._url(ports.probe_exporter),
            "node_exporter": self._url(ports.node_exporter) + "/metrics",
            "smtp": f"{HOST}:{ports.smtp}",
            "slack": self._url(ports.slack),
            "services": services,
            "children": [{"name": child.name, "pid": child.pid, "log": str(child.log)} for child in self.children],
        }

    def first_exit(self) -> Child | None:
        return next((child for child in self.children if child.exited() is not None), None)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", default=DEFAULT_STATE_DIR, metavar="DIR", help=f"configuration, data, logs and received messages (default {DEFAULT_STATE_DIR})")
    parser.add_argument("--port-base", type=_port_base, default=local_stack.DEFAULT_PORT_BASE, metavar="N", help=f"Prometheus on N, N+1, Alertmanager on N+3, ... (docs/local-stack.md); 0 picks free ports (default {local_stack.DEFAULT_PORT_BASE})")
    parser.add_argument("--fast", action="store_true", help="seconds instead of minutes: short scrape, evaluation, rate window, for and grouping intervals (through the stack file)")
    parser.add_argument("--traffic", type=_traffic, default=5.0, metavar="RPS", help="requests per second each demo service sends itself (default 5)")
    parser.add_argument("--duration", type=_duration, default=0.0, metavar="SECONDS", help="stop after this long; 0 runs until Ctrl-C or SIGTERM (default)")


def run(args: argparse.Namespace) -> int:
    state_dir = Path(args.state_dir).absolute()  # children and generated files get paths that hold anywhere
    try:
        binaries = find_binaries()
        up_state.prepare(state_dir)
        ports = _ports(args.port_base)
        stack = _configure(state_dir, ports, args.fast)
    except (StartError, up_state.StateError, StackConfigError) as error:
        print(f"pharos up: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"pharos up: cannot write {error.filename}: {error.strerror}; check --state-dir {state_dir}", file=sys.stderr)
        return 1

    stop = threading.Event()
    handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    previous = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in handled}
    running = Stack(state_dir, ports, stack, binaries, args.traffic, stop)
    code = 1
    try:
        running.start()
        if not stop.is_set():
            up_state.write(state_dir, running.describe(args.fast))
            _introduce(running, args.fast)
            code = _wait(running, stop, args.duration)
        else:
            code = 0
    except StartError as error:
        print(f"pharos up: {error}; stopping", file=sys.stderr)
    finally:
        clean = stop_all(reversed(running.children))
        up_state.remove(state_dir)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        print(f"pharos up: stopped {len(running.children)} processes" + ("" if clean else " (some had to be killed)"), flush=True)
    return code if clean else 1


def _ports(base: int) -> Ports:
    if base == 0:
        return Ports.free()
    ports = Ports.from_base(base)
    busy = ports.busy()
    if busy:
        raise StartError(f"ports already in use on {HOST}: {', '.join(busy)}; choose another --port-base, or 0 for free ports")
    return ports


def _configure(state_dir: Path, ports: Ports, fast: bool) -> StackConfig:
    """Write the stack file and its secrets, and build every environment's configuration from it."""
    webhooks = local_stack.write_webhook_secrets(state_dir / "secrets", ports.slack)
    smtp_password = local_stack.write_smtp_password(state_dir / "secrets")
    stack_file = state_dir / "stack.yml"
    header = "# The local stack of `pharos up`" + (" --fast" if fast else "") + "; written at every start.\n"
    stack_file.write_text(dump(local_stack.stack_data(ports, webhooks, fast, smtp_password), header), encoding="utf-8")
    stack = load(str(stack_file))
    build(stack, state_dir / "config")
    return stack


def _wait(running: Stack, stop: threading.Event, duration: float) -> int:
    ends = time.monotonic() + duration if duration else None
    while not stop.wait(POLL_SECONDS):
        stopped = running.first_exit()
        if stopped is not None:
            print(f"pharos up: {stopped.why_it_stopped()}; stopping everything", file=sys.stderr)
            return 1
        if ends is not None and time.monotonic() >= ends:
            break
    return 0


def _introduce(running: Stack, fast: bool) -> None:
    state = running.describe(fast)
    state_dir = running.state_dir
    lines = [f"pharos up: running {len(running.children)} processes" + (" with --fast intervals" if fast else " with the production intervals")]
    lines.append("  Prometheus, one per environment (targets at /targets, alerts at /alerts):")
    lines += [f"    {environment:<11} {url}" for environment, url in state["prometheus"].items()]
    lines.append(f"  Alertmanager    {state['alertmanager']}")
    lines.append("  demo services (faults: pharos fault NAME --error-ratio 0.5; --clear ends them):")
    for service in state["services"]:
        lines.append(f"    {service['name']:<18} {service['url']}  ({service['mode']}: {service['metrics']})")
    lines.append(f"  multi-target exporter {state['exporter']}")
    lines.append(f"  node_exporter   {state['node_exporter']} (this machine: CPU, memory, disks; job node)")
    lines.append(f"  mail sink       smtp://{state['smtp']} (AUTH as {local_stack.SMTP_USERNAME}), kept in {state_dir / 'mail'}")
    lines.append(f"  Slack sink      {state['slack']}, kept in {state_dir / 'slack'}")
    lines.append("  sink faults     pharos fault --sink smtp --down | --sink slack --status 500 [--for SECONDS]; --clear ends them")
    lines.append(f"  configuration   {state_dir / 'config'} (pharos build of {state_dir / 'stack.yml'}); logs in {state_dir / 'logs'}")
    for environment in running.stack.environments:
        estimate = error_rate_signal(running.stack, environment.name)
        lines.append(f"  a fault of error ratio 1 in {environment.name} reaches mail and Slack in {describe(estimate)}")
    lines += _optional_tools(state)
    lines.append("Ctrl-C stops everything.")
    print("\n".join(lines), flush=True)


def _optional_tools(state: dict) -> list[str]:
    """Tell where Grafana or Docker could join; pharos up starts neither (yet)."""
    lines = []
    grafana = shutil.which("grafana-server") or shutil.which("grafana")
    if grafana:
        sources = ", ".join(f"{environment} {url}" for environment, url in state["prometheus"].items())
        lines.append(f"  Grafana found ({grafana}), not started by pharos up: add Prometheus data sources {sources} (docs/local-stack.md)")
    docker = shutil.which("docker")
    if docker:
        lines.append(f"  Docker found ({docker}), not used: pharos up runs everything as local processes (docs/local-stack.md)")
    return lines


# --- argument types --------------------------------------------------------------------------
def _port_base(text: str) -> int:
    highest = max(Ports.from_base(0).all().values())
    if not text.isdigit() or not (int(text) == 0 or 1024 <= int(text) <= 65535 - highest):
        raise argparse.ArgumentTypeError(f"{text!r} is not a port from 1024 to {65535 - highest} (the stack takes the {highest} after it), or 0 for free ports")
    return int(text)


def _traffic(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 200:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of requests per second from 0 to 200")
    return value


def _duration(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 7 * 24 * 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds from 0 (until Ctrl-C) to a week")
    return value
