"""From a stack file to the configuration every component reads: `pharos build` writes
Prometheus (scrape configs, rules), Alertmanager and Grafana provisioning, deterministically."""
