"""The Pharos exporter: application stats over REST/JSON, exposed in one Prometheus vocabulary."""

__version__ = "0.1.0"
