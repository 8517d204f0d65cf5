"""Serving: the exporter's HTTP side, apart from collecting.

- `server`: connections, requests and the endpoints `/metrics`, `/probe`, `/health`, `/`;
- `web_config` and `web_access`: `--web.config.file` (TLS, basic auth, headers);
- `allowlist`: which targets `/probe` may contact.
"""
