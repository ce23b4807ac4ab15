"""Property: any CSV content either becomes finite windows or gets one UserError line, never a
traceback of another kind (hypothesis generates the files)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnscope.data import build_dataset
from rnnscope.errors import UserError
from rnnscope.train.config import load_config

cells = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-10**6, 10**6).map(str),
    st.sampled_from(["", "n/a", "NA", "0x10", "1 000", "abc", "1e400", "-1e308", "2020-01-01", "=A1", '"q"']),
)
names = st.sampled_from(["a", "b", "date", "1", "=x", " v ", "2020-01-01", ""])


@st.composite
def csv_text(draw) -> str:
    header = draw(st.lists(names, min_size=1, max_size=3))
    rows = draw(st.lists(st.lists(cells, min_size=len(header), max_size=len(header) + (draw(st.booleans()) and 1)),
                         min_size=0, max_size=30))
    return "\n".join([",".join(header)] + [",".join(r) for r in rows]) + "\n"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=csv_text(), missing=st.sampled_from(["error", "ffill", "interpolate", "mask", "drop"]),
       difference=st.sampled_from(["0", "1"]))
def test_any_csv_gives_finite_windows_or_one_line(tmp_path, text, missing, difference):
    path = tmp_path / "f.csv"
    path.write_text(text)
    cfg = load_config(None, ["--data.csv", str(path), "--data.seq_len", "2", "--data.missing", missing,
                             "--data.difference", difference])
    try:
        ds = build_dataset(cfg.data, 0)
    except UserError as exc:
        assert "\n" not in str(exc) and str(exc)
        return
    for x in (ds.x_train, ds.x_val, ds.x_test):
        assert np.isfinite(x.numpy()).all()
    assert not np.isinf(ds.y_train.numpy()).any()
