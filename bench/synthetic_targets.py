"""Synthetic Pharos sidecars: many loopback ports, each answering `/metrics` like one sidecar
exporter in front of one Pharo instance, cheaply enough for thousands of instances on 2 cores.

    python bench/synthetic_targets.py MANIFEST

The manifest (JSON) names a template exposition, what the real sidecar exporter (`pharos
exporter` in sidecar mode, reading a bench/payloads.py document and the process beside it)
answered once, and the instances to serve: `{"template": FILE, "template_target": NAME,
"instances": [{"service": ..., "seed": ..., "faulty": ...}, ...]}`. Every instance listens on a
port of its own on 127.0.0.1 (the kernel picks it; a stack file's sidecar target is HOST:PORT and
its path is always /metrics); the process prints `{"ports": [...]}` (in the manifest's order) once
all listen, and exits when its standard input closes or after --max-seconds.

Each scrape answers the template with the sidecar's `target` label set to the instance's
service and its counters advanced: every counter, and every histogram series as a whole (its
buckets, `_count` and `_sum` by one factor, so buckets stay cumulative and `_count` equals the
`+Inf` bucket), grows by a random step per scrape. 5xx rows grow 50 times slower than the others
(about 0.5 % errors), except in a `faulty` instance (the template's 20 %: its alerts fire).
Gauges stay as the exporter rendered them. Values are whole numbers where the template's are.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import resource
import socket
import sys
import threading
from dataclasses import dataclass

from pharos_monitoring.exporter.catalogue import Label

HOST = "127.0.0.1"
_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?P<labels>\{.*\})?\s(?P<value>\S+)$")
_LE = re.compile(r',?le="[^"]*"')
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")
COUNTER_STEP = 0.005  # a counter grows by about this fraction of its rendered value per scrape
SERVER_ERROR = f'{Label.STATUS}="5'  # a 5xx row of the request histograms
ERROR_SLOWDOWN = 50  # 5xx rows of a healthy instance grow this many times slower
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class Template:
    """An exposition cut into static text and the values that grow between scrapes."""

    pieces: tuple[str, ...]  # text around the growing values: len(bases) + 1 pieces
    bases: tuple[float, ...]
    groups: tuple[int, ...]  # per growing value: its group (a counter, or a whole histogram series)
    whole: tuple[bool, ...]  # per growing value: written as a whole number
    errors: tuple[bool, ...]  # per group: a 5xx row

    @property
    def group_count(self) -> int:
        return len(self.errors)


def parse(exposition: str) -> Template:
    kinds: dict[str, str] = {}
    pieces, bases, groups, whole, errors = [], [], [], [], []
    group_of: dict[str, int] = {}
    text: list[str] = []
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            kinds[name] = kind
        match = _SAMPLE.match(line) if not line.startswith("#") else None
        kind = _kind(match.group("name"), kinds) if match else ""
        if kind not in ("counter", "histogram"):
            text.append(line + "\n")
            continue
        name, labels, value = match.group("name"), match.group("labels") or "", match.group("value")
        key = f"{name.removesuffix('_bucket').removesuffix('_count').removesuffix('_sum')}{_LE.sub('', labels)}" if kind == "histogram" else name + labels
        if key not in group_of:
            group_of[key] = len(errors)
            errors.append(SERVER_ERROR in labels)
        text.append(f"{name}{labels} ")
        pieces.append("".join(text))
        text = ["\n"]
        bases.append(float(value))
        groups.append(group_of[key])
        whole.append(float(value).is_integer())
    pieces.append("".join(text))
    return Template(tuple(pieces), tuple(bases), tuple(groups), tuple(whole), tuple(errors))


def _kind(sample_name: str, kinds: dict[str, str]) -> str:
    """The TYPE of the family a sample belongs to (a counter's TYPE line names it with `_total`)."""
    if sample_name in kinds:
        return kinds[sample_name]
    for suffix in HISTOGRAM_SUFFIXES:
        family = sample_name.removesuffix(suffix)
        if family != sample_name and kinds.get(family) == "histogram":
            return "histogram"
    return ""


def series_count(exposition: str) -> int:
    return sum(1 for line in exposition.splitlines() if line and not line.startswith("#"))


class Instance:
    """One Pharo instance's sidecar: the template for its service, its own counters."""

    def __init__(self, template: Template, pieces: tuple[str, ...], seed: int, faulty: bool):
        self.template, self.pieces = template, pieces
        self.random = random.Random(seed)
        # Instances start at different points of their lives, and grow at rates of their own.
        self.growth = [self.random.random() for _ in range(template.group_count)]
        self.steps = [
            COUNTER_STEP * (0.5 + self.random.random()) / (ERROR_SLOWDOWN if error and not faulty else 1) for error in template.errors
        ]

    def scrape(self) -> bytes:
        draw, growth = self.random.random, self.growth
        for group, step in enumerate(self.steps):
            growth[group] += step * (0.5 + draw())
        values = []
        for base, group, whole in zip(self.template.bases, self.template.groups, self.template.whole):
            value = base * (1.0 + growth[group])
            values.append(str(int(value)) if whole else f"{value:.10g}")
        out = [""] * (2 * len(values) + 1)
        out[0::2] = self.pieces
        out[1::2] = values
        return "".join(out).encode()


class _Connection(asyncio.Protocol):
    """HTTP/1.1 with keep-alive, GET /metrics only: what Prometheus sends to a scrape target."""

    def __init__(self, instance: Instance):
        self.instance = instance
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            request = head.split(b"\r\n", 1)[0].split()
            path = request[1].split(b"?")[0] if len(request) > 1 else b""
            if path == b"/metrics":
                status, content_type, body = b"200 OK", CONTENT_TYPE, self.instance.scrape()
            else:
                status, content_type, body = b"404 Not Found", b"text/plain", b"only /metrics here\n"
            self.transport.write(
                b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s" % (status, content_type, len(body), body)
            )
        if len(self.buffer) > 65536:  # not a scraper
            self.transport.close()


def specialise(template: Template, template_target: str, service: str) -> tuple[str, ...]:
    old, new = f'target="{template_target}"', f'target="{service}"'
    return tuple(piece.replace(old, new) for piece in template.pieces)


async def serve(manifest: dict, max_seconds: float) -> None:
    with open(manifest["template"], encoding="utf-8") as handle:
        template = parse(handle.read())
    by_service: dict[str, tuple[str, ...]] = {}
    loop = asyncio.get_running_loop()
    servers, ports = [], []
    for spec in manifest["instances"]:
        service = spec["service"]
        if service not in by_service:
            by_service[service] = specialise(template, manifest["template_target"], service)
        instance = Instance(template, by_service[service], spec["seed"], spec["faulty"])
        sock = socket.socket()
        sock.bind((HOST, 0))
        sock.listen(64)
        servers.append(await loop.create_server(lambda instance=instance: _Connection(instance), sock=sock))
        ports.append(sock.getsockname()[1])
    print(json.dumps({"ports": ports}), flush=True)
    stdin_closed = asyncio.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(stdin_closed.set)), daemon=True).start()
    try:
        await asyncio.wait_for(stdin_closed.wait(), max_seconds)
    except asyncio.TimeoutError:
        pass
    for server in servers:
        server.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", help="JSON: template, template_target, instances")
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="exit after so long in any case")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # a listening socket and a connection per instance
    with open(args.manifest, encoding="utf-8") as handle:
        manifest = json.load(handle)
    asyncio.run(serve(manifest, args.max_seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
