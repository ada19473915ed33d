"""Resident identity numbers (GB 11643-1999): 17 digits and a check character."""

from __future__ import annotations

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"


def check_character(first17: str) -> str:
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError("the first 17 characters must be digits")
    return _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def is_valid(id_number: str) -> bool:
    if len(id_number) != 18 or not id_number[:17].isdigit():
        return False
    return check_character(id_number[:17]) == id_number[17]


def birth_date_part(id_number: str) -> str:
    """The YYYYMMDD birth date the number carries (characters 7 to 14)."""
    return id_number[6:14]


def is_male(id_number: str) -> bool:
    """The 17th character is odd for men and even for women."""
    return int(id_number[16]) % 2 == 1
