"""Message catalogs: every label of the console, in zh-CN (the default) and English."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

LANGUAGES = ("zh-CN", "en")
DEFAULT = "zh-CN"
COOKIE = "casemgr_lang"


@cache
def catalog(language: str) -> dict[str, str]:
    text = resources.files("casemgr.console").joinpath("messages", f"{language}.json").read_text("utf-8")
    messages: dict[str, str] = json.loads(text)
    return messages


def pick(requested: str | None) -> str:
    return requested if requested in LANGUAGES else DEFAULT


class Translator:
    """`t("key")` in templates; a key missing from a catalog shows as the key, and a test
    checks that both catalogs hold the same keys."""

    def __init__(self, language: str) -> None:
        self.language = pick(language)
        self._messages = catalog(self.language)

    def __call__(self, key: str) -> str:
        return self._messages.get(key, key)

    def get(self, key: str, default: str) -> str:
        """For values that may have no label (a kind added later): the value itself then."""
        return self._messages.get(key, default)
