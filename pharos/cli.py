"""`pharos`: one console command, one subcommand per job."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pharos", description="Monitoring for fleets of application instances.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from exporter import main as exporter_main

    exporter = commands.add_parser("exporter", help="serve /metrics, /probe and /health for application stats endpoints")
    exporter_main.add_arguments(exporter)
    exporter.set_defaults(run=exporter_main.run)

    from demo import main as demo_main

    demo_app = commands.add_parser("demo-app", help="a real HTTP service reporting its own GC and request stats (pharo profile)")
    demo_main.add_app_arguments(demo_app)
    demo_app.set_defaults(run=demo_main.run_app)

    demo = commands.add_parser("demo", help="run the demo service with an exporter beside it and print where to look")
    demo_main.add_demo_arguments(demo)
    demo.set_defaults(run=demo_main.run_demo)

    from pharos import build as build_main

    build = commands.add_parser("build", help="write Prometheus (scrape configs, rules) and Alertmanager configuration from a stack file")
    build_main.add_arguments(build)
    build.set_defaults(run=build_main.run)

    from pharos import fault as fault_main, sinks as sinks_main, up as up_main

    up = commands.add_parser("up", help="run the whole stack here: demo services, exporters, Prometheus, Alertmanager, mail and Slack sinks")
    up_main.add_arguments(up)
    up.set_defaults(run=up_main.run)

    fault = commands.add_parser("fault", help="change the fault knobs of a running demo service (by name in pharos up, or URL)")
    fault_main.add_arguments(fault)
    fault.set_defaults(run=fault_main.run)

    sinks = commands.add_parser("sinks", help="a local SMTP server and Slack webhook receiver that keep and print what they receive")
    sinks_main.add_arguments(sinks)
    sinks.set_defaults(run=sinks_main.run)

    from dashboards import cli as dashboards_cli

    dashboards = commands.add_parser("dashboards", help="build, push (to Grafana) and render (to PNG) the Grafana dashboards")
    dashboards_cli.add_arguments(dashboards)

    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
