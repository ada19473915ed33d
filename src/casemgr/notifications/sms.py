"""Sending SMS: an interface a real gateway plugs in behind.

A gateway adapter implements SmsSender (one coroutine) and is named by CASEMGR_SMS_SENDER as
`package.module:factory`, a callable that takes the settings and returns the sender. The
default writes the message to the log, for development and the demo.
"""

from __future__ import annotations

import importlib
from typing import Protocol

import structlog

from casemgr.config import ConfigError, Settings

log = structlog.get_logger(__name__)


class SmsSender(Protocol):
    async def send(self, number: str, text: str) -> None:
        """Hand the message to the gateway; raise on failure (the outbox retries)."""


class LogSmsSender:
    async def send(self, number: str, text: str) -> None:
        log.info("sms_sent", number_suffix=number[-4:], length=len(text))


def sms_sender(settings: Settings) -> SmsSender:
    if settings.sms_sender == "log":
        return LogSmsSender()
    module_name, _, factory_name = settings.sms_sender.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), factory_name)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"CASEMGR_SMS_SENDER {settings.sms_sender!r} cannot be loaded") from e
    sender: SmsSender = factory(settings)
    return sender
