"""The ASGI entry point for servers: ``uvicorn --factory casemgr.asgi:build``."""

from __future__ import annotations

from litestar import Litestar

from casemgr.app import create_app
from casemgr.config import load_settings
from casemgr.logs import configure_logging


def build() -> Litestar:
    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    return create_app(settings)
