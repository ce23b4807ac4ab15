"""Units as a network engineer writes them: `400Gbit`, `900GB/s`, `5us`, and back."""

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
