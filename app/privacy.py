"""Masking of personal data: show only what the reader needs."""

from __future__ import annotations


def mask_phone(phone: str | None) -> str | None:
    """Keep the first three and last four digits of a phone number: 139****1234."""
    if not phone:
        return phone
    digits = phone.strip()
    if len(digits) <= 7:
        return "*" * len(digits)
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


def mask_name(name: str | None) -> str | None:
    """Keep a Chinese name's surname only: 张** (a Latin name keeps its first letter)."""
    if not name:
        return name
    return name[0] + "*" * max(1, len(name) - 1)
