"""Romanised forms of Chinese names, for search by pinyin and by pinyin initials.

``张三`` becomes ``zhangsan`` and ``zs``; a name in Latin letters keeps its letters
(``Li Ming`` becomes ``liming`` and ``lm``). Surnames with a reading of their own (单 is
Shan as a surname, not Dan) are read as surnames.
"""

from __future__ import annotations

import re
import unicodedata

from pypinyin import Style, lazy_pinyin

# Surnames whose reading differs from the character's common one; longest first.
_SURNAME_READINGS: dict[str, list[str]] = {
    "尉迟": ["yu", "chi"],
    "万俟": ["mo", "qi"],
    "长孙": ["zhang", "sun"],
    "单": ["shan"],
    "曾": ["zeng"],
    "解": ["xie"],
    "仇": ["qiu"],
    "朴": ["piao"],
    "查": ["zha"],
    "区": ["ou"],
    "秘": ["bi"],
    "覃": ["qin"],
    "盖": ["ge"],
    "翟": ["zhai"],
    "乐": ["yue"],
    "缪": ["miao"],
    "召": ["shao"],
    "种": ["chong"],
    "隗": ["wei"],
    "任": ["ren"],
    "纪": ["ji"],
    "葛": ["ge"],
    "华": ["hua"],
    "宁": ["ning"],
    "过": ["guo"],
    "能": ["nai"],
    "沈": ["shen"],
    "重": ["chong"],
    "贾": ["jia"],
    "柏": ["bai"],
}
_NOT_LETTER_OR_DIGIT = re.compile(r"[^a-z0-9]+")


def _syllables(name: str) -> list[str]:
    name = unicodedata.normalize("NFKC", name).strip()
    for surname in sorted(_SURNAME_READINGS, key=len, reverse=True):
        if name.startswith(surname):
            return _SURNAME_READINGS[surname] + _syllables_of(name[len(surname) :])
    return _syllables_of(name)


def _syllables_of(text: str) -> list[str]:
    """Pinyin syllables for Chinese characters, words for everything else."""
    syllables: list[str] = []
    for chunk in lazy_pinyin(text, style=Style.NORMAL, errors="default", v_to_u=False):
        # Non-Chinese runs come back whole ("Li Ming"): split them into words.
        syllables += [w for w in _NOT_LETTER_OR_DIGIT.split(chunk.lower()) if w]
    return syllables


def romanise(name: str) -> tuple[str, str]:
    """(pinyin, initials) of a name, both lower case without spaces."""
    syllables = _syllables(name)
    return "".join(syllables), "".join(s[0] for s in syllables)


def search_key(query: str) -> str:
    """A search text as the pinyin columns store names: romanised, lower case, no spaces."""
    return romanise(query)[0]
