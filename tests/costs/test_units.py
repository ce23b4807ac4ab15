"""Parsing link rates, latencies and worker lists; clear errors for bad units."""

import pytest

from rnnscope.errors import UserError
from rnnscope.costs.units import (
    format_bandwidth, format_bytes, format_seconds, parse_bandwidth, parse_duration,
    parse_int_list,
)


@pytest.mark.parametrize("text, bytes_per_s", [
    ("400Gbit", 50e9), ("400Gbit/s", 50e9), ("400 Gb/s", 50e9), ("100Mbit", 12.5e6),
    ("100mbps", 12.5e6), ("900GB/s", 900e9), ("1GiB/s", 2**30), ("1.5e3Mbit", 187.5e6),
])
def test_bandwidths(text, bytes_per_s):
    assert parse_bandwidth(text) == pytest.approx(bytes_per_s)


@pytest.mark.parametrize("text, seconds", [("5us", 5e-6), ("5µs", 5e-6), ("1.5ms", 1.5e-3),
                                           ("200ns", 2e-7), ("2s", 2.0)])
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text, match", [
    ("400", "not a number with a unit"),
    ("400GB", "is a size, not a rate; write GB/s"),
    ("400Gbyte", "unknown unit 'Gbyte'"),
    ("0Gbit", "must be a bandwidth > 0"),
])
def test_bad_bandwidths_name_the_flag_and_fix(text, match):
    with pytest.raises(UserError, match=match) as err:
        parse_bandwidth(text, "--link")
    assert "--link" in str(err.value)


def test_bad_duration_and_worker_list():
    with pytest.raises(UserError, match="unknown unit 'sec'; use one of ns, us"):
        parse_duration("5sec", "--latency")
    with pytest.raises(UserError, match="'0' is not a whole number"):
        parse_int_list("8,0,64")
    assert parse_int_list(" 8, 64 ,4096") == [8, 64, 4096]


def test_formats_round_trip_readably():
    assert format_bandwidth(50e9) == "400 Gbit/s"
    assert format_bytes(1536) == "1.54 kB"
    assert format_seconds(0.0123) == "12.3 ms"
    assert format_seconds(5e-6) == "5 µs"
