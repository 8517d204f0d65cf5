"""`pharos up`: the whole stack on this machine, without Docker, until Ctrl-C or SIGTERM.

    pharos up [--state-dir DIR] [--port-base N] [--fast] [--ha]

1. writes the local stack file (pharos/local/local_stack.py) and webhook secrets into the state
   directory and runs `pharos build` on it: Prometheus and Alertmanager get exactly what a user's
   `pharos build` would give them;
2. starts, each as a child in its own session with its log in STATE/logs: the mail and Slack
   sinks (`pharos sinks`, printing here), a demo service per environment, the sidecar and
   multi-target exporters, this machine's node_exporter (Debian's prometheus-node-exporter; the
   `node` job of every environment), Alertmanager, the fleet's global store and vmalert
   (Debian's victoria-metrics), and one Prometheus per environment, waiting for each to answer;
   with --ha, production's Prometheus pair and a cluster of three Alertmanagers instead, each
   started with the flags `pharos build` wrote into STATE/config/production/ha.yml;
3. writes STATE/up.json, prints where everything is, and waits;
4. on Ctrl-C, SIGTERM or SIGHUP, or when a child dies, stops every child (SIGTERM, then SIGKILL
   after a grace period) and removes up.json. With --ha, a replica of the pair or a member of the
   cluster may die while another one runs: that is what the shape is for, so pharos up says so
   and goes on; the last one of them, or any other child, stops everything.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from pharos_monitoring.demo.processes import Child, StartError, pharos_command, stop_all, wait_until_answers, wait_until_listening

from . import local_stack, up_state
from ..config import fleet, ha
from ..config.build import build
from .local_stack import HOST, SERVICES, Ports
from ..config.stack_config import SIDECAR, StackConfig, StackConfigError, load
from .time_to_signal import describe, error_rate_signal
from ..config.yaml_out import dump

DEFAULT_STATE_DIR = ".pharos"
START_TIMEOUT_SECONDS = 60
POLL_SECONDS = 0.25
DEMO_MEMORY_LIMIT_MB = 1024  # gives the memory panels and alerts a limit to compare with
REMOTE_FLUSH_DEADLINE = "2s"  # within demo.processes.STOP_GRACE_SECONDS
INSTALL_HINT = "sudo apt-get install prometheus prometheus-alertmanager prometheus-node-exporter victoria-metrics"
BINARIES = {
    # what -> names it has on Debian, then upstream
    "Prometheus": ("prometheus",),
    "Alertmanager": ("prometheus-alertmanager", "alertmanager"),
    "node_exporter": ("prometheus-node-exporter", "node_exporter"),
    # The fleet's global store and its rules: both in Debian's victoria-metrics package.
    "VictoriaMetrics": ("victoria-metrics", "victoria-metrics-prod"),
    "vmalert": ("vmalert", "vmalert-prod"),
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


@dataclass(frozen=True)
class Server:
    """A Prometheus or an Alertmanager: its child, its URL, and where it stands in its pair or cluster."""

    child: Child
    url: str
    replica: str = ""  # the `replica` label of a pair's member
    cluster: str = ""  # a cluster member's gossip address


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
        self.prometheus: dict[str, list[Server]] = {}  # environment -> its server, or its pair
        self.alertmanagers: list[Server] = []
        # What may lose a member and go on (--ha): description -> (what a member is called, the members).
        self.redundant: dict[str, tuple[str, list[Child]]] = {}
        self.survived: set[str] = set()  # children whose death their pair or cluster survives, already told

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
        self._start_alertmanagers(config)
        self._start_store(config / fleet.FLEET_DIR)
        for environment in self.stack.environments:
            self._start_prometheus(environment.name, config / environment.name)
        # Everything is started before anything is waited for: they come up side by side.
        wait_until_listening(sinks, HOST, ports.smtp, START_TIMEOUT_SECONDS, self.stop)
        for child, url in self._readiness():
            wait_until_answers(child, url, START_TIMEOUT_SECONDS, self.stop, ready=lambda status: status == 200)
        # The global rules last: started before the Prometheus servers write, they would find every
        # environment silent.
        vmalert = self._start_vmalert(config / fleet.FLEET_DIR)
        wait_until_answers(vmalert, self._url(ports.vmalert) + "/health", START_TIMEOUT_SECONDS, self.stop, ready=lambda status: status == 200)

    def _ha_flags(self, environment: str) -> dict | None:
        """What `pharos build` wrote into the environment's ha.yml: the flags of its replicas and of
        the Alertmanager cluster; None for an environment without `ha:`."""
        path = self.state_dir / "config" / environment / ha.FLAGS_FILE
        return yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None

    def _start_alertmanagers(self, config: Path) -> None:
        # Every environment's set holds the same alertmanager.yml, and lists the same Alertmanagers.
        first = self.stack.environments[0].name
        command = [self.binaries["Alertmanager"], f"--config.file={config / first / 'alertmanager' / 'alertmanager.yml'}"]
        data = self.state_dir / "data"
        cluster = next((flags["alertmanager"] for environment in self.stack.environments if (flags := self._ha_flags(environment.name))), None)
        if cluster is None:
            url = self._url(self.ports.alertmanager)
            child = self._start(
                "alertmanager",
                [
                    *command,
                    f"--storage.path={data / 'alertmanager'}",
                    f"--web.listen-address={HOST}:{self.ports.alertmanager}",
                    f"--web.external-url={url}",  # the links in notifications
                    "--cluster.listen-address=",  # a single instance: no gossip port
                ],
            )
            self.alertmanagers = [Server(child, url)]
            return
        for number, member in enumerate(cluster, start=1):
            url = f"http://{member['address']}"
            child = self._start(f"alertmanager/{number}", [*command, f"--storage.path={data / f'alertmanager-{number}'}", f"--web.external-url={url}", *member["flags"]])
            self.alertmanagers.append(Server(child, url, cluster=member["cluster_address"]))
        self.redundant["the Alertmanager cluster"] = ("members", [server.child for server in self.alertmanagers])

    def _start_prometheus(self, environment: str, config: Path) -> None:
        command = [
            self.binaries["Prometheus"],
            f"--config.file={config / 'prometheus' / 'prometheus.yml'}",
            # On stop, the global store may already be gone: do not wait a minute to flush to it.
            f"--storage.remote.flush-deadline={REMOTE_FLUSH_DEADLINE}",
        ]
        data = self.state_dir / "data"
        flags = self._ha_flags(environment)
        if flags is None:
            url = self._url(self.ports.prometheus[environment])
            listen = f"--web.listen-address={HOST}:{self.ports.prometheus[environment]}"
            child = self._start(f"prometheus {environment}", [*command, f"--storage.tsdb.path={data / f'prometheus-{environment}'}", listen, f"--web.external-url={url}"])
            self.prometheus[environment] = [Server(child, url)]
            return
        pair = []
        for replica in flags["prometheus"]:
            number, url = replica["environment"][ha.REPLICA_VARIABLE], f"http://{replica['address']}"
            tsdb = data / f"prometheus-{environment}-{number}"
            child = self._start(
                f"prometheus {environment}/{number}",
                [*command, f"--storage.tsdb.path={tsdb}", f"--web.external-url={url}", *replica["flags"]],
                environment=replica["environment"],  # REPLICA, which the external label `replica` expands
            )
            pair.append(Server(child, url, replica=number))
        self.prometheus[environment] = pair
        self.redundant[f"{environment}'s Prometheus pair"] = ("replicas", [server.child for server in pair])

    def _start_store(self, config: Path) -> Child:
        """The global store, with the flags `pharos build` wrote into fleet/fleet.yml."""
        store = yaml.safe_load((config / fleet.FLAGS_FILE).read_text(encoding="utf-8"))["victoria-metrics"]
        data = self.state_dir / "data" / "global-store"
        return self._start("global store", [self.binaries["VictoriaMetrics"], *store["flags"], f"{store['data_flag']}={data}"])

    def _start_vmalert(self, config: Path) -> Child:
        rules = yaml.safe_load((config / fleet.FLAGS_FILE).read_text(encoding="utf-8"))["vmalert"]
        rules_path, notifier_path = config / fleet.RULES_DIR / "*.yml", config / fleet.NOTIFIER_FILE
        return self._start("vmalert", [self.binaries["vmalert"], *rules["flags"], f"{rules['rules_flag']}={rules_path}", f"{rules['notifier_flag']}={notifier_path}"])

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
        for server in self.alertmanagers:
            yield server.child, server.url + "/-/ready"
        yield by_name["global store"], self._url(self.ports.global_store) + "/health"
        for servers in self.prometheus.values():
            for server in servers:
                yield server.child, server.url + "/-/ready"

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
            "ha": ports.ha,
            "state_dir": str(self.state_dir.resolve()),
            # One URL per environment (a pair's first replica); every server, pairs whole, below.
            "prometheus": {environment: self.prometheus[environment][0].url for environment in ports.prometheus},
            "prometheus_servers": {
                environment: [{"name": s.child.name, "url": s.url, "pid": s.child.pid, "replica": s.replica or None} for s in self.prometheus[environment]]
                for environment in ports.prometheus
            },
            "alertmanager": self.alertmanagers[0].url,
            "alertmanagers": [{"name": s.child.name, "url": s.url, "pid": s.child.pid, "cluster": s.cluster or None} for s in self.alertmanagers],
            "exporter": self._url(ports.probe_exporter),
            "node_exporter": self._url(ports.node_exporter) + "/metrics",
            "global_store": self._url(ports.global_store),
            "vmalert": self._url(ports.vmalert),
            "smtp": f"{HOST}:{ports.smtp}",
            "slack": self._url(ports.slack),
            "services": services,
            "children": [{"name": child.name, "pid": child.pid, "log": str(child.log)} for child in self.children],
        }

    def stop_all(self) -> bool:
        """Stop every child; True when each stopped by itself. A cluster's members go first, one at
        a time: a member leaving after its peers is gone at once, while members leaving together
        each wait (10 s in Alertmanager 0.25) for their goodbye to reach a peer that still listens."""
        cluster = [server.child for server in self.alertmanagers] if len(self.alertmanagers) > 1 else []
        clean = all([stop_all([member]) for member in cluster])
        return stop_all(child for child in reversed(self.children) if child not in cluster) and clean

    def exited(self) -> list[Child]:
        return [child for child in self.children if child.exited() is not None]

    def goes_on_without(self, dead: Child) -> tuple[bool, str]:
        """Whether the stack goes on without `dead` (its pair or cluster still has a member running),
        and what to say about it: how many are left, or that it was the last one."""
        for what, (kind, members) in self.redundant.items():
            if dead in members:
                running = [child for child in members if child.exited() is None]
                if running:
                    return True, f"{what} goes on with {len(running)} of {len(members)} {kind}"
                return False, f"the last of {what}"
        return False, ""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", default=DEFAULT_STATE_DIR, metavar="DIR", help=f"configuration, data, logs and received messages (default {DEFAULT_STATE_DIR})")
    parser.add_argument("--port-base", type=_port_base, default=local_stack.DEFAULT_PORT_BASE, metavar="N", help=f"Prometheus on N, N+1, Alertmanager on N+3, ... (docs/local-stack.md); 0 picks free ports (default {local_stack.DEFAULT_PORT_BASE})")
    parser.add_argument("--fast", action="store_true", help="seconds instead of minutes: short scrape, evaluation, rate window, for and grouping intervals (through the stack file)")
    parser.add_argument(
        "--ha",
        action="store_true",
        help="the HA shape: production's Prometheus as a pair, the Alertmanager as a cluster of three (three more processes; docs/local-stack.md)",
    )
    parser.add_argument("--traffic", type=_traffic, default=5.0, metavar="RPS", help="requests per second each demo service sends itself (default 5)")
    parser.add_argument("--duration", type=_duration, default=0.0, metavar="SECONDS", help="stop after this long; 0 runs until Ctrl-C or SIGTERM (default)")


def run(args: argparse.Namespace) -> int:
    state_dir = Path(args.state_dir).absolute()  # children and generated files get paths that hold anywhere
    try:
        binaries = find_binaries()
        up_state.prepare(state_dir)
        ports = _ports(args.port_base, args.ha)
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
        clean = running.stop_all()
        up_state.remove(state_dir)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        print(f"pharos up: stopped {len(running.children)} processes" + ("" if clean else " (some had to be killed)"), flush=True)
    return code if clean else 1


def _ports(base: int, ha: bool) -> Ports:
    if base == 0:
        return Ports.free(ha)
    ports = Ports.from_base(base, ha)
    busy = ports.busy()
    if busy:
        raise StartError(f"ports already in use on {HOST}: {', '.join(busy)}; choose another --port-base, or 0 for free ports")
    return ports


def _configure(state_dir: Path, ports: Ports, fast: bool) -> StackConfig:
    """Write the stack file and its secrets, and build every environment's configuration from it."""
    webhooks = local_stack.write_webhook_secrets(state_dir / "secrets", ports.slack)
    smtp_password = local_stack.write_smtp_password(state_dir / "secrets")
    stack_file = state_dir / "stack.yml"
    header = "# The local stack of `pharos up`" + (" --fast" if fast else "") + (" --ha" if ports.ha else "") + "; written at every start.\n"
    stack_file.write_text(dump(local_stack.stack_data(ports, webhooks, fast, smtp_password), header), encoding="utf-8")
    stack = load(str(stack_file))
    build(stack, state_dir / "config")
    return stack


def _wait(running: Stack, stop: threading.Event, duration: float) -> int:
    ends = time.monotonic() + duration if duration else None
    while not stop.wait(POLL_SECONDS):
        for stopped in running.exited():
            if stopped.name in running.survived:
                continue
            goes_on, note = running.goes_on_without(stopped)
            if not goes_on:
                print(f"pharos up: {stopped.why_it_stopped()}; {note + '; ' if note else ''}stopping everything", file=sys.stderr, flush=True)
                return 1
            running.survived.add(stopped.name)
            print(f"pharos up: {stopped.why_it_stopped()}; {note}", file=sys.stderr, flush=True)
        if ends is not None and time.monotonic() >= ends:
            break
    return 0


def _introduce(running: Stack, fast: bool) -> None:
    state = running.describe(fast)
    state_dir = running.state_dir
    lines = [f"pharos up: running {len(running.children)} processes" + (" with --fast intervals" if fast else " with the production intervals") + (", HA shape" if state["ha"] else "")]
    lines.append("  Prometheus, one per environment" + (" or a pair" if state["ha"] else "") + " (targets at /targets, alerts at /alerts):")
    for environment, servers in state["prometheus_servers"].items():
        for server in servers:
            replica = f"  (replica=\"{server['replica']}\")" if server["replica"] else ""
            lines.append(f"    {environment:<11} {server['url']}{replica}")
    if state["ha"]:
        lines.append(f"  Alertmanager cluster of {len(state['alertmanagers'])} (every Prometheus and vmalert send to each):")
        lines += [f"    {member['name']:<14} {member['url']}  (gossip {member['cluster']})" for member in state["alertmanagers"]]
    else:
        lines.append(f"  Alertmanager    {state['alertmanager']}")
    lines.append(f"  global store    {state['global_store']} (VictoriaMetrics: both environments side by side, PromQL at /api/v1/query)")
    lines.append(f"  vmalert         {state['vmalert']} (global rules: an environment gone silent, its Alertmanagers gone)")
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
    highest = max(Ports.from_base(0, ha=True).all().values())  # the larger shape: --ha may come after
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
