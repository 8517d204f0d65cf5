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

    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
