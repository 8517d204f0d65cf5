"""`pharos`: one console command, one subcommand per job."""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import re
import sys

# (command, module, function adding its arguments, function running it or None when the module
# sets its own subcommands' defaults, help)
COMMANDS = (
    ("exporter", "pharos_monitoring.exporter.main", "add_arguments", "run", "serve /metrics, /probe and /health for application stats endpoints"),
    ("demo-app", "pharos_monitoring.demo.main", "add_app_arguments", "run_app", "a real HTTP service reporting its own GC and request stats (pharo profile)"),
    ("demo", "pharos_monitoring.demo.main", "add_demo_arguments", "run_demo", "run the demo service with an exporter beside it and print where to look"),
    ("build", "pharos_monitoring.config.build", "add_arguments", "run", "write Prometheus, Alertmanager and Grafana configuration from a stack file"),
    ("up", "pharos_monitoring.local.up", "add_arguments", "run", "run the whole stack here: demo services, exporters, Prometheus, Alertmanager, mail and Slack sinks"),
    ("fault", "pharos_monitoring.local.fault", "add_arguments", "run", "change the fault knobs of a running demo service (by name in pharos up, or URL), or of the sinks"),
    ("sinks", "pharos_monitoring.local.sinks", "add_arguments", "run", "a local SMTP server and Slack webhook receiver that keep and print what they receive"),
    ("dashboards", "pharos_monitoring.dashboards.cli", "add_arguments", None, "build, push (to Grafana) and render (to PNG) the Grafana dashboards"),
)

DISTRIBUTION = "pharos-monitoring"

# The extra (pyproject.toml's optional dependencies) a command needs beyond the core; a pair is a
# subcommand of a command with subcommands. Checked before anything is imported or started.
EXTRAS = {
    "build": "stack",
    "up": "stack",
    "sinks": "stack",
    "dashboards": "stack",
    ("dashboards", "build"): "stack",
    ("dashboards", "push"): "stack",
    ("dashboards", "render"): "render",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="pharos", description="Monitoring for fleets of application instances.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Only the chosen command's module is imported: a sidecar exporter should not carry the
    # dashboards' or the sinks' libraries in its memory.
    words = [word for word in argv if not word.startswith("-")]
    chosen = words[0] if words else None
    problem = _missing_extra(words)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    for name, module_name, add_arguments, run, help_text in COMMANDS:
        command = commands.add_parser(name, help=help_text)
        if name != chosen:
            continue
        module = importlib.import_module(module_name)
        getattr(module, add_arguments)(command)
        if run is not None:
            command.set_defaults(run=getattr(module, run))
    args = parser.parse_args(argv)
    return args.run(args)


def _missing_extra(words: list[str]) -> str | None:
    """One line naming the extra to install when the chosen command's extra is not installed."""
    key = tuple(words[:2]) if tuple(words[:2]) in EXTRAS else (words[0] if words else None)
    extra = EXTRAS.get(key)
    if extra is None:
        return None
    try:
        requires = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        return None  # run from a source tree: nothing to compare with
    wanted = [re.match(r"[A-Za-z0-9._-]+", text).group() for text in requires if re.search(rf"""extra\s*==\s*["']{extra}["']""", text)]
    missing = []
    for name in wanted:
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    if not missing:
        return None
    label = " ".join(key) if isinstance(key, tuple) else key
    return f"pharos {label}: needs the '{extra}' extra ({', '.join(missing)} missing): pip install '{DISTRIBUTION}[{extra}]'"


if __name__ == "__main__":
    sys.exit(main())
