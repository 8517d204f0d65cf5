#!/usr/bin/env bash
# Everything Pharos needs on a fresh Debian 12 machine: the Debian packages the tests and
# `pharos up` run (Prometheus, Alertmanager, promtool, amtool), a virtual environment in .venv,
# and the package itself with its test dependencies. Safe to run again; fast when nothing is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_debs=()
command -v prometheus >/dev/null || need_debs+=(prometheus)
command -v prometheus-alertmanager >/dev/null || need_debs+=(prometheus-alertmanager)
# The Docker tests run their own engine and swarm, with images made from busybox and debootstrap.
[ -x /usr/sbin/dockerd ] || need_debs+=(docker.io)
dpkg -s busybox-static >/dev/null 2>&1 || need_debs+=(busybox-static)
[ -x /usr/sbin/debootstrap ] || need_debs+=(debootstrap)
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
stamp=.venv/.pharos-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "setup: installing pharos and its test dependencies into .venv"
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
    touch "$stamp"
fi
