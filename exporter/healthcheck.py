"""`python -m exporter.healthcheck [URL]`: Docker's HEALTHCHECK for the exporter image.

Container images of Pharos carry no curl or wget; this asks the exporter's `/health` (or URL) with
the Python that runs it and exits 0 when it answers 200, 1 otherwise, with one line saying why
(Docker keeps it in `docker inspect`'s health log). Without URL it asks
`http://127.0.0.1:PORT/health`, PORT taken from PHAROS_LISTEN (default 9841); PHAROS_HEALTH_URL
overrides that, for an exporter behind TLS or on another path.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

from .config import DEFAULT_LISTEN

TIMEOUT_SECONDS = 4.0  # below Docker's default health-check timeout (30 s) and the image's (5 s)


def default_url() -> str:
    if os.environ.get("PHAROS_HEALTH_URL"):
        return os.environ["PHAROS_HEALTH_URL"]
    listen = os.environ.get("PHAROS_LISTEN") or DEFAULT_LISTEN
    port = listen.rpartition(":")[2] or DEFAULT_LISTEN.rpartition(":")[2]
    return f"http://127.0.0.1:{port}/health"


def check(url: str) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            return response.status == 200, f"{url}: HTTP {response.status}"
    except urllib.error.HTTPError as error:
        detail = error.read(300).decode("utf-8", "replace").strip().replace("\n", " ")
        return False, f"{url}: HTTP {error.code} {detail}"
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return False, f"{url}: no answer ({reason})"


def main(argv: list[str]) -> int:
    url = argv[0] if argv else default_url()
    healthy, message = check(url)
    print(("healthy: " if healthy else "unhealthy: ") + message)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
