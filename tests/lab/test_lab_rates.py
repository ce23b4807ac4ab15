"""Link rates: what users write, what tc gets, and clear refusals."""

import pytest

from rnnscope.errors import UserError
from rnnscope.costs.units import format_rate, parse_rate, parse_rates
from rnnscope.lab.netns import LINK_RATE_LIMITS


@pytest.mark.parametrize(("text", "bps"), [
    ("100Mbit", 100e6), ("1Gbit", 1e9), ("1.5gbit", 1.5e9), ("500kbit", 500e3),
    ("10 Mbit/s", 10e6), ("250000bit", 250e3), ("100Mbps", 100e6),
])
def test_parse_rate_reads_si_bit_units(text, bps):
    assert parse_rate(text) == bps


@pytest.mark.parametrize(("text", "needle"), [
    ("fast", "is not a link rate"), ("100MB/s", "bits per"), ("100MB", "unit 'MB'"),
    ("1bit", "outside what the lab can shape"), ("100Gbit", "outside"),
])
def test_parse_rate_refuses_with_the_value_and_the_fix(text, needle):
    with pytest.raises(UserError) as info:
        parse_rate(text, "--link", LINK_RATE_LIMITS)
    assert needle in str(info.value) and "--link" in str(info.value) and repr(text) in str(info.value)


def test_parse_rates_keeps_order_and_refuses_duplicates_and_gaps():
    assert parse_rates("10Mbit,100Mbit,1Gbit") == [10e6, 100e6, 1e9]
    with pytest.raises(UserError, match="twice"):
        parse_rates("10Mbit,10mbit")
    with pytest.raises(UserError, match="empty entry"):
        parse_rates("10Mbit,,1Gbit")


@pytest.mark.parametrize("bps", [10e6, 100e6, 1e9, 2.5e9, 500e3])
def test_format_rate_inverts_parse_rate(bps):
    assert parse_rate(format_rate(bps)) == bps
