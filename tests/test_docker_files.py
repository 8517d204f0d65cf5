"""Dockerfile, .dockerignore and docker-compose.monitoring.yml, read without an engine: what they
promise (pinned images behind variables, secrets as files, limits, opt-in labels, configs that
`pharos build` writes) and that they agree with the stack example and the code."""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from docker.utils.build import exclude_paths

from pharos_monitoring.config import fleet, ha, node_agent, swarm_discovery
from pharos_monitoring.config.build import RULE_TESTS_FILE, build
from pharos_monitoring.config.stack_config import load

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.monitoring.yml").read_text())
SWARM_STACK = ROOT / "examples" / "swarm-stack.yml"
_VARIABLE = re.compile(r"\$\{(?P<name>[A-Z_][A-Z0-9_]*)(?::-(?P<default>[^}]*))?\}")
OFFICIAL_IMAGES = {
    "prometheus": "prom/prometheus:", "alertmanager": "prom/alertmanager:", "grafana": "grafana/grafana:", "node-exporter": "prom/node-exporter:",
    "global-store": "victoriametrics/victoria-metrics:", "vmalert": "victoriametrics/vmalert:",
}


def interpolate(text: str, environment: dict[str, str] | None = None) -> str:
    """Compose's `${NAME:-default}`, as `docker stack deploy` expands it."""
    environment = environment or {}
    return _VARIABLE.sub(lambda m: environment.get(m["name"], m["default"] or ""), text)


def services() -> dict:
    return COMPOSE["services"]


# --- images ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(COMPOSE["services"]))
def test_every_image_is_a_variable_with_a_pinned_default(name: str):
    image = services()[name]["image"]
    match = _VARIABLE.fullmatch(image)
    assert match and match["default"], f"{name}: image {image!r} is not ${{VARIABLE:-default}}"
    default = match["default"]
    tag = default.rpartition(":")[2]
    assert tag and tag != "latest" and re.search(r"\d", tag), f"{name}: {default} is not pinned to a version"
    if name in OFFICIAL_IMAGES:
        assert default.startswith(OFFICIAL_IMAGES[name])


def test_the_pharos_services_share_one_image_variable():
    assert services()["pharos-exporter"]["image"] == services()["demo"]["image"] == services()["pharos-node-agent"]["image"]
    assert _VARIABLE.fullmatch(services()["demo"]["image"])["name"] == "PHAROS_IMAGE"


# --- deploy sections ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(COMPOSE["services"]))
def test_every_service_has_limits_a_restart_policy_and_the_overlay_network(name: str):
    service = services()[name]
    deploy = service["deploy"]
    limits = deploy["resources"]["limits"]
    assert float(limits["cpus"]) > 0 and re.fullmatch(r"\d+[MG]", limits["memory"])
    assert deploy["restart_policy"]["condition"] == "any"
    assert "replicas" in deploy or deploy.get("mode") == "global"
    # node_exporter on each node's own network stack (Docker's `host` network), to see its interfaces.
    assert service["networks"] == (["hostnet"] if name == "node-exporter" else ["monitoring"])


def test_the_host_network_is_docker_s_predefined_one():
    assert COMPOSE["networks"]["hostnet"] == {"name": "host", "external": True}


def test_the_network_is_the_overlay_the_stack_file_names():
    network = COMPOSE["networks"]["monitoring"]
    assert interpolate(network["driver"]) == "overlay"
    stack = load(str(SWARM_STACK))
    swarm = stack.environment("production").swarm
    assert interpolate(network["name"]) == swarm.network
    subnet = interpolate(network["ipam"]["config"][0]["subnet"])
    # The exporter's /probe may reach exactly that network.
    assert f"--allow={subnet}" in [interpolate(arg) for arg in services()["pharos-exporter"]["command"]]


def test_socket_readers_run_on_managers_in_the_socket_group():
    for name in ("prometheus", "pharos-exporter"):
        service = services()[name]
        assert service["deploy"]["placement"]["constraints"] == ["node.role == manager"]
        socket_mounts = [v for v in service["volumes"] if isinstance(v, dict) and v["target"] == "/var/run/docker.sock"]
        assert socket_mounts and socket_mounts[0]["read_only"] is True
        user, _, group = service["user"].partition(":")
        assert user not in ("0", "root") and _VARIABLE.fullmatch(group)["name"] == "DOCKER_GID"
    # The manager's exporter reads the cluster state only; the node agents read the containers.
    assert [arg for arg in services()["pharos-exporter"]["command"] if arg.startswith("--swarm")] == ["--swarm-scope=state"]
    assert services()["pharos-exporter"]["deploy"]["replicas"] == 1


def test_a_node_agent_reads_the_task_containers_of_every_node_where_its_job_looks():
    agent, exporter = services()["pharos-node-agent"], services()["pharos-exporter"]
    assert agent["command"] == ["exporter", "--swarm-scope=containers"]  # no --allow: its /probe refuses everything
    assert agent["deploy"]["mode"] == "global" and "placement" not in agent["deploy"]  # workers too
    assert agent["volumes"] == exporter["volumes"] and agent["volumes"][0]["read_only"] is True
    assert agent["user"] == exporter["user"]
    assert agent["deploy"]["labels"] == {node_agent.NODE_AGENT_LABEL: "true"}
    assert agent["networks"] == ["monitoring"]
    # The image's exporter listens on 9841 (PHAROS_LISTEN in the Dockerfile): where the job scrapes each task.
    swarm = load(str(SWARM_STACK)).environment("production").swarm
    assert "PHAROS_LISTEN=0.0.0.0:9841" in (ROOT / "Dockerfile").read_text()
    assert swarm.node_agent_port == node_agent.DEFAULT_NODE_AGENT_PORT == 9841


def test_the_demo_opts_in_to_swarm_discovery_with_the_labels_the_discovery_reads():
    demo = services()["demo"]
    labels = demo["deploy"]["labels"]
    assert set(labels) <= set(swarm_discovery.DEPLOY_LABELS)
    assert labels[swarm_discovery.SCRAPE_LABEL] == swarm_discovery.SCRAPE_ON
    listen = demo["command"][demo["command"].index("--listen") + 1]
    assert listen.rpartition(":")[2] == labels[swarm_discovery.PORT_LABEL]
    # Its health check asks the demo, not the exporter the image checks by default.
    assert demo["healthcheck"]["test"][-1] == f"http://127.0.0.1:{labels[swarm_discovery.PORT_LABEL]}/health"


def test_the_stack_file_names_the_services_of_the_compose_file():
    stack = load(str(SWARM_STACK))
    environment = stack.environment("production")
    addresses = (environment.exporter, environment.prometheus, *environment.alertmanagers, *environment.ha.prometheus, stack.fleet.store, stack.fleet.vmalert)
    for address in addresses:
        host = address.rpartition(":")[0].removeprefix("tasks.")  # the swarm's DNS name of every task of the service
        assert host in services(), f"{address}: no service {host} in docker-compose.monitoring.yml"


# --- the HA shape and the fleet: the compose file starts what ha.yml and fleet/fleet.yml say --------
def _expanded(command: list[str]) -> list[str]:
    """A command as deployed with the variables' defaults."""
    return [interpolate(arg) for arg in command]


def test_prometheus_runs_the_pair_of_ha_yml_with_its_slot_as_replica(tmp_path: Path):
    built_files(tmp_path)
    (pair,) = yaml.safe_load((tmp_path / "production" / ha.FLAGS_FILE).read_text())["prometheus"]
    service = services()["prometheus"]
    assert int(interpolate(str(service["deploy"]["replicas"]))) == pair[ha.REPLICAS_KEY] == 2
    assert service["environment"] == pair["environment"] == {"REPLICA": "{{.Task.Slot}}"}
    command = _expanded(service["command"])
    assert set(pair["flags"]) <= set(command), f"missing {set(pair['flags']) - set(command)}"


def test_alertmanager_runs_the_cluster_of_ha_yml_advertised_on_its_own_network(tmp_path: Path):
    built_files(tmp_path)
    (cluster,) = yaml.safe_load((tmp_path / "production" / ha.FLAGS_FILE).read_text())["alertmanager"]
    service = services()["alertmanager"]
    assert int(interpolate(str(service["deploy"]["replicas"]))) == cluster[ha.MEMBERS_KEY] == 3
    command = _expanded(service["command"])
    assert command[-len(cluster["flags"]):] == cluster["flags"]
    # Alertmanager's own choice would be docker_gwbridge's address, unreachable from other nodes.
    assert "--cluster.advertise-address=\"$(hostname -i):9094\"" in service["entrypoint"][2].replace("$$", "$")


def test_each_replica_and_member_keeps_its_data_in_a_volume_of_its_slot():
    for name, target in (("prometheus", "/prometheus"), ("alertmanager", "/alertmanager")):
        (volume,) = [v.partition(":")[0] for v in services()[name]["volumes"] if isinstance(v, str) and v.endswith(":" + target)]
        assert COMPOSE["volumes"][volume]["name"] == "{{.Service.Name}}-data-{{.Task.Slot}}"


def test_the_global_store_and_vmalert_run_with_the_flags_of_fleet_yml(tmp_path: Path):
    built_files(tmp_path)
    flags = yaml.safe_load((tmp_path / fleet.FLEET_DIR / fleet.FLAGS_FILE).read_text())
    store = _expanded(services()["global-store"]["command"])
    assert set(flags["victoria-metrics"]["flags"]) <= set(store)
    assert [arg for arg in store if arg.startswith(flags["victoria-metrics"]["data_flag"] + "=")] == ["-storageDataPath=/storage"]
    vmalert = _expanded(services()["vmalert"]["command"])
    files = (flags["vmalert"]["rules_flag"] + "=", flags["vmalert"]["notifier_flag"] + "=")
    assert sorted(flags["vmalert"]["flags"]) == sorted(arg for arg in vmalert if not arg.startswith(files))
    configs = {config["source"]: config["target"] for config in services()["vmalert"]["configs"]}
    assert f"{flags['vmalert']['rules_flag']}={configs['fleet_rules']}" in vmalert
    assert f"{flags['vmalert']['notifier_flag']}={configs['fleet_notifier']}" in vmalert
    # Every member of the cluster, by DNS: the swarm's tasks.alertmanager.
    notifier = yaml.safe_load((tmp_path / fleet.FLEET_DIR / fleet.NOTIFIER_FILE).read_text())
    assert notifier == {"dns_sd_configs": [{"names": ["tasks.alertmanager"], "type": "A", "port": 9093}]}


def test_node_exporter_runs_on_every_node_reading_the_host_where_the_node_job_looks():
    service = services()["node-exporter"]
    assert service["deploy"]["mode"] == "global"
    (root,) = [v for v in service["volumes"] if v["target"] == "/host"]
    assert (root["type"], root["source"], root["read_only"]) == ("bind", "/", True)
    assert "--path.rootfs=/host" in service["command"] and "--no-collector.systemd" in service["command"]
    # On the host's network: no port to publish, it listens on the node's own addresses.
    assert "ports" not in service and service["networks"] == ["hostnet"]
    swarm = load(str(SWARM_STACK)).environment("production").swarm
    (listen,) = [arg for arg in service["command"] if arg.startswith("--web.listen-address=")]
    assert listen == "--web.listen-address=:${NODE_EXPORTER_PORT:-9100}"
    assert int(interpolate(listen).rpartition(":")[2]) == swarm.node_exporter_port


# --- secrets and configs -----------------------------------------------------------------------
def built_files(tmp_path: Path) -> dict[str, Path]:
    """`pharos build` of the swarm example (production/ and fleet/): relative path -> file."""
    written = build(load(str(SWARM_STACK)), tmp_path)
    return {path.relative_to(tmp_path).as_posix(): path for path in written}


def mounted_files(service: dict, build_dir: Path) -> list[Path]:
    """The built files a service reads: its configs and env files."""
    sources = [COMPOSE["configs"][mount["source"]]["file"] for mount in service.get("configs", [])] + service.get("env_file", [])
    directories = {"PHAROS_BUILD_DIR": str(build_dir / "production"), "PHAROS_FLEET_BUILD_DIR": str(build_dir / fleet.FLEET_DIR)}
    return [Path(interpolate(source, directories)) for source in sources]


def test_secrets_are_files_mounted_where_the_generated_files_read_them(tmp_path: Path):
    built_files(tmp_path)
    secrets = COMPOSE["secrets"]
    assert all(set(secret) == {"name", "file"} for secret in secrets.values())
    read_somewhere = set()
    for name, service in services().items():
        texts = [path.read_text() for path in mounted_files(service, tmp_path)]
        texts.append(yaml.safe_dump(service.get("environment", {})))
        referenced = {secret for text in texts for secret in re.findall(r"/run/secrets/([A-Za-z0-9_.-]+)", text)}
        assert referenced <= set(service.get("secrets", [])), f"{name} reads secrets it does not mount: {referenced - set(service.get('secrets', []))}"
        assert set(service.get("secrets", [])) <= set(secrets)
        read_somewhere |= referenced
    assert read_somewhere == set(secrets), "a secret nobody reads"
    for variable in services()["grafana"].get("environment", {}):
        assert "PASSWORD" not in variable or variable.endswith("__FILE"), f"{variable}: Grafana reads passwords from files"
    smtp = (tmp_path / "production" / "grafana" / "smtp.env").read_text()
    assert "GF_SMTP_ENABLED=true" in smtp and "GF_SMTP_PASSWORD__FILE=/run/secrets/" in smtp


def test_every_built_file_is_mounted_where_its_reader_looks(tmp_path: Path):
    built = built_files(tmp_path)
    mounted = {path.relative_to(tmp_path).as_posix() for service in services().values() for path in mounted_files(service, tmp_path)}
    # `promtool test rules` input and the flags (in the compose file's commands), read by no service.
    for_people = {path for path in built if path.endswith(("/" + RULE_TESTS_FILE, "/" + ha.FLAGS_FILE, "/" + fleet.FLAGS_FILE, "/" + fleet.TESTS_FILE, "/" + fleet.PROMTOOL_RULES_FILE))}
    assert mounted == set(built) - for_people, "pharos build writes files the compose file does not mount, or the reverse"
    configs = COMPOSE["configs"]
    targets = {mount["source"]: mount["target"] for service in services().values() for mount in service.get("configs", [])}
    assert set(targets) == set(configs), "every config is mounted by a service"
    for name, target in targets.items():
        assert Path(configs[name]["file"]).name == Path(target).name
    # Prometheus loads rules/*.yml next to its configuration; Grafana's provider reads the dashboards' directory.
    prometheus = yaml.safe_load(built["production/prometheus/prometheus.yml"].read_text())
    rule_targets = [t for n, t in targets.items() if n.startswith("prometheus_") and "rules" in n]
    assert rule_targets and all(Path(t).parent.as_posix() == "/etc/prometheus/" + prometheus["rule_files"][0].rpartition("/")[0] for t in rule_targets)
    provider = yaml.safe_load(built["production/grafana/provisioning/dashboards/pharos.yml"].read_text())["providers"][0]
    for name, target in targets.items():
        if configs[name]["file"].endswith(".json"):
            assert Path(target).parent.as_posix() == provider["options"]["path"]


# --- one host without a swarm (docker-compose.single-host.yml over the base file) ---------------
SINGLE_HOST = yaml.safe_load((ROOT / "docker-compose.single-host.yml").read_text())


def test_the_single_host_override_binds_every_config_at_its_target_read_only():
    configs = COMPOSE["configs"]
    for name, service in services().items():
        wanted = {(configs[mount["source"]]["file"], mount["target"]) for mount in service.get("configs", [])}
        binds = [v for v in SINGLE_HOST["services"].get(name, {}).get("volumes", []) if v["target"] not in {m["target"] for m in service.get("volumes", []) if isinstance(m, dict)}]
        assert all(v["type"] == "bind" and v["read_only"] is True for v in binds), name
        assert {(v["source"], v["target"]) for v in binds} == wanted, f"{name}: the override's bind mounts differ from its configs"


def test_the_single_host_override_uses_a_bridge_network_and_no_swarm():
    network = SINGLE_HOST["networks"]["monitoring"]
    base = COMPOSE["networks"]["monitoring"]
    assert network["driver"] == "bridge"
    assert network["name"] == base["name"] and network["ipam"] == base["ipam"]
    command = SINGLE_HOST["services"]["pharos-exporter"]["command"]
    assert not [arg for arg in command if arg.startswith("--swarm")]
    assert command == [arg for arg in services()["pharos-exporter"]["command"] if not arg.startswith("--swarm")]
    assert set(SINGLE_HOST["services"]) - set(services()) == {"node-exporter-host"}
    # The swarm-only services are never started here.
    assert {name for name, service in SINGLE_HOST["services"].items() if service.get("profiles")} == {"node-exporter", "pharos-node-agent"}


def test_the_single_host_node_exporter_reads_the_host_where_prometheus_looks():
    host, swarm = SINGLE_HOST["services"]["node-exporter-host"], services()["node-exporter"]
    assert (host["network_mode"], host["pid"]) == ("host", "host")
    assert (host["image"], host["command"], host["volumes"]) == (swarm["image"], swarm["command"], swarm["volumes"])
    # Prometheus, on the bridge, reaches the host at the bridge's gateway: the subnet's first address.
    (alias,) = SINGLE_HOST["services"]["prometheus"]["extra_hosts"]
    name, _, address = alias.partition(":")
    subnet = interpolate(SINGLE_HOST["networks"]["monitoring"]["ipam"]["config"][0]["subnet"])
    assert name == "docker-host" and interpolate(address) == str(next(ipaddress.ip_network(subnet).hosts()))


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed (apt-get install docker-compose)")
def test_docker_compose_reads_the_single_host_stack(tmp_path: Path):
    built_files(tmp_path)
    env_file = tmp_path / "compose.env"  # empty: a stray .env must not change what is read
    env_file.write_text("")
    result = subprocess.run(
        ["docker-compose", "--env-file", str(env_file), "-f", str(ROOT / "docker-compose.monitoring.yml"), "-f", str(ROOT / "docker-compose.single-host.yml"), "config"],
        capture_output=True, text=True, timeout=60,
        env={
            "PATH": os.environ["PATH"], "PHAROS_BUILD_DIR": str(tmp_path / "production"), "PHAROS_FLEET_BUILD_DIR": str(tmp_path / fleet.FLEET_DIR),
            "PHAROS_SECRETS_DIR": str(tmp_path / "secrets"),
        },
    )
    assert result.returncode == 0, result.stderr
    merged = yaml.safe_load(result.stdout)
    assert merged["networks"]["monitoring"]["driver"] == "bridge"
    assert merged["services"]["demo"]["deploy"]["replicas"] == 1
    prometheus_binds = {v["target"]: v["source"] for v in merged["services"]["prometheus"]["volumes"] if isinstance(v, dict) and v["type"] == "bind"}
    assert prometheus_binds["/etc/prometheus/prometheus.yml"] == str(tmp_path / "production" / "prometheus" / "prometheus.yml")
    # One of each, without gossip, in the project's own volumes: no task slots, no tasks.<service> here.
    assert [merged["services"][name]["deploy"]["replicas"] for name in ("prometheus", "alertmanager")] == [1, 1]
    assert merged["services"]["prometheus"]["environment"]["REPLICA"] == "1"
    assert "--cluster.listen-address=" in merged["services"]["alertmanager"]["command"]
    assert not any("{{" in str(volume) for volume in merged["volumes"].values())
    assert "-notifier.config=/etc/vmalert/notifier.yml" in merged["services"]["vmalert"]["command"]
    vmalert_binds = {v["target"]: v["source"] for v in merged["services"]["vmalert"]["volumes"] if isinstance(v, dict) and v["type"] == "bind"}
    assert vmalert_binds["/etc/vmalert/notifier.yml"] == str(tmp_path / "fleet" / "notifier.yml")
    # node_exporter on the host's network and PID namespaces; the swarm's own one and the agents never start.
    host = merged["services"]["node-exporter-host"]
    assert (host["network_mode"], host["pid"]) == ("host", "host") and "networks" not in host
    assert merged["services"]["node-exporter"]["profiles"] == merged["services"]["pharos-node-agent"]["profiles"] == ["swarm"]


def test_config_names_carry_a_version_so_a_new_build_can_be_deployed():
    for section in ("configs", "secrets"):
        for name, entry in COMPOSE[section].items():
            assert _VARIABLE.search(entry["name"]), f"{section}.{name}: immutable in a swarm, its name must change with its content"


# --- the image ---------------------------------------------------------------------------------
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def test_the_dockerfile_takes_the_base_image_as_an_argument_and_runs_as_a_user():
    assert re.search(r"^ARG BASE_IMAGE=python:3\.\d+-slim\S*$", DOCKERFILE, re.MULTILINE)
    froms = re.findall(r"^FROM (\S+)", DOCKERFILE, re.MULTILINE)
    assert froms == ["${BASE_IMAGE}", "${BASE_IMAGE}"]
    users = re.findall(r"^USER (\d+):(\d+)$", DOCKERFILE, re.MULTILINE)
    assert users and all(int(uid) > 0 and int(gid) > 0 for uid, gid in users)
    healthcheck = re.search(r"^HEALTHCHECK .*\n?.*CMD (\[.*\])", DOCKERFILE, re.MULTILINE)
    assert healthcheck and "pharos_monitoring.exporter.healthcheck" in healthcheck.group(1)
    assert not DOCKERFILE.startswith("# syntax="), "a syntax line makes BuildKit pull its frontend"


def test_the_image_installs_no_extras_unless_asked_and_the_pinned_versions():
    assert re.search(r'^ARG EXTRAS=""$', DOCKERFILE, re.MULTILINE)
    install = re.search(r"pip install .*$", DOCKERFILE, re.MULTILINE).group(0)
    assert '"/src${EXTRAS:+[$EXTRAS]}"' in install and "$constraints" in install
    assert "--constraint /src/constraints.txt" in DOCKERFILE


def test_the_build_context_holds_the_package_and_nothing_else():
    patterns = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip() and not line.startswith("#")]
    context = set(exclude_paths(str(ROOT), patterns))
    for needed in ("pyproject.toml", "constraints.txt", "README.md", "exporter/catalogue.py", "exporter/swarm.py", "exporter/healthcheck.py", "pharos/cli.py"):
        assert needed in context
    assert any(path.startswith("exporter/profiles/schemas/") for path in context)
    for kept_out in (".venv", ".git", "tests", "docs", "build", "secrets", "bench"):
        assert not any(path == kept_out or path.startswith(kept_out + "/") for path in context), f"{kept_out} is in the build context"
    assert not any("__pycache__" in path for path in context)


def test_the_rule_files_of_objectives_and_expected_counts_are_mounted_too(tmp_path: Path):
    """Services with objectives and declared instance counts get two more rule files. The compose
    file and the single-host override must load them: they were built but not mounted once, and a
    Docker deployment lost the burn-rate alerts (which replace the threshold ones) without a word."""
    from pharos_monitoring.alerts import prometheus_rules

    data = yaml.safe_load(SWARM_STACK.read_text())
    data["environments"]["production"]["services"] = {
        "orders": {"mode": "probe", "profile": "pharo", "targets": ["orders-1:8080"], "objectives": {"availability": 99.9}, "expected_instances": 1},
    }
    stack = tmp_path / "stack.yml"
    stack.write_text(yaml.safe_dump(data))
    written = build(load(str(stack)), tmp_path / "out")
    rules = {path.name for path in written if path.parent.name == "rules" and path.parent.parent.name == "prometheus"}
    assert {prometheus_rules.SLO_FILE, prometheus_rules.EXPECTED_FILE} <= rules
    rules_dir = "/etc/prometheus/rules/"
    swarm = {Path(mount["target"]).name for mount in services()["prometheus"]["configs"] if mount["target"].startswith(rules_dir)}
    assert swarm == rules, "docker-compose.monitoring.yml mounts other rule files than pharos build writes"
    volumes = SINGLE_HOST["services"]["prometheus"]["volumes"]
    single = {Path(mount["target"]).name for mount in volumes if isinstance(mount, dict) and mount["target"].startswith(rules_dir)}
    assert single == rules, "docker-compose.single-host.yml binds other rule files than pharos build writes"
