"""`pharos`: one console command, one subcommand per job."""

from __future__ import annotations

import argparse
import importlib
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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="pharos", description="Monitoring for fleets of application instances.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Only the chosen command's module is imported: a sidecar exporter should not carry the
    # dashboards' or the sinks' libraries in its memory.
    chosen = next((word for word in argv if not word.startswith("-")), None)
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


if __name__ == "__main__":
    sys.exit(main())
