#!/usr/bin/env bash
# Everything Pharos needs on a fresh Debian 12 machine: the Debian packages `pharos up` and the
# tests run (Prometheus, Alertmanager, promtool, amtool, node_exporter, VictoriaMetrics and
# vmalert), a virtual environment in .venv, and the package itself with every extra and the test
# dependencies, at the versions of constraints.txt.
# Safe to run again; fast when nothing is missing.
#
#   scripts/setup.sh                 what the demo and `pharos up` need
#   scripts/setup.sh --with-docker   also the Docker engine, docker-compose, busybox-static and debootstrap
#                                    (~250 MB) for the Docker tests; scripts/test.sh asks for it
set -euo pipefail
cd "$(dirname "$0")/.."

with_docker=false
for arg in "$@"; do
    case "$arg" in
        --with-docker) with_docker=true ;;
        *) echo "setup: unknown argument $arg; the only one is --with-docker" >&2; exit 2 ;;
    esac
done

need_debs=()
command -v prometheus >/dev/null || need_debs+=(prometheus)
command -v prometheus-alertmanager >/dev/null || need_debs+=(prometheus-alertmanager)
command -v prometheus-node-exporter >/dev/null || need_debs+=(prometheus-node-exporter)
# The fleet's global store and its rules: victoria-metrics ships victoria-metrics and vmalert.
command -v victoria-metrics >/dev/null || need_debs+=(victoria-metrics)
if $with_docker; then
    # The Docker tests run their own engine and swarm, with images made from busybox and debootstrap.
    [ -x /usr/sbin/dockerd ] || need_debs+=(docker.io)
    dpkg -s busybox-static >/dev/null 2>&1 || need_debs+=(busybox-static)
    [ -x /usr/sbin/debootstrap ] || need_debs+=(debootstrap)
    # The single-host compose test runs docker-compose.monitoring.yml with Debian's docker-compose (1.29).
    [ -x /usr/bin/docker-compose ] || need_debs+=(docker-compose)
fi
if [ "${#need_debs[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: missing Debian packages ${need_debs[*]}; run as root or: sudo apt-get install -y ${need_debs[*]}" >&2
        exit 1
    fi
    echo "setup: installing Debian packages: ${need_debs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_debs[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    "$PYTHON" -m venv .venv
fi
pip=(.venv/bin/python -m pip -q --disable-pip-version-check)
stamp=.venv/.pharos-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
    # The distribution was called "pharos" before (a name PyPI gives to another project); both
    # would install bin/pharos, so the old one goes first.
    if compgen -G '.venv/lib/python3*/site-packages/pharos-*.dist-info' >/dev/null; then
        "${pip[@]}" uninstall -y pharos
    fi
    echo "setup: installing pharos-monitoring with all extras and the test dependencies into .venv"
    "${pip[@]}" install -c constraints.txt -e '.[all,test]'
    touch "$stamp"
fi
