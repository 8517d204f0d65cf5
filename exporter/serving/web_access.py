"""The web configuration while the exporter serves: TLS on accepted connections, basic auth on
every request, the file re-read when it (or a certificate it names) changes.

Like exporter-toolkit, certificates are picked up on the next connection after they change, so
rotating them needs no restart; whether TLS is on at all is decided at start. A file that turns
invalid fails closed: new TLS connections are refused and requests answer 500, each logged with
the problem, until the file is fixed. bcrypt costs ~100 ms a check, so verdicts are cached, keyed
by a digest of user, hash and password (never the password itself): the password last accepted
for each user apart from a bounded table of refused ones, so wrong passwords cannot evict the
legitimate user (the server asks `cached_verdict` on its event loop and runs `authorized`, which
may take a bcrypt check, on a thread of its own; see connections.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict

import bcrypt

from .web_config import WebConfig, WebConfigError, load

log = logging.getLogger("pharos.exporter")

RETRY_SECONDS = 1.0  # an invalid file is read again at most this often
AUTH_CACHE_SIZE = 256
REALM = 'Basic realm="pharos-exporter", charset="UTF-8"'
PLAIN_HTTP_ANSWER = (
    b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
    b"Client sent an HTTP request to an HTTPS server.\n"
)
TLS_HANDSHAKE_RECORD = 0x16


class WebAccess:
    def __init__(self, path: str):
        self.path = path
        self._config = load(path)  # WebConfigError at start: the exporter does not start
        self.tls = self._config.tls.enabled
        self._signature = _signature(self._config.files)
        self._problem = ""
        self._retry_at = 0.0
        self._lock = threading.Lock()
        self._bcrypt_lock = threading.Lock()  # one bcrypt at a time: a password flood costs one core at most
        self._cache_lock = threading.Lock()  # never held during bcrypt: cached users pass at once
        self._accepted: dict[str, bytes] = {}  # user -> key of the password last accepted
        self._refused: OrderedDict[bytes, bool] = OrderedDict()  # bounded, least recently used out

    @property
    def config(self) -> WebConfig:
        """The configuration in force; WebConfigError while the file on disk is invalid."""
        with self._lock:
            now = time.monotonic()
            signature = _signature(self._config.files)
            if signature != self._signature:
                self._reload(signature, now)
            elif self._problem:
                # The broken file may name certificates that do not exist yet: try again now and then.
                if now < self._retry_at:
                    raise WebConfigError(self._problem)
                self._reload(signature, now)
            return self._config

    def _reload(self, signature, now: float) -> None:
        try:
            config = load(self.path)
            if config.tls.enabled != self.tls:
                state = "on" if self.tls else "off"
                raise WebConfigError(f"{self.path}: tls_server_config: TLS was {state} at start; switching it needs a restart")
        except WebConfigError as error:
            if str(error) != self._problem:
                log.error("web configuration now invalid, refusing requests until it is fixed: %s", error)
            self._problem, self._retry_at, self._signature = str(error), now + RETRY_SECONDS, signature
            raise
        if self._problem:
            log.info("web configuration %s valid again", self.path)
        self._config, self._signature, self._problem = config, _signature(config.files), ""
        with self._cache_lock:
            self._accepted.clear()  # users or hashes may have changed
            self._refused.clear()

    # --- basic auth ---------------------------------------------------------------------------
    def cached_verdict(self, header: str | None) -> bool | None:
        """Whether a request with this Authorization header may pass, when that is known without
        a bcrypt check (no users, a malformed header, a password checked before); else None."""
        users = self.config.users
        if not users:
            return True
        credentials = _basic_credentials(header)
        if credentials is None:
            return False
        user, password = credentials
        key = self._key(users, user, password)
        with self._cache_lock:
            if self._accepted.get(user) == key:
                return True
            verdict = self._refused.get(key)
            if verdict is not None:
                self._refused.move_to_end(key)
                return False
        return None

    def authorized(self, header: str | None) -> bool:
        """Whether a request with this Authorization header may pass (True with no users); runs
        bcrypt when the verdict is not cached (~100 ms; one check at a time)."""
        known = self.cached_verdict(header)
        if known is not None:
            return known
        users = self.config.users
        credentials = _basic_credentials(header)
        assert credentials is not None  # cached_verdict answered False otherwise
        user, password = credentials
        hashed = users.get(user)
        exists = hashed is not None
        if not exists:
            # An unknown user costs a real bcrypt check too, so timing does not tell which
            # users exist; a configured hash has the cost the real ones have.
            hashed = users[min(users)]
        with self._bcrypt_lock:
            verdict = _bcrypt_matches(password, hashed) and exists
        key = self._key(users, user, password)
        with self._cache_lock:
            if verdict:
                # One accepted password per user, never evicted by wrong ones: a flood of wrong
                # passwords cannot push the legitimate scraper back to bcrypt.
                self._accepted[user] = key
            else:
                self._refused[key] = False
                while len(self._refused) > AUTH_CACHE_SIZE:
                    self._refused.popitem(last=False)
        return verdict

    @staticmethod
    def _key(users: dict[str, str], user: str, password: bytes) -> bytes:
        # A digest of user, hash and password (never the password itself); a changed hash
        # gives a new key, so a reloaded file cannot keep an old password working.
        return _digest(user.encode(), users.get(user, "").encode(), password)

    def headers(self) -> tuple[tuple[str, str], ...]:
        try:
            return self.config.headers
        except WebConfigError:
            return ()


def _basic_credentials(header: str | None) -> tuple[str, bytes] | None:
    """(user, password) from `Authorization: Basic ...`, or None when absent or malformed."""
    if not header:
        return None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    if not colon:
        return None
    try:
        return user.decode("utf-8"), password
    except UnicodeDecodeError:
        return None


def _bcrypt_matches(password: bytes, hashed: str) -> bool:
    try:
        return bcrypt.checkpw(password, hashed.encode())
    except ValueError:
        # A password over bcrypt's 72 bytes, or a hash variant this bcrypt cannot compute.
        return False


def _digest(*parts: bytes) -> bytes:
    outer = hashlib.sha256()
    for part in parts:
        outer.update(hashlib.sha256(part).digest())  # fixed-size pieces: no two inputs run together
    return outer.digest()


def _signature(files: tuple[str, ...]) -> tuple:
    def stat(name: str):
        try:
            info = os.stat(name)
        except OSError:
            return None
        return info.st_mtime_ns, info.st_size, info.st_ino

    return tuple(stat(name) for name in files)
