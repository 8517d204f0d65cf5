"""A Docker Engine of the tests' own, and the images they need, made without any registry.

`running_engine()` starts dockerd as ../shared/ENVIRONMENT.md describes it (vfs storage, no
iptables, no bridge) with its own data root, exec root, pid file and socket in a fresh directory,
runs `docker swarm init` on 127.0.0.1 with free ports, and on exit always leaves the swarm, stops
that dockerd (SIGTERM, then SIGKILL of its process group), unmounts what it left behind and
removes the directory. When dockerd cannot start at all (not installed, not root, no kernel
support), it skips the test with the reason and dockerd's last words. The `engine` fixture
(session scope; a test module imports it) shares one such engine between every Docker test module
of a run: started by the first that asks, stopped when the session ends.

Images (nothing is pulled):
- `busybox_image`: /bin/busybox of Debian's busybox-static and its applets;
- `python_base_image`: a Debian bookworm rootfs made by debootstrap (python3, venv) plus a
  wheelhouse of the project's core dependencies (pinned by constraints.txt) in /wheelhouse. Both are cached outside the repository
  (PHAROS_TEST_CACHE, else $XDG_CACHE_HOME/pharos-test, else ~/.cache/pharos-test), keyed by a hash
  of their recipe: the first run takes a minute or two, later ones seconds;
- `pharos_image`: the repository's own Dockerfile built on that base, offline (no extras);
- `binary_image`: a Debian binary (/usr/bin/prometheus, ...) with the libraries ldd names, on busybox
  (Prometheus, Alertmanager, node_exporter, VictoriaMetrics and vmalert).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import ipaddress
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Debian's client, the one a fresh machine has (another `docker` earlier on PATH may differ).
DOCKER = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else (shutil.which("docker") or "docker")
DOCKERD = shutil.which("dockerd") or "/usr/sbin/dockerd"
BUSYBOX = shutil.which("busybox") or "/bin/busybox"
START_TIMEOUT = 60.0
STOP_GRACE = 20.0
SUITE = "bookworm"
# What the python base image holds; changing it changes the cache key.
ROOTFS_RECIPE = {"suite": SUITE, "variant": "minbase", "include": ["python3", "python3-venv", "ca-certificates"], "revision": 1}
# hostname: the compose file's Alertmanager advertises `hostname -i` (the official image's busybox has it).
BUSYBOX_APPLETS = ("sh", "sleep", "wget", "cat", "ls", "true", "false", "env", "ps", "httpd", "hostname")


class EngineError(Exception):
    pass


def cache_dir() -> Path:
    base = os.environ.get("PHAROS_TEST_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "pharos-test")
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def free_udp_port() -> int:
    """A free UDP port in 1024-49151, the range swarm accepts for its data path (VXLAN)."""
    for _ in range(100):
        port = random.randint(20000, 49151)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise EngineError("no free UDP port between 20000 and 49151 for the swarm's data path")


def _host_routes() -> list[ipaddress.IPv4Network]:
    routes = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/route").read_text().splitlines()[1:]:
            fields = line.split()
            destination, mask = (socket.inet_ntoa(int(value, 16).to_bytes(4, "little")) for value in (fields[1], fields[7]))
            routes.append(ipaddress.IPv4Network(f"{destination}/{mask}", strict=False))
    return routes


def secrets_dir(tmp_path: Path) -> Path:
    """Stand-in secret files for the monitoring stack's compose file (no real Slack or SMTP)."""
    directory = tmp_path / "secrets"
    directory.mkdir()
    (directory / "slack_webhook_url").write_text("http://127.0.0.1:9/slack-webhook-stand-in\n")
    (directory / "smtp_password").write_text("not-a-real-password\n")
    (directory / "grafana_admin_password").write_text("not-a-real-password\n")
    return directory


def free_subnet() -> str:
    """A /16 for a user-defined bridge network that no route of the host overlaps (a bridge adds a
    host route, and dockerd refuses a subnet that overlaps one: other engines may run beside ours)."""
    taken = [route for route in _host_routes() if route.prefixlen > 0]
    candidates = [ipaddress.IPv4Network(f"10.{second}.0.0/16") for second in range(200, 255)]
    random.shuffle(candidates)
    for candidate in candidates:
        if not any(candidate.overlaps(route) for route in taken):
            return str(candidate)
    raise EngineError("no free /16 in 10.200.0.0-10.254.255.255 for a bridge network")


@dataclass
class Engine:
    root: Path
    process: subprocess.Popen | None = None
    # tag -> recipe of the images made in this engine: a shared engine makes each one once.
    made: dict = field(default_factory=dict)

    @property
    def socket_path(self) -> Path:
        return self.root / "docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("DOCKER_")}
        env["DOCKER_HOST"] = self.host
        # BuildKit: the classic builder commits a container (a full copy on vfs) for every ENV or
        # USER line. With no `# syntax=` line, BuildKit needs no image for its Dockerfile frontend.
        env["DOCKER_BUILDKIT"] = "1"
        return env

    def docker(self, *args: str, input: bytes | None = None, timeout: float = 120, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run([DOCKER, *args], input=input, capture_output=True, timeout=timeout, env={**self.env, **(env or {})})
        if check and result.returncode != 0:
            raise EngineError(f"docker {' '.join(args)} failed (exit {result.returncode}): {result.stderr.decode(errors='replace').strip()}")
        return result

    def text(self, *args: str, **kwargs) -> str:
        return self.docker(*args, **kwargs).stdout.decode().strip()

    def json_lines(self, *args: str) -> list[dict]:
        """Output of a `--format '{{json .}}'` listing, one document per line."""
        return [json.loads(line) for line in self.text(*args, "--format", "{{json .}}").splitlines() if line.strip()]

    def image_id(self, tag: str) -> str:
        """The image's id: swarm tasks given an id never try a registry (with a tag they try a pull first)."""
        return self.text("image", "inspect", "--format", "{{.Id}}", tag)

    def api(self):
        import docker

        return docker.APIClient(base_url=self.host, version="auto", timeout=60)

    def client(self):
        """The `docker` package's high-level client on this engine."""
        import docker

        return docker.DockerClient(base_url=self.host, version="auto", timeout=60)

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "Engine":
        log = open(self.root / "dockerd.log", "wb")
        self.process = subprocess.Popen(
            [
                DOCKERD, "--iptables=false", "--ip6tables=false", "--bridge=none", "--storage-driver=vfs",
                "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "exec"),
                "--pidfile", str(self.root / "docker.pid"), "--host", self.host,
            ],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,  # its own group: containerd dies with it
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EngineError(f"dockerd exited with status {self.process.returncode}: {self.log_tail()}")
            if self.socket_path.exists() and self.docker("version", check=False, timeout=10).returncode == 0:
                break
            time.sleep(0.2)
        else:
            raise EngineError(f"dockerd did not answer within {START_TIMEOUT:.0f} s: {self.log_tail()}")
        self.docker(
            "swarm", "init", "--advertise-addr", "127.0.0.1",
            "--listen-addr", f"127.0.0.1:{free_tcp_port()}", "--data-path-port", str(free_udp_port()),
        )
        return self

    def registry_attempts(self) -> list[str]:
        """Lines of dockerd's log in which it tried to reach a registry (the tests must cause none)."""
        text = (self.root / "dockerd.log").read_text(errors="replace")
        return [line for line in text.splitlines() if "pulling image" in line or "Error getting v2 registry" in line]

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join((self.root / "dockerd.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Leave the swarm, stop dockerd and everything it started, remove the directory."""
        try:
            if self.process is not None and self.process.poll() is None:
                self.docker("swarm", "leave", "--force", check=False, timeout=60)
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(STOP_GRACE)
                except subprocess.TimeoutExpired:
                    os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait(10)
        finally:
            self._kill_leftover_shims()
            self._unmount_leftovers()
            shutil.rmtree(self.root, ignore_errors=True)

    def _kill_leftover_shims(self) -> None:
        """containerd shims detach from dockerd; those that still serve our containerd are ours."""
        marker = str(self.root).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if marker in command and b"containerd-shim" in command:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry.name), signal.SIGKILL)

    def _unmount_leftovers(self) -> None:
        prefix = str(self.root) + "/"
        try:
            mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
        except OSError:
            return
        for mount_point in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
            subprocess.run(["umount", "-l", mount_point], capture_output=True, timeout=30)

    # --- waiting -----------------------------------------------------------------------------
    def wait_until(self, condition, what: str, limit: float = 120.0, step: float = 0.5):
        """Poll `condition()` until it returns something true; EngineError naming `what` after `limit` s."""
        deadline = time.monotonic() + limit
        last = None
        while time.monotonic() < deadline:
            last = condition()
            if last:
                return last
            time.sleep(step)
        raise EngineError(f"timed out after {limit:.0f} s waiting for {what}")

    def replicas(self, service: str) -> tuple[int, int]:
        """(running, desired) of a service as `docker service ls` shows them."""
        line = self.text("service", "ls", "--filter", f"name={service}", "--format", "{{.Name}} {{.Replicas}}")
        for row in line.splitlines():
            name, replicas = row.split()[:2]
            if name == service:
                running, desired = replicas.split("/")[:2]
                return int(running), int(desired.split()[0])
        raise EngineError(f"no service {service}")


# The swarm's gossip port cannot be chosen in this engine version: one swarm at a time per machine.
GOSSIP_PORT = 7946
GOSSIP_WAIT = 120.0


def gossip_port_free() -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind(("127.0.0.1", GOSSIP_PORT))
            except OSError:
                return False
    return True


def unavailable_reason() -> str:
    if not os.path.exists(DOCKERD):
        return "dockerd is not installed (apt-get install docker.io, or run scripts/setup.sh)"
    if os.geteuid() != 0:
        return "dockerd needs root; run the tests as root"
    deadline = time.monotonic() + GOSSIP_WAIT
    while not gossip_port_free():
        if time.monotonic() > deadline:
            return f"port {GOSSIP_PORT} (swarm gossip) stayed in use for {GOSSIP_WAIT:.0f} s: another swarm runs on this machine"
        time.sleep(1)
    return ""


@contextlib.contextmanager
def running_engine() -> Iterator[Engine]:
    """A started engine with a one-node swarm; skips the test when dockerd cannot start at all."""
    reason = unavailable_reason()
    if reason:
        print(f"docker engine tests skipped: {reason}", file=sys.stderr)
        pytest.skip(reason)
    # Short paths: containerd's sockets live below it and a socket path holds at most 107 bytes.
    engine = Engine(Path(tempfile.mkdtemp(prefix="pharos-engine-", dir="/tmp")))
    try:
        try:
            engine.start()
        except EngineError as error:
            print(f"docker engine tests skipped: dockerd cannot start here: {error}", file=sys.stderr)
            pytest.skip(f"dockerd cannot start here: {error}")
        yield engine
    finally:
        engine.stop()


_shared: dict = {"engine": None, "context": None, "users": 0, "skip": ""}


@contextlib.contextmanager
def shared_engine() -> Iterator[Engine]:
    """`running_engine()` shared by everyone inside this context: started on first entry, stopped
    when the last leaves (session-scoped fixtures of several modules all leave at the session's end)."""
    if _shared["skip"]:
        pytest.skip(_shared["skip"])
    if _shared["engine"] is None:
        context = running_engine()
        try:
            _shared["engine"] = context.__enter__()
        except pytest.skip.Exception as skipped:
            _shared["skip"] = str(skipped)
            raise
        _shared["context"] = context
    _shared["users"] += 1
    try:
        yield _shared["engine"]
    finally:
        _shared["users"] -= 1
        if _shared["users"] == 0:
            context, _shared["engine"], _shared["context"] = _shared["context"], None, None
            context.__exit__(None, None, None)


@pytest.fixture(scope="session")
def engine():
    """The Docker tests' engine with a one-node swarm, one per session (`from docker_engine import engine`)."""
    with shared_engine() as started:
        yield started


# --- images ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    """One file system entry of an image made by `import_image`."""

    path: str
    kind: str = "dir"  # dir | file | link
    source: str = ""  # file: the host file to copy; link: the link target
    mode: int = 0o755
    owner: int = 0


def _tar_info(entry: Entry) -> tuple[tarfile.TarInfo, io.BufferedReader | None]:
    info = tarfile.TarInfo(entry.path.lstrip("/"))
    info.mode, info.uid, info.gid, info.mtime = entry.mode, entry.owner, entry.owner, 0
    if entry.kind == "dir":
        info.type = tarfile.DIRTYPE
        return info, None
    if entry.kind == "link":
        info.type, info.linkname = tarfile.SYMTYPE, entry.source
        return info, None
    info.size = os.path.getsize(entry.source)
    return info, open(entry.source, "rb")


def import_image(engine: Engine, tag: str, entries: Iterable[Entry], changes: Iterable[str] = (), base_tar: Path | None = None) -> str:
    """`docker import` of a tar stream: `base_tar`'s members (if any), then `entries`."""
    command = [DOCKER, "import", *(arg for change in changes for arg in ("--change", change)), "-", tag]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=engine.env)
    try:
        with tarfile.open(fileobj=process.stdin, mode="w|") as out:
            if base_tar is not None:
                with tarfile.open(base_tar, "r|") as base:
                    for member in base:
                        out.addfile(member, base.extractfile(member) if member.isreg() else None)
            for entry in entries:
                info, content = _tar_info(entry)
                with content or contextlib.nullcontext():
                    out.addfile(info, content)
        process.stdin.close()
        process.wait(timeout=300)
        stderr = process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
    if process.returncode != 0:
        raise EngineError(f"docker import {tag} failed: {stderr.decode(errors='replace').strip()}")
    return tag


def _busybox_entries() -> list[Entry]:
    entries = [Entry("bin"), Entry("etc"), Entry("tmp", mode=0o1777), Entry("bin/busybox", "file", BUSYBOX)]
    entries += [Entry(f"bin/{applet}", "link", "busybox") for applet in BUSYBOX_APPLETS]
    return entries


def busybox_image(engine: Engine, tag: str = "local/busybox:test") -> str:
    if engine.made.get(tag) != "busybox":
        import_image(engine, tag, _busybox_entries())
        engine.made[tag] = "busybox"
    return tag


def _libraries(binary: str) -> list[str]:
    """The shared libraries `ldd` lists for `binary`, as absolute paths (the loader included)."""
    output = subprocess.run(["ldd", binary], capture_output=True, text=True, timeout=30).stdout
    return sorted(set(re.findall(r"(/\S+\.so[.\d]*)", output)))


def binary_image(engine: Engine, tag: str, binary: str, name: str, data_dir: str, files: Iterable[str] = (), user: int = 65534) -> str:
    """`binary` as /bin/NAME on busybox with the libraries ldd names and `files` at their own paths
    (Debian's Alertmanager reads its templates from /usr/share), `data_dir` owned by `user`."""
    recipe = ("binary", binary, name, data_dir, tuple(files), user)
    if engine.made.get(tag) == recipe:
        return tag
    copied = [*_libraries(binary), *files]
    directories = sorted({"/".join(parts[:depth]) for path in copied for parts in [os.path.dirname(path).strip("/").split("/")] for depth in range(1, len(parts) + 1)})
    entries = [Entry(directory) for directory in directories if directory not in ("bin", "etc", "tmp")]
    entries += _busybox_entries() + [Entry(f"bin/{name}", "file", binary), Entry(data_dir.strip("/"), owner=user)]
    entries += [Entry(path.strip("/"), "file", os.path.realpath(path), 0o644 if path in files else 0o755) for path in copied]
    import_image(engine, tag, entries, [f'ENTRYPOINT ["/bin/{name}"]', f"USER {user}", f"WORKDIR /{data_dir.strip('/')}"])
    engine.made[tag] = recipe
    return tag


ALERTMANAGER_TEMPLATES = "/usr/share/prometheus/alertmanager"  # Debian's Alertmanager does not embed them


def prometheus_image(engine: Engine, tag: str = "local/prometheus:test") -> str:
    """Debian's Prometheus: `/bin/prometheus` as entrypoint, data in /prometheus, user nobody."""
    return binary_image(engine, tag, shutil.which("prometheus") or "/usr/bin/prometheus", "prometheus", "/prometheus")


def node_exporter_image(engine: Engine, tag: str = "local/node-exporter:test") -> str:
    """Debian's node_exporter: `/bin/node_exporter` as entrypoint (as the official image), user nobody."""
    binary = shutil.which("prometheus-node-exporter") or "/usr/bin/prometheus-node-exporter"
    return binary_image(engine, tag, binary, "node_exporter", "/data")


def alertmanager_image(engine: Engine, tag: str = "local/alertmanager:test") -> str:
    """Debian's Alertmanager with its templates: `/bin/alertmanager`, data in /alertmanager."""
    return binary_image(
        engine, tag, shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager", "alertmanager", "/alertmanager",
        files=sorted(str(path) for path in Path(ALERTMANAGER_TEMPLATES).glob("*.tmpl")),
    )


def victoria_metrics_image(engine: Engine, tag: str = "local/victoria-metrics:test") -> str:
    """Debian's VictoriaMetrics single node: `/bin/victoria-metrics`, data in /storage, user nobody."""
    return binary_image(engine, tag, shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics", "victoria-metrics", "/storage")


def vmalert_image(engine: Engine, tag: str = "local/vmalert:test") -> str:
    """Debian's vmalert: `/bin/vmalert`, user nobody."""
    return binary_image(engine, tag, shutil.which("vmalert") or "/usr/bin/vmalert", "vmalert", "/data")


# --- the python base image, cached ---------------------------------------------------------------
def _digest(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


@contextlib.contextmanager
def _locked(name: str):
    """Serialise builds of one cached artefact between concurrent test runs."""
    with open(cache_dir() / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def debian_mirror() -> str:
    """The Debian archive this machine's apt uses: debootstrap must reach the same one."""
    stanzas = []
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        stanzas += path.read_text().split("\n\n")
    for stanza in stanzas:
        uris = re.search(r"^URIs:\s*(\S+)", stanza, re.MULTILINE)
        suites = re.search(r"^Suites:\s*(.+)$", stanza, re.MULTILINE)
        if uris and suites and SUITE in suites.group(1).split():
            return uris.group(1)
    sources = Path("/etc/apt/sources.list")
    if sources.exists():
        for line in sources.read_text().splitlines():
            match = re.match(rf"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+{SUITE}\s", line)
            if match:
                return match.group(1)
    return "http://deb.debian.org/debian"


def rootfs_tar() -> Path:
    """The debootstrap rootfs as an uncompressed tar, built once per recipe."""
    target = cache_dir() / f"rootfs-{_digest(ROOTFS_RECIPE)}.tar"
    with _locked("rootfs"):
        if target.exists():
            return target
        if not shutil.which("debootstrap"):
            raise EngineError("debootstrap is not installed (apt-get install debootstrap, or run scripts/setup.sh)")
        work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=cache_dir()))
        try:
            rootfs = work / "rootfs"
            result = subprocess.run(
                ["debootstrap", f"--variant={ROOTFS_RECIPE['variant']}", f"--include={','.join(ROOTFS_RECIPE['include'])}",
                 SUITE, str(rootfs), debian_mirror()],
                capture_output=True, text=True, timeout=900,
            )
            if result.returncode != 0:
                raise EngineError(f"debootstrap failed: {(result.stdout + result.stderr)[-2000:]}")
            for leftovers in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for item in (rootfs / leftovers).glob("*"):
                    if item.is_file():
                        item.unlink()
            partial = work / "rootfs.tar"
            subprocess.run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(partial), "."], check=True, capture_output=True, timeout=300)
            partial.rename(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target


CONSTRAINTS = ROOT / "constraints.txt"


def _requirements() -> list[str]:
    """The core dependencies (no extras: the image has none) and the build requirements."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    build = project["build-system"]["requires"]
    return sorted(project["project"]["dependencies"]) + sorted(build) + ["wheel"]


def _constraints() -> list[str]:
    """pip's arguments for the pins the image is built with (the Dockerfile uses the same file)."""
    return ["--constraint", str(CONSTRAINTS)] if CONSTRAINTS.exists() else []


def wheelhouse() -> Path:
    """Wheels of the project's core dependencies and build requirements, at the versions
    constraints.txt pins, for an offline `pip install`."""
    requirements = _requirements()
    pins = CONSTRAINTS.read_text() if CONSTRAINTS.exists() else ""
    target = cache_dir() / f"wheels-{_digest([requirements, pins, sys.version_info[:2]])}"
    with _locked("wheels"):
        if target.exists():
            return target
        partial = Path(tempfile.mkdtemp(prefix="wheels-", dir=cache_dir()))
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--quiet", "--only-binary=:all:",
             "--dest", str(partial), *_constraints(), *requirements],
            capture_output=True, text=True, timeout=600,
        )
        if result.returncode != 0:
            shutil.rmtree(partial, ignore_errors=True)
            raise EngineError(f"pip download of the dependencies failed (PyPI unreachable?): {result.stderr[-1500:]}")
        partial.rename(target)
    return target


WHEELHOUSE_IN_IMAGE = "/wheelhouse"


PYTHON_BASE = "local/pharos-base:test"


def python_base_image(engine: Engine, tag: str = PYTHON_BASE) -> str:
    wheels = wheelhouse()
    recipe = ("python-base", str(rootfs_tar()), str(wheels))
    if engine.made.get(tag) == recipe:
        return tag
    entries = [Entry(WHEELHOUSE_IN_IMAGE.strip("/"))]
    entries += [Entry(f"{WHEELHOUSE_IN_IMAGE.strip('/')}/{wheel.name}", "file", str(wheel), 0o644) for wheel in sorted(wheels.iterdir())]
    import_image(engine, tag, entries, base_tar=rootfs_tar())
    engine.made[tag] = recipe
    return tag


def pharos_image(engine: Engine, tag: str = "local/pharos:test") -> str:
    """The repository's Dockerfile, built offline on the python base image, without extras.
    Built again on every call (BuildKit's cache makes an unchanged build take seconds)."""
    base = python_base_image(engine)
    engine.docker(
        "build", "--quiet", "--network", "none", "--tag", tag,
        "--build-arg", f"BASE_IMAGE={base}",
        "--build-arg", f"PIP_INSTALL_OPTIONS=--no-index --find-links {WHEELHOUSE_IN_IMAGE}",
        str(ROOT),
        timeout=900,
    )
    return tag


def image_size(engine: Engine, image: str) -> int:
    """Bytes of every layer of `image` (what `docker image ls` shows)."""
    return int(engine.text("image", "inspect", "--format", "{{.Size}}", image))
