"""Link rates as the user writes them (`100Mbit`, `1Gbit`) and as `tc` wants them (bits/s)."""

from __future__ import annotations

import re

from rnnscope.errors import UserError

# SI multipliers, as tc uses them for "kbit", "mbit", "gbit" (1 Mbit = 10^6 bit)
_UNITS: dict[str, float] = {"bit": 1.0, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9,
                            "bps": 1.0, "kbps": 1e3, "mbps": 1e6, "gbps": 1e9}  # as rnnscope plan
_RATE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-z]+)(/s)?\s*$", re.IGNORECASE)

# tbf cannot shape much below this, and a link this slow would stall any training
MIN_RATE_BPS = 100e3
# veth pairs here move a few Gbit/s at most; above this tbf shapes nothing
MAX_RATE_BPS = 40e9


def parse_rate(text: str, source: str = "--link") -> float:
    """Parse `"100Mbit"`, `"1.5Gbit"`, `"500kbit"` into bits per second.

    Args:
        text: the rate as written; units bit, kbit, Mbit, Gbit (SI, case-insensitive; `Mbps`
            and `Mbit/s` mean the same as `Mbit`, as in `rnnscope plan`).
        source: where the text came from, for the error message.
    """
    match = _RATE_RE.match(text)
    if match is None:
        raise UserError(
            f"{source} {text!r} is not a link rate; write a number and a unit, "
            f"for example 10Mbit, 100Mbit or 1Gbit"
        )
    number, unit = float(match.group(1)), match.group(2).lower()
    if unit not in _UNITS:
        raise UserError(
            f"{source} {text!r} has unit {match.group(2)!r}; a link rate is in bits per "
            f"second: use one of bit, kbit, Mbit, Gbit"
        )
    rate_bps = number * _UNITS[unit]
    if not MIN_RATE_BPS <= rate_bps <= MAX_RATE_BPS:
        raise UserError(
            f"{source} {text!r} = {format_rate(rate_bps)} is outside what the lab can shape; "
            f"choose between {format_rate(MIN_RATE_BPS)} and {format_rate(MAX_RATE_BPS)}"
        )
    return rate_bps


def parse_rates(text: str, source: str = "--sweep-link") -> list[float]:
    """Parse a comma-separated list of rates, in the order given, without duplicates."""
    rates: list[float] = []
    for part in text.split(","):
        if not part.strip():
            raise UserError(f"{source} {text!r} has an empty entry; write e.g. 10Mbit,100Mbit,1Gbit")
        rate_bps = parse_rate(part, source)
        if rate_bps in rates:
            raise UserError(f"{source} {text!r} lists {part.strip()} twice; give each rate once")
        rates.append(rate_bps)
    return rates


def format_rate(rate_bps: float) -> str:
    """`100e6` -> `"100Mbit"`, `1.5e9` -> `"1.5Gbit"` (the inverse of `parse_rate`)."""
    for unit, factor in (("Gbit", 1e9), ("Mbit", 1e6), ("kbit", 1e3)):
        if rate_bps >= factor:
            return f"{rate_bps / factor:g}{unit}"
    return f"{rate_bps:g}bit"
