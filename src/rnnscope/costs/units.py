"""Units as a network engineer writes them: `400Gbit`, `900GB/s`, `5us`, and back.

Bandwidths for the planner are in bytes per second (`parse_bandwidth`); link rates for `tc`
(the lab) in bits per second (`parse_rate`, `format_rate`: `100Mbit` <-> 1e8).
"""

from __future__ import annotations

import re

from rnnscope.errors import UserError

# bandwidth units -> bytes per second (SI: 1 Gbit = 10^9 bit; GiB = 2^30 B)
_BANDWIDTH: dict[str, float] = {
    "bit": 1 / 8, "kbit": 1e3 / 8, "mbit": 1e6 / 8, "gbit": 1e9 / 8, "tbit": 1e12 / 8,
    "bps": 1 / 8, "kbps": 1e3 / 8, "mbps": 1e6 / 8, "gbps": 1e9 / 8, "tbps": 1e12 / 8,
    "b/s": 1 / 8, "kb/s": 1e3 / 8, "mb/s": 1e6 / 8, "gb/s": 1e9 / 8, "tb/s": 1e12 / 8,
    "B/s": 1.0, "kB/s": 1e3, "KB/s": 1e3, "MB/s": 1e6, "GB/s": 1e9, "TB/s": 1e12,
    "KiB/s": 2**10, "MiB/s": 2**20, "GiB/s": 2**30, "TiB/s": 2**40,
}
_DURATION: dict[str, float] = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0}
# SI multipliers, as tc uses them for "kbit", "mbit", "gbit" (1 Mbit = 10^6 bit)
_RATE_UNITS: dict[str, float] = {"bit": 1.0, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9,
                                 "bps": 1.0, "kbps": 1e3, "mbps": 1e6, "gbps": 1e9}
_RATE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-z]+)(/s)?\s*$", re.IGNORECASE)
_NUMBER_UNIT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([A-Za-zµ/]+)\s*$")


def _split(text: str, source: str, example: str) -> tuple[float, str]:
    match = _NUMBER_UNIT.match(str(text))
    if match is None:
        raise UserError(f"{source} {text!r} is not a number with a unit; write e.g. {example}")
    return float(match.group(1)), match.group(2)


def parse_bandwidth(text: str, source: str = "--link") -> float:
    """`"400Gbit"` -> 5e10 bytes/s. Bits: bit, kbit, Mbit, Gbit, Tbit (also Gb/s, Gbps);
    bytes: B/s, MB/s, GB/s, TB/s (SI) and MiB/s, GiB/s (binary)."""
    number, unit = _split(text, source, "400Gbit or 900GB/s")
    unit = unit[:-2] if unit.lower().endswith("it/s") else unit  # "Gbit/s" -> "Gbit"
    if unit in ("B", "kB", "KB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB"):
        raise UserError(f"{source} {text!r} is a size, not a rate; write {unit}/s "
                        f"(bytes per second) or {unit[0]}bit (bits per second)")
    factor = _BANDWIDTH.get(unit)
    if factor is None and "B" not in unit:  # bits: case does not matter (Gbit, gbit, GBIT)
        factor = _BANDWIDTH.get(unit.lower())
    if factor is None:
        raise UserError(f"{source} {text!r} has unknown unit {unit!r}; use bits (Mbit, Gbit, "
                        f"Tbit) or bytes per second (MB/s, GB/s, GiB/s)")
    if number <= 0:
        raise UserError(f"{source} {text!r} must be a bandwidth > 0")
    return number * factor


def parse_duration(text: str, source: str = "--latency") -> float:
    """`"5us"` -> 5e-6 seconds. Units ns, us (µs), ms, s."""
    number, unit = _split(text, source, "5us or 1.5ms")
    if unit not in _DURATION:
        raise UserError(f"{source} {text!r} has unknown unit {unit!r}; use one of "
                        f"{', '.join(_DURATION)}")
    return number * _DURATION[unit]


def parse_int_list(text: str, source: str = "--workers") -> list[int]:
    """`"8,64,512"` -> [8, 64, 512]; every entry a whole number ≥ 1, in the order given."""
    values: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part.isdigit() or int(part) < 1:
            raise UserError(f"{source} {text!r}: {part!r} is not a whole number ≥ 1; "
                            f"write e.g. 8,64,512,4096")
        values.append(int(part))
    return values


def format_bytes(n: float) -> str:
    """1536 -> `"1.54 kB"` (SI, as network rates are)."""
    for unit, factor in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= factor:
            return f"{n / factor:.3g} {unit}"
    return f"{n:.0f} B"


def format_seconds(s: float) -> str:
    """0.0123 -> `"12.3 ms"`."""
    for unit, factor in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if abs(s) >= factor:
            return f"{s / factor:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def format_bandwidth(bytes_per_s: float) -> str:
    """5e10 -> `"400 Gbit/s"`."""
    bits = bytes_per_s * 8
    for unit, factor in (("Tbit/s", 1e12), ("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bits >= factor:
            return f"{bits / factor:.3g} {unit}"
    return f"{bits:.3g} bit/s"


def format_percent(x: float) -> str:
    """0.994 -> `"99%"`, 0.0012 -> `"0.12%"`: small shares keep two significant digits."""
    return f"{x:.0%}" if x >= 0.1 else f"{100 * x:.2g}%"


def parse_rate(text: str, source: str = "--link",
               limits: tuple[float, float] | None = None) -> float:
    """Parse `"100Mbit"`, `"1.5Gbit"`, `"500kbit"` into bits per second.

    Args:
        text: the rate as written; units bit, kbit, Mbit, Gbit (SI, case-insensitive; `Mbps`
            and `Mbit/s` mean the same as `Mbit`).
        source: where the text came from, for the error message.
        limits: (lowest, highest) bits per second the caller can use, checked when given.
    """
    match = _RATE_RE.match(text)
    if match is None:
        raise UserError(
            f"{source} {text!r} is not a link rate; write a number and a unit, "
            f"for example 10Mbit, 100Mbit or 1Gbit"
        )
    number, unit = float(match.group(1)), match.group(2).lower()
    if unit not in _RATE_UNITS:
        raise UserError(
            f"{source} {text!r} has unit {match.group(2)!r}; a link rate is in bits per "
            f"second: use one of bit, kbit, Mbit, Gbit"
        )
    rate_bps = number * _RATE_UNITS[unit]
    if limits is not None and not limits[0] <= rate_bps <= limits[1]:
        raise UserError(
            f"{source} {text!r} = {format_rate(rate_bps)} is outside what the lab can shape; "
            f"choose between {format_rate(limits[0])} and {format_rate(limits[1])}"
        )
    return rate_bps


def parse_rates(text: str, source: str = "--sweep-link",
                limits: tuple[float, float] | None = None) -> list[float]:
    """Parse a comma-separated list of rates, in the order given, without duplicates."""
    rates: list[float] = []
    for part in text.split(","):
        if not part.strip():
            raise UserError(f"{source} {text!r} has an empty entry; write e.g. 10Mbit,100Mbit,1Gbit")
        rate_bps = parse_rate(part, source, limits)
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
