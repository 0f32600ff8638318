"""Money rules: integer minor units, explicit ISO 4217 currency, bounded amounts."""

from __future__ import annotations

from typing import Any

from core.access import Refusal

__all__ = ["CURRENCIES", "MAX_AMOUNT", "check_amount", "check_currency", "split_fee"]

# ISO 4217 codes accepted (two-decimal currencies plus the common zero-decimal ones)
CURRENCIES = frozenset(
    "USD EUR GBP CNY JPY KRW HKD TWD SGD AUD CAD CHF SEK NOK DKK PLN CZK INR BRL MXN".split()
)
MAX_AMOUNT = 100_000_000  # one million in a two-decimal currency


def check_currency(value: Any) -> str:
    if not isinstance(value, str) or value.upper() not in CURRENCIES:
        raise Refusal(400, "unknown_currency", f"currency must be one of {', '.join(sorted(CURRENCIES))}")
    return value.upper()


def check_amount(value: Any, field: str = "amount", allow_zero: bool = False) -> int:
    """An integer number of minor units (cents); floats and strings are refused."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise Refusal(400, "invalid_amount", f"{field}: an integer number of minor units (cents)")
    low = 0 if allow_zero else 1
    if not low <= value <= MAX_AMOUNT:
        raise Refusal(400, "invalid_amount", f"{field}: between {low} and {MAX_AMOUNT}")
    return value


def split_fee(amount: int, fee_bps: int) -> tuple[int, int]:
    """(platform fee, creator share); the fee rounds down so the two always sum exactly."""
    fee = amount * fee_bps // 10_000
    return fee, amount - fee
