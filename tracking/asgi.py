"""The ASGI entry point of the device-facing service: ``uvicorn --factory tracking.asgi:build``."""

from __future__ import annotations

from casemgr.config import load_settings
from casemgr.logs import configure_logging
from tracking.app import TrackingApp, create_app


def build() -> TrackingApp:
    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    return create_app(settings)
