"""The device-facing real-time core: ping ingest, zone evaluation, alerts, watchdog, persister."""
