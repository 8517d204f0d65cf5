"""The Pharos image on a real engine: what it carries and its HEALTHCHECK.

The image is built from the repository's Dockerfile as docs/docker.md describes it (no extras,
versions from constraints.txt) on the test's debootstrap base (tests/docker_engine.py). An exporter
sidecar needs the core dependencies only: the dashboards' renderer (matplotlib, numpy, pillow) and
the local sinks (aiosmtpd) made the image 183 MB larger than its base; the budget is a third of that.
The health check runs as the image defines it, only more often, against an exporter whose target
is a demo-app container on a user-defined bridge network: healthy while the target answers,
unhealthy once it is gone.
"""

from __future__ import annotations

import time
import uuid

import docker
import pytest

from docker_engine import PYTHON_BASE, Engine, EngineError, engine, free_subnet, image_size, pharos_image  # noqa: F401 - engine: the session's fixture

pytestmark = pytest.mark.slow

OVERHEAD_BEFORE_MB = 183  # the image over its base with every dependency (matplotlib, numpy, aiosmtpd)
OVERHEAD_BUDGET_MB = OVERHEAD_BEFORE_MB / 3
EXTRAS_ONLY = ("matplotlib", "numpy", "PIL", "aiosmtpd", "grafanalib")
HEALTH_INTERVAL_NS = 1_000_000_000  # the image's check, every second instead of every 30 s
SECOND = 1.0


@pytest.fixture(scope="module")
def image(engine: Engine) -> str:
    return pharos_image(engine)


def test_the_image_carries_the_core_dependencies_only(engine: Engine, image: str):
    overhead_mb = (image_size(engine, image) - image_size(engine, PYTHON_BASE)) / 1e6
    print(f"\nthe pharos image adds {overhead_mb:.1f} MB to its base (before the split: {OVERHEAD_BEFORE_MB} MB)")
    assert overhead_mb < OVERHEAD_BUDGET_MB, f"the image adds {overhead_mb:.0f} MB to its base, over the budget of {OVERHEAD_BUDGET_MB:.0f} MB"
    probe = "import importlib.util as u; print(' '.join(m for m in %r if u.find_spec(m)))" % (EXTRAS_ONLY,)
    present = engine.text("run", "--rm", "--network", "none", "--entrypoint", "python", image, "-c", probe)
    assert present == "", f"the exporter image carries extras: {present}"
    # Both commands the compose file runs with this image start without the extras.
    for command in ("exporter", "demo-app"):
        engine.docker("run", "--rm", "--network", "none", image, command, "--help")


def health(container) -> str:
    container.reload()
    return container.attrs["State"].get("Health", {}).get("Status", "")


def test_the_healthcheck_is_green_with_a_live_target_and_red_without(engine: Engine, image: str):
    client = engine.client()
    suffix = uuid.uuid4().hex[:8]
    subnet = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=free_subnet())])
    network = client.networks.create(f"pharos-health-{suffix}", driver="bridge", ipam=subnet)
    started = []
    try:
        demo = client.containers.run(
            image, ["demo-app", "--listen", "0.0.0.0:8080", "--service", "demo"],
            name=f"demo-{suffix}", network=network.name, detach=True,
        )
        started.append(demo)
        exporter = client.containers.run(
            image, ["exporter", "--target", f"http://demo-{suffix}:8080/stats"],
            name=f"exporter-{suffix}", network=network.name, detach=True,
            healthcheck={"interval": HEALTH_INTERVAL_NS},  # the test, timeout and retries stay the image's
        )
        started.append(exporter)
        image_check = client.images.get(image).attrs["Config"]["Healthcheck"]
        assert exporter.attrs["Config"]["Healthcheck"]["Test"] == image_check["Test"]
        assert "pharos_monitoring.exporter.healthcheck" in image_check["Test"][-1]

        began = time.monotonic()
        try:
            engine.wait_until(lambda: health(exporter) == "healthy", "the exporter's health status 'healthy'", limit=90, step=SECOND)
        except EngineError as error:
            raise AssertionError(f"{error}: {health_log(exporter)}") from None
        healthy_after = time.monotonic() - began

        demo.stop(timeout=5)
        try:
            engine.wait_until(lambda: health(exporter) == "unhealthy", "the exporter's health status 'unhealthy'", limit=60, step=SECOND)
        except EngineError as error:
            raise AssertionError(f"{error}: {health_log(exporter)}") from None
        assert "unhealthy" in health_log(exporter)
        print(f"\nhealthy {healthy_after:.0f} s after the start, unhealthy {time.monotonic() - began - healthy_after:.0f} s after the target stopped")
    finally:
        for container in started:
            container.remove(force=True)
        network.remove()
        client.close()


def health_log(container) -> str:
    container.reload()
    entries = container.attrs["State"].get("Health", {}).get("Log", [])
    return " | ".join(entry["Output"].strip() for entry in entries[-3:]) or "(no health check ran)"
