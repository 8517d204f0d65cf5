"""`prometheus.yml` for one environment's Prometheus, from the stack description.

Every application job gets `service` and `environment` labels through relabelling (so that targets
from discovery files get them too, and cannot override them); `external_labels` carry the
environment to Alertmanager. Probe-mode services follow the blackbox_exporter pattern: the listed
address becomes `?target=` and `instance`, and Prometheus actually connects to the exporter. Jobs
that scrape a Pharos exporter get the stack's `exporter_tls`/`exporter_auth` as `scheme`,
`tls_config` and `basic_auth` (pharos/config/exporter_access.py). The monitoring's own jobs get a
`component` label (what PharosMonitoringComponentDown watches), and every job the stack's
`scrape_limits` (what the Prometheus*LimitHit alerts report). With a `fleet:` section, everything
is also written to the global store (`remote_write`, pharos/config/fleet.py).
"""

from __future__ import annotations

from pharos_monitoring.exporter.catalogue import Label as L

from . import fleet as global_fleet, ha as high_availability, node_agent, node_scrape, swarm_discovery
from .stack_config import ALERTMANAGER_JOB, EXPORTER_JOB, PROBE, PROMETHEUS_JOB, Environment, Service, StackConfig

RULES_DIR = "rules"
ADDRESS = "__address__"
PROBE_TARGET_PARAM = "__param_target"


def _set_label(label: str, value: str) -> dict:
    return {"target_label": label, "replacement": value}


def _own_job(name: str, targets: tuple[str, ...], environment: str) -> dict:
    """A job of the monitoring itself: `component` puts it in PharosMonitoringComponentDown's scope."""
    return {
        "job_name": name,
        "static_configs": [{"targets": list(targets)}],
        "relabel_configs": [_set_label(L.ENVIRONMENT, environment), _set_label(L.COMPONENT, name)],
    }


def _exporter_job(job: dict, environment: Environment) -> dict:
    """`job` reaching a Pharos exporter: with the environment's scheme, tls_config and basic_auth."""
    name, rest = job["job_name"], {key: value for key, value in job.items() if key != "job_name"}
    return {"job_name": name, **environment.exporter_access.scrape_settings(), **rest}


def _service_job(service: Service, environment: Environment, refresh_interval: str) -> dict:
    job: dict = {"job_name": service.name}
    relabel = []
    if service.mode == PROBE:
        job["metrics_path"] = "/probe"
        job["params"] = {"profile": [service.profile]}
        relabel = [
            {"source_labels": [ADDRESS], "target_label": PROBE_TARGET_PARAM},
            {"source_labels": [PROBE_TARGET_PARAM], "target_label": L.INSTANCE},
            _set_label(ADDRESS, environment.exporter),
        ]
    if service.targets:
        job["static_configs"] = [{"targets": list(service.targets)}]
    if service.files:
        job["file_sd_configs"] = [{"files": list(service.files), "refresh_interval": refresh_interval}]
    job["relabel_configs"] = relabel + [_set_label(L.SERVICE, service.name), _set_label(L.ENVIRONMENT, environment.name)]
    if service.team:
        job["relabel_configs"].append(_set_label(L.TEAM, service.team))
    return _exporter_job(job, environment)


def _alerting(environment: Environment) -> dict:
    """Every Alertmanager gets every alert: a cluster deduplicates them, and any one member suffices."""
    alerting: dict = {}
    relabel = high_availability.alert_relabel_configs(environment.ha)
    if relabel:
        alerting["alert_relabel_configs"] = relabel
    # A cluster's DNS name (tasks.alertmanager) becomes dns_sd_configs: every member, wherever its task runs.
    alerting["alertmanagers"] = [high_availability.alertmanager_targets(environment.ha, environment.alertmanagers)]
    return alerting


def _with_targets(job: dict, targets: dict) -> dict:
    """`job` finding its targets as `targets` says (static or DNS) instead of its static list."""
    return {"job_name": job["job_name"], **targets, **{key: value for key, value in job.items() if key not in ("job_name", "static_configs")}}


def render(stack: StackConfig, environment_name: str) -> dict:
    environment = stack.environment(environment_name)
    intervals = stack.intervals
    jobs = [
        # A pair scrapes both replicas: each one reports the other's death (PharosMonitoringComponentDown);
        # a DNS name (tasks.<service>) stands for every replica or member.
        _with_targets(_own_job(PROMETHEUS_JOB, (), environment.name), high_availability.prometheus_targets(environment.ha, environment.prometheus)),
        _with_targets(_own_job(ALERTMANAGER_JOB, (), environment.name), high_availability.alertmanager_targets(environment.ha, environment.alertmanagers)),
    ]
    # The fleet's store and vmalert: every environment reports them down, none depends on the others for it.
    jobs += [_own_job(job, (address,), environment.name) for job, address in global_fleet.scrape_targets(stack.fleet)]
    if environment.exporter:
        jobs.append(_exporter_job(_own_job(EXPORTER_JOB, (environment.exporter,), environment.name), environment))
    jobs += [_service_job(service, environment, intervals.file_sd_refresh_interval) for service in environment.services]
    if environment.swarm is not None:
        jobs.append(_exporter_job(swarm_discovery.scrape_job(environment.name, environment.exporter, environment.swarm), environment))
    node_job = node_scrape.scrape_job(environment.name, environment.node_exporters, environment.swarm)
    if node_job is not None:
        jobs.append(node_job)
    agent_job = node_agent.scrape_job(environment.name, environment.swarm)
    if agent_job is not None:  # a Pharos exporter too: the same scheme, TLS and basic auth
        jobs.append(_exporter_job(agent_job, environment))
    # Limits come right after the name, so that a reader sees them before the job's long relabelling.
    limits = stack.scrape_limits.settings()
    jobs = [{"job_name": job["job_name"], **limits, **{key: value for key, value in job.items() if key != "job_name"}} for job in jobs]
    rendered = {
        "global": {
            "scrape_interval": intervals.scrape_interval,
            "scrape_timeout": intervals.scrape_timeout,
            "evaluation_interval": intervals.evaluation_interval,
            "external_labels": {L.ENVIRONMENT: environment.name, **high_availability.external_labels(environment.ha)},
        },
        "alerting": _alerting(environment),
        "rule_files": [f"{RULES_DIR}/*.yml"],
        "scrape_configs": jobs,
    }
    remote_write = global_fleet.remote_write(stack.fleet)
    if remote_write:
        rendered["remote_write"] = remote_write
    return rendered
