"""Configuration files that cannot explode: whatever bytes a configuration file holds, every reader
of ours (exporter config, json mapping file, web config, stack file) answers with one line naming
the file and what is wrong, quickly and in bounded memory, and never blocks on a special file."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import tracemalloc
from pathlib import Path

import pytest

from pharos_monitoring.config import stack_config
from pharos_monitoring.exporter import config as exporter_config
from pharos_monitoring.exporter.config import ConfigError
from pharos_monitoring.exporter.jsonmap import load_modules_file
from pharos_monitoring.exporter.serving import web_config

# reader: (load, the error it raises, how to place a value under a key the reader looks at)
READERS = {
    "exporter_config": (exporter_config.load, ConfigError, "limits:\n  timeout_seconds: {}\n"),
    "mapping_file": (load_modules_file, ConfigError, "modules:\n  m:\n    metrics: {}\n"),
    "web_config": (web_config.load, web_config.WebConfigError, "basic_auth_users:\n  alice: {}\n"),
    "stack_file": (stack_config.load, stack_config.StackConfigError, "runbook_url: {}\n"),
}
MAX_PEAK_BYTES = 50 * 1024 * 1024
PATIENCE_SECONDS = 10  # generous: a correct reader answers in milliseconds, a broken one hangs


def billion_laughs(placement: str) -> str:
    """Nine levels of nine aliases: 600 bytes that expand to 9**9 strings."""
    levels = ["&a [" + ", ".join(["lol"] * 9) + "]"]
    for previous, name in zip("abcdefgh", "bcdefghi"):
        levels.append(f"&{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
    return placement.format("[" + ", ".join(levels) + "]")


def bounded_load(load, path: Path, patience: float = PATIENCE_SECONDS) -> tuple[BaseException | None, int]:
    """Run `load(path)` in a thread; (what it raised, peak traced bytes). A hang fails the test."""
    outcome: dict = {}

    def run():
        tracemalloc.start()
        try:
            load(str(path))
        except BaseException as error:  # noqa: BLE001 - the test judges what came out
            outcome["error"] = error
        finally:
            outcome["peak"] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(patience)
    if thread.is_alive():
        if path.is_fifo():  # let the blocked open() return, so the thread ends
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f"loading {path.name} still runs after {patience} s")
    return outcome.get("error"), outcome["peak"]


def one_line_error(reader: str, path: Path, *expected: str) -> str:
    """The reader's error for `path`: its own error class, one short line naming the file and
    holding every `expected` text."""
    return one_line_error_and_peak(reader, path, *expected)[0]


def one_line_error_and_peak(reader: str, path: Path, *expected: str) -> tuple[str, int]:
    load, error_class, _ = READERS[reader]
    error, peak = bounded_load(load, path)
    assert isinstance(error, error_class), f"expected {error_class.__name__}, got {type(error).__name__}: {str(error)[:300]}"
    message = str(error)
    assert "\n" not in message and len(message) < 400, message[:1000]
    assert message.startswith(f"{path}: "), message
    problem = message[len(f"{path}: ") :]  # the file's own name may hold the words looked for
    for text in expected:
        assert text in problem, message
    return message, peak


def write(tmp_path: Path, content: str | bytes, name: str = "pharos.yml") -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


# --- encodings -----------------------------------------------------------------------------------
@pytest.mark.parametrize("reader", READERS)
def test_a_binary_file(tmp_path, reader):
    path = write(tmp_path, b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + bytes(range(256)))
    one_line_error(reader, path, "not UTF-8")


@pytest.mark.parametrize("reader", READERS)
def test_a_binary_file_of_nul_bytes(tmp_path, reader):
    path = write(tmp_path, b"x: \x00\x00\x00\x00\n")
    one_line_error(reader, path, "line 1", "NUL")


@pytest.mark.parametrize("reader", READERS)
def test_a_latin_1_file_names_the_line_and_byte(tmp_path, reader):
    path = write(tmp_path, "# comment\n\nx: caf\xe9\n".encode("latin-1"))
    one_line_error(reader, path, "line 3", "0xe9", "not UTF-8", "save it as UTF-8")


@pytest.mark.parametrize("encoding,name", [("utf-16", "UTF-16"), ("utf-32", "UTF-32")])
@pytest.mark.parametrize("reader", READERS)
def test_a_utf_16_or_32_file(tmp_path, reader, encoding, name):
    path = write(tmp_path, "x: 1\n".encode(encoding))
    one_line_error(reader, path, name, "save it as UTF-8")


@pytest.mark.parametrize("reader", READERS)
def test_a_control_character_names_the_line(tmp_path, reader):
    path = write(tmp_path, "x: 1\ny: a\x07b\n")
    one_line_error(reader, path, "line 2", "#x0007")


def test_a_utf_8_byte_order_mark_is_accepted(tmp_path):
    path = write(tmp_path, b"\xef\xbb\xbflisten: 127.0.0.1:9841\n")
    assert exporter_config.load(str(path)).listen == "127.0.0.1:9841"


# --- structure: nesting, aliases, duplicate keys --------------------------------------------------
@pytest.mark.parametrize("opening,closing", [("[", "]"), ("{a: ", "}")], ids=["sequences", "mappings"])
@pytest.mark.parametrize("reader", READERS)
def test_deep_nesting_is_refused_cheaply(tmp_path, reader, opening, closing):
    path = write(tmp_path, "x: " + opening * 10_000 + "1" + closing * 10_000 + "\n")
    message, peak = one_line_error_and_peak(reader, path, "line 1", "nested deeper than 64 levels")
    assert peak < MAX_PEAK_BYTES, f"peak {peak / 1e6:.1f} MB"
    assert len(message) < 300


@pytest.mark.parametrize("reader", READERS)
def test_billion_laughs_is_refused_cheaply(tmp_path, reader):
    path = write(tmp_path, billion_laughs(READERS[reader][2]))
    assert path.stat().st_size < 700
    message, peak = one_line_error_and_peak(reader, path, "anchors and aliases expand to more than")
    assert peak < MAX_PEAK_BYTES, f"peak {peak / 1e6:.1f} MB"
    assert "lol" not in message


@pytest.mark.parametrize("reader", READERS)
def test_a_recursive_alias_is_refused(tmp_path, reader):
    path = write(tmp_path, READERS[reader][2].format("&loop [1, *loop]"))
    one_line_error(reader, path, "line ", "refers to itself")


@pytest.mark.parametrize("reader", READERS)
def test_duplicate_keys_name_both_lines(tmp_path, reader):
    path = write(tmp_path, "x: 1\ny:\n  a: 1\nx: 2\n")
    one_line_error(reader, path, "line 4: key 'x' appears twice (first at line 1)")


def test_a_duplicate_timeout_is_refused(tmp_path):
    path = write(tmp_path, "limits:\n  timeout_seconds: 5\n  max_response_bytes: 1000\n  timeout_seconds: 30\n")
    one_line_error("exporter_config", path, "line 4: key 'timeout_seconds' appears twice (first at line 2)")


def test_merged_keys_may_be_overridden_and_small_aliases_work(tmp_path):
    from pharos_monitoring.exporter.yaml_file import load_yaml_file

    # z is constructed before y (it is less deep), which once made y's merged keys look doubled
    path = write(tmp_path, "x: &base {a: 1, b: 2}\nw: {v: {y: &mid {<<: *base, a: 3}}}\nz: {<<: *mid, b: 4}\nl: [*base, *base]\n")
    assert load_yaml_file(str(path), "file", ConfigError) == {
        "x": {"a": 1, "b": 2},
        "w": {"v": {"y": {"a": 3, "b": 2}}},
        "z": {"a": 3, "b": 4},
        "l": [{"a": 1, "b": 2}, {"a": 1, "b": 2}],
    }


# --- special files and size ----------------------------------------------------------------------
@pytest.mark.parametrize("reader", READERS)
def test_a_fifo_is_refused_without_blocking(tmp_path, reader):
    path = tmp_path / "pharos.yml"
    os.mkfifo(path)
    one_line_error(reader, path, "a FIFO", "not a regular file")


@pytest.mark.parametrize("reader", READERS)
def test_a_directory_is_refused(tmp_path, reader):
    path = tmp_path / "pharos.yml"
    path.mkdir()
    one_line_error(reader, path, "a directory", "not a regular file")


@pytest.mark.parametrize("reader", READERS)
def test_a_device_is_refused(reader):
    one_line_error(reader, Path("/dev/zero"), "a character device", "not a regular file")


@pytest.mark.parametrize("reader", READERS)
def test_an_oversized_file_is_refused(tmp_path, reader):
    path = write(tmp_path, b"x: 1\n#" + b"-" * (2 * 1024 * 1024))
    one_line_error(reader, path, "larger than 1 MiB")


@pytest.mark.parametrize("reader", READERS)
def test_a_missing_file_is_named(tmp_path, reader):
    one_line_error(reader, tmp_path / "missing.yml", "No such file or directory")


def test_a_long_value_is_not_repeated_in_full(tmp_path):
    path = write(tmp_path, "listen: [" + ", ".join(["'" + "y" * 1000 + "'"] * 50) + "]\n")
    message = one_line_error("exporter_config", path, "listen: expected str, got list")
    assert "y" * 100 not in message


# --- values: numbers, ports, certificates ---------------------------------------------------------
@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", "1.0e+999"])
@pytest.mark.parametrize("key", ["timeout_seconds", "timeout_margin_seconds"])
def test_non_finite_numbers_are_refused(tmp_path, key, value):
    path = write(tmp_path, f"limits:\n  {key}: {value}\n")
    one_line_error("exporter_config", path, f"limits.{key}: ", "finite")


@pytest.mark.parametrize("url", ["http://127.0.0.1:0/stats", "https://example.invalid:00/stats"])
def test_port_0_in_a_target_url_is_refused(tmp_path, url):
    path = write(tmp_path, f"targets:\n  - url: '{url}'\n")
    one_line_error("exporter_config", path, "targets[0].url: ", "port 0")


def test_port_0_is_refused_by_check_url():
    assert "port 0" in exporter_config.check_url("http://127.0.0.1:0/stats")
    assert exporter_config.check_url("http://127.0.0.1:8080/stats") == ""


@pytest.mark.parametrize("key", ["ca_file", "cert_file"])
@pytest.mark.parametrize("section", ["targets", "probe"])
def test_a_tls_file_that_is_not_a_certificate_is_refused(tmp_path, section, key):
    bogus = write(tmp_path, "this is not a certificate\n", "bogus.crt")
    tls = f"{{{key}: '{bogus}'}}"
    text = f"targets:\n  - url: https://127.0.0.1:8443/stats\n    tls: {tls}\n" if section == "targets" else f"probe:\n  tls: {tls}\n"
    path = write(tmp_path, text)
    where = "targets[0].tls" if section == "targets" else "probe.tls"
    message = one_line_error("exporter_config", path, f"{where}.{key}: ", str(bogus), "PEM")
    assert "this is not a certificate" not in message


def test_a_fifo_as_ca_file_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "ca.crt"
    os.mkfifo(fifo)
    path = write(tmp_path, f"targets:\n  - url: https://127.0.0.1:8443/stats\n    tls: {{ca_file: '{fifo}'}}\n")
    one_line_error("exporter_config", path, "targets[0].tls.ca_file: ", "not a regular file")


def test_a_fifo_as_secret_file_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "token"
    os.mkfifo(fifo)
    path = write(tmp_path, f"targets:\n  - url: http://127.0.0.1:8080/stats\n    auth: {{bearer_token_file: '{fifo}'}}\n")
    one_line_error("exporter_config", path, "targets[0].auth.bearer_token_file: ", "a FIFO")


def test_a_long_unknown_tag_is_cut_short(tmp_path):
    path = write(tmp_path, "listen: !" + "t" * 5000 + " x\n")
    one_line_error("exporter_config", path, "line 1", "not valid YAML")


def test_real_certificates_are_accepted(tmp_path):
    from tls_support import make_ca, make_certificate

    ca = make_ca(tmp_path, "ca")
    crt, key = make_certificate(tmp_path, "client", ca, "clientAuth")
    path = write(
        tmp_path,
        f"targets:\n  - url: https://127.0.0.1:8443/stats\n    tls: {{ca_file: '{ca[0]}', cert_file: '{crt}', key_file: '{key}'}}\n",
    )
    tls = exporter_config.load(str(path)).targets[0].tls
    assert (tls.ca_file, tls.cert_file, tls.key_file) == (str(ca[0]), str(crt), str(key))


def test_a_key_that_does_not_match_the_certificate_is_refused(tmp_path):
    from tls_support import make_ca, make_certificate

    ca = make_ca(tmp_path, "ca")
    crt, _ = make_certificate(tmp_path, "client", ca, "clientAuth")
    _, other_key = make_certificate(tmp_path, "other", ca, "clientAuth")
    path = write(tmp_path, f"targets:\n  - url: https://127.0.0.1:8443/stats\n    tls: {{cert_file: '{crt}', key_file: '{other_key}'}}\n")
    one_line_error("exporter_config", path, "targets[0].tls.cert_file: ", "does not match")


# --- the commands ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "reader,command",
    [("exporter_config", ["exporter", "--check-config"]), ("stack_file", ["build", "--out", "{out}"])],
    ids=["pharos exporter --check-config", "pharos build"],
)
def test_the_command_prints_one_line_and_exits_1(tmp_path, reader, command):
    path = write(tmp_path, billion_laughs(READERS[reader][2]))
    arguments = [part.format(out=tmp_path / "out") for part in command] + ["--config", str(path)]
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pharos_monitoring.cli", *arguments], capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.fail("still running after 60 s")
    assert result.returncode == 1, result.stderr[-2000:]
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and str(path) in lines[0], result.stderr[-2000:]
    assert "anchors and aliases" in lines[0]
