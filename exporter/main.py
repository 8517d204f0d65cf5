"""`pharos exporter`: flags and environment variables on top of the YAML configuration."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys

import prometheus_client

from .config import DEFAULT_LISTEN, Config, ConfigError, Target, check_listen, check_url, load
from .profiles import PROFILES
from .swarm import ALL as SWARM_ALL, CONTAINERS as SWARM_CONTAINERS, SCOPES as SWARM_SCOPES, STATE as SWARM_STATE

log = logging.getLogger("pharos.exporter")

ENVIRONMENT = {
    "PHAROS_CONFIG": "--config",
    "PHAROS_TARGET": "--target",
    "PHAROS_PROFILE": "--profile",
    "PHAROS_LISTEN": "--listen",
    "PHAROS_PROBE_ALLOW": "--allow (comma-separated)",
    "PHAROS_LOG_LEVEL": "--log-level",
    "PHAROS_WEB_CONFIG_FILE": "--web.config.file",
    "PHAROS_WEB_MAX_REQUESTS": "--web.max-requests",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument("--config", default=env("PHAROS_CONFIG"), metavar="FILE", help="YAML configuration file (env PHAROS_CONFIG)")
    parser.add_argument("--target", default=env("PHAROS_TARGET"), metavar="URL", help="stats URL of the one target of a sidecar; replaces the file's targets (env PHAROS_TARGET)")
    parser.add_argument("--profile", default=env("PHAROS_PROFILE"), choices=sorted(PROFILES), help="profile of --target (env PHAROS_PROFILE; default pharo)")
    parser.add_argument("--listen", default=env("PHAROS_LISTEN"), metavar="HOST:PORT", help=f"address to serve on (env PHAROS_LISTEN; default {DEFAULT_LISTEN})")
    parser.add_argument("--allow", action="append", default=None, metavar="ENTRY", help="allow /probe to contact a network, host or URL prefix; repeatable (env PHAROS_PROBE_ALLOW, comma-separated)")
    parser.add_argument(
        "--web.config.file", dest="web_config_file", default=env("PHAROS_WEB_CONFIG_FILE"), metavar="FILE",
        help="TLS and basic auth for every endpoint, in exporter-toolkit's web configuration format (env PHAROS_WEB_CONFIG_FILE)",
    )
    parser.add_argument(
        "--web.max-requests", dest="web_max_requests", default=env("PHAROS_WEB_MAX_REQUESTS", "128"), metavar="N",
        help="requests answered at once, 503 beyond (env PHAROS_WEB_MAX_REQUESTS; default 128)",
    )
    parser.add_argument("--swarm", action="store_true", default=None, help="also serve the Docker Swarm state on /metrics (on a manager node; engine from swarm.docker_host, else DOCKER_HOST)")
    parser.add_argument(
        "--swarm-scope", dest="swarm_scope", default=None, choices=SWARM_SCOPES,
        help=f"what --swarm reads, implying it: {SWARM_STATE} (nodes, services, tasks: one exporter per swarm, on a manager), "
        f"{SWARM_CONTAINERS} (this engine's task containers: one per node, workers included) or {SWARM_ALL} (both; the default, for a one-node swarm) (swarm.scope)",
    )
    parser.add_argument("--check-config", action="store_true", help="validate the configuration, print a summary and exit (0 valid, 1 invalid)")
    parser.add_argument("--list-profiles", action="store_true", help="list the profiles and exit")
    parser.add_argument("--log-level", default=env("PHAROS_LOG_LEVEL", "info"), choices=LOG_LEVELS, help="env PHAROS_LOG_LEVEL; default info")
    _errors_on_one_line(parser)


LOG_LEVELS = ("debug", "info", "warning", "error")


def _errors_on_one_line(parser: argparse.ArgumentParser) -> None:
    """Usage errors as one line and exit status 1, like every other error of the command.

    Unknown flags after a subcommand are left to the top-level parser by argparse; the wrapped
    `parse_known_args` reports them here instead, in the exporter's words."""

    def error(message: str):
        parser.exit(1, f"{parser.prog}: {message}; see {parser.prog} --help\n")

    parse_known_args = parser.parse_known_args

    def strict_parse_known_args(args=None, namespace=None):
        namespace, extras = parse_known_args(args, namespace)
        if extras:
            error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras

    parser.error = error
    parser.parse_known_args = strict_parse_known_args


def build_config(args: argparse.Namespace) -> Config:
    # Defaults taken from the environment escape argparse's `choices` check.
    if args.profile and args.profile not in PROFILES:
        raise ConfigError(f"--profile (or PHAROS_PROFILE): unknown profile {args.profile!r}; known profiles: {', '.join(sorted(PROFILES))}")
    if args.log_level not in LOG_LEVELS:
        raise ConfigError(f"--log-level (or PHAROS_LOG_LEVEL): {args.log_level!r} is not one of {', '.join(LOG_LEVELS)}")
    config = load(args.config) if args.config else Config(source="flags")
    changes = {}
    if args.listen:
        problem = check_listen(args.listen)
        if problem:
            raise ConfigError(f"--listen: {problem}")
        changes["listen"] = args.listen
    if args.target:
        problem = check_url(args.target)
        if problem:
            raise ConfigError(f"--target: {problem}")
        changes["targets"] = (Target(name="app", url=args.target, profile=args.profile or "pharo"),)
    elif args.profile and config.targets:
        changes["targets"] = tuple(dataclasses.replace(t, profile=args.profile) for t in config.targets)
    allow = args.allow
    if allow is None and os.environ.get("PHAROS_PROBE_ALLOW"):
        allow = [entry.strip() for entry in os.environ["PHAROS_PROBE_ALLOW"].split(",") if entry.strip()]
    if allow:
        from .serving.allowlist import AllowList

        for entry in allow:
            problem = AllowList.check_entry(entry)
            if problem:
                raise ConfigError(f"--allow: {problem}")
        changes["probe"] = dataclasses.replace(config.probe, allow=config.probe.allow + tuple(allow))
    if args.swarm or args.swarm_scope:
        changes["swarm"] = dataclasses.replace(config.swarm, enabled=True, **({"scope": args.swarm_scope} if args.swarm_scope else {}))
    return dataclasses.replace(config, **changes) if changes else config


def summary(config: Config) -> str:
    lines = [f"configuration {config.source}: valid", f"  listen: {config.listen}"]
    for target in config.targets:
        lines.append(f"  target {target.name}: {target.url} (profile {target.profile})")
    if not config.targets:
        lines.append("  no sidecar targets: /metrics serves the exporter's own metrics only")
    allow = ", ".join(config.probe.allow) or "nothing (every /probe is refused)"
    lines.append(f"  /probe allows: {allow}")
    limits = config.limits
    lines.append(
        f"  limits: timeout {limits.timeout_seconds}s, body {limits.max_response_bytes} bytes, "
        f"{limits.max_routes_per_target} routes per target, {limits.max_concurrent_scrapes} concurrent scrapes"
    )
    for module in config.modules.values():
        lines.extend(module.describe())
    if config.swarm.enabled:
        engine = config.swarm.docker_host or "DOCKER_HOST or unix:///var/run/docker.sock"
        lines.append({
            SWARM_ALL: f"  swarm: nodes, services and tasks from {engine}, and that engine's task containers (scope all)",
            SWARM_STATE: f"  swarm: nodes, services and tasks from {engine} (scope state)",
            SWARM_CONTAINERS: f"  swarm: the task containers of {engine} (scope containers)",
        }[config.swarm.scope])
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    level = args.log_level.upper() if args.log_level in LOG_LEVELS else "INFO"
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.list_profiles:
        for profile in PROFILES.values():
            print(f"{profile.name:10} {profile.summary} (default path {profile.default_path})")
        return 0
    try:
        config = build_config(args)
        web = _web_access(args.web_config_file)
    except ConfigError as error:
        print(f"pharos exporter: {error}", file=sys.stderr)
        return 1
    try:
        max_requests = int(args.web_max_requests)
        if max_requests < 1:
            raise ValueError
    except ValueError:
        print(f"pharos exporter: --web.max-requests (or PHAROS_WEB_MAX_REQUESTS): {args.web_max_requests!r} is not a whole number of 1 or more", file=sys.stderr)
        return 1
    if args.check_config:
        print(summary(config))
        if web is not None:
            print("  " + web.config.summary())
        return 0
    from .collect import Exporter
    from .serving.connections import Limits
    from .serving.server import make_server

    prometheus_client.disable_created_metrics()  # `*_created`: one gauge per counter child, queried by nobody

    _raise_open_files_limit()
    exporter = Exporter(config)
    try:
        server = make_server(exporter, config.listen, web, Limits(max_requests=max_requests))
    except OSError as error:
        exporter.close()
        print(f"pharos exporter: cannot listen on {config.listen}: {error.strerror or error}; choose another address with --listen", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: _shutdown(server))
    host, port = server.server_address[:2]
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"  # the real port when --listen asked for 0
    scheme = "https" if web is not None and web.tls else "http"
    log.info("serving on %s://%s (targets: %s)", scheme, address, ", ".join(t.url for t in config.targets) or "none")
    if web is not None:
        log.info("%s", web.config.summary())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        exporter.close()
    return 0


def _raise_open_files_limit() -> None:
    """Raise the soft limit of open files to the hard one, as Go programs (Prometheus' exporters
    among them) do at start: a multi-target exporter keeps connections to hundreds of targets,
    more than the common soft limit of 1,024 allows."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as error:
            log.warning("cannot raise the open-files limit from %s to %s: %s", soft, hard, error)


def _web_access(path: str | None):
    """The --web.config.file in force, or None; ConfigError naming the flag when it is invalid."""
    if not path:
        return None
    from .serving.web_access import WebAccess

    try:
        return WebAccess(path)
    except ConfigError as error:
        raise ConfigError(f"--web.config.file (or PHAROS_WEB_CONFIG_FILE): {error}") from None


def _shutdown(server) -> None:
    import threading

    threading.Thread(target=server.shutdown, daemon=True).start()
