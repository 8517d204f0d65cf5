# The Pharos image: `pharos exporter` by default, `pharos demo-app` too. It carries the core
# dependencies only (what those two need); the other subcommands need extras, built in on request.
#
#   docker build -t pharos:0.1.0 .
#   docker build --build-arg EXTRAS=all -t pharos-full:0.1.0 .      # also build, dashboards, up, sinks
#   docker build --build-arg BASE_IMAGE=registry.example.com/python:3.11-slim -t pharos:0.1.0 .
#
# BASE_IMAGE must provide python3 (3.11 or later) with its venv module; both stages use it, so the
# virtual environment built in the first runs unchanged in the second. PIP_INSTALL_OPTIONS goes
# to pip: an internal index, or offline "--no-index --find-links /wheelhouse" with a base image
# that carries the wheels (tests/docker_engine.py builds the image that way, without a registry).
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ARG PIP_INSTALL_OPTIONS=""
# Extras of the package, comma-separated (stack, render, all): none for an exporter or demo sidecar.
ARG EXTRAS=""
COPY . /src
# One RUN: every layer is a full copy of the file system on some storage drivers (vfs).
# Versions come from the repository's constraints.txt, the pins CI tests with.
RUN python3 -m venv /opt/pharos \
 && constraints="" && if [ -f /src/constraints.txt ]; then constraints="--constraint /src/constraints.txt"; fi \
 && /opt/pharos/bin/pip install --no-cache-dir --disable-pip-version-check ${PIP_INSTALL_OPTIONS} $constraints "/src${EXTRAS:+[$EXTRAS]}" \
 && /opt/pharos/bin/pip uninstall --yes --quiet --disable-pip-version-check setuptools pip

FROM ${BASE_IMAGE}
COPY --from=build /opt/pharos /opt/pharos
ENV PATH=/opt/pharos/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PHAROS_LISTEN=0.0.0.0:9841
# Not root. To read the Docker socket (`--swarm`), run with the socket's group: --user 10001:GID.
USER 10001:10001
EXPOSE 9841
# /health answers 200 when every configured target answered in time (exporter/healthcheck.py).
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-m", "pharos_monitoring.exporter.healthcheck"]
ENTRYPOINT ["pharos"]
CMD ["exporter"]
