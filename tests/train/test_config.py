"""Config: defaults, TOML then overrides, refusals that name the key and the closest valid one."""

from __future__ import annotations

import pytest

from rnnscope.errors import UserError
from rnnscope.train.config import Config, all_keys, iter_fields, load_config, parse_overrides, to_toml


def test_defaults_are_the_chapters_setting():
    cfg = load_config()
    assert (cfg.model.activation, cfg.optim.name, cfg.data.task) == ("sigmoid", "sgd", "sine")
    assert cfg.parallel.strategy == "none" and cfg.parallel.nproc == 1 and cfg.parallel.bucket_mb == 25.0
    assert cfg.diagnostics.every == 0 and cfg.diagnostics.epsilon == 1e-3


def test_every_field_has_a_description():
    for section, name, _, _, help, _ in iter_fields():
        assert help and len(help) > 10, f"{section}.{name}"


def test_toml_then_overrides(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[model]\nhidden = 8\nlayers = 2\n[optim]\nlr = 1\n[data]\ncolumn = ["a", "b"]\n')
    cfg = load_config(path, ["--model.hidden", "12", "--data.target=c,d", "--train.progress", "false"])
    assert cfg.model.hidden == 12 and cfg.model.layers == 2  # the override wins, the file stays
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)  # an int where a float goes
    assert cfg.data.column == ["a", "b"] and cfg.data.target == ["c", "d"]
    assert cfg.train.progress is False


def test_resolved_toml_loads_back_to_the_same_config(tmp_path):
    cfg = load_config(None, ["--data.csv", 'C:\\x "y".csv', "--data.column", "a,b", "--optim.lr", "1e-05"])
    path = tmp_path / "config.toml"
    path.write_text(to_toml(cfg))
    assert load_config(path) == cfg


@pytest.mark.parametrize("override, expected", [
    (["--model.hiden", "3"], "did you mean model.hidden"),
    (["--optim.learning_rate", "3"], "did you mean optim.lr"),
    (["--trian.epochs", "3"], "did you mean train.epochs"),
])
def test_unknown_key_names_the_closest(override, expected):
    with pytest.raises(UserError, match=expected):
        load_config(None, override)


def test_unknown_key_in_toml_names_file_and_closest(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[optim]\nlearningrate = 0.1\n")
    with pytest.raises(UserError, match=r"optim\.learningrate.*bad\.toml.*did you mean optim\.lr"):
        load_config(path)


@pytest.mark.parametrize("toml, key", [
    ('[model]\nhidden = "big"\n', "model.hidden"),
    ("[train]\nprogress = 1\n", "train.progress"),
    ("[data]\ncolumn = 3\n", "data.column"),
])
def test_wrong_type_in_toml_is_refused(tmp_path, toml, key):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(UserError, match=key):
        load_config(path)


def test_wrong_type_override_names_the_key():
    with pytest.raises(UserError, match=r"model\.hidden.*must be int.*'x'"):
        load_config(None, ["--model.hidden", "x"])
    with pytest.raises(UserError, match=r"train\.progress.*must be bool"):
        load_config(None, ["--train.progress", "maybe"])


@pytest.mark.parametrize("override, message", [
    (["--model.hidden", "0"], "model.hidden must be ≥ 1, got 0"),
    (["--model.activation", "softmax"], "must be one of sigmoid, tanh, relu"),
    (["--optim.lr", "0"], "optim.lr must be > 0"),
    (["--optim.lr", "nan"], "finite"),
    (["--data.val_fraction", "1"], "val_fraction"),
    (["--train.tbptt_k1", "4", "--train.tbptt_k2", "6"], r"try 4 or 8"),
    (["--train.tbptt_k2", "6"], "needs --train.tbptt_k1"),
    (["--train.epochs", "0"], "both 0"),
    (["--model.cell", "lstm", "--model.activation", "tanh"], "activation tanh is for --model.cell elman"),
])
def test_values_out_of_range_are_refused(override, message):
    with pytest.raises(UserError, match=message):
        load_config(None, override)


def test_missing_and_broken_config_files(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    (tmp_path / "broken.toml").write_text("[model\n")
    with pytest.raises(UserError, match="not valid TOML"):
        load_config(tmp_path / "broken.toml")


def test_parse_overrides_forms_and_errors():
    assert parse_overrides(["--a.b", "1", "--c.d=x=y", "--e.f", "u", "v"]) == [
        ("a.b", "1"), ("c.d", "x=y"), ("e.f", "u,v")]
    with pytest.raises(UserError, match="has no value"):
        parse_overrides(["--a.b"])
    with pytest.raises(UserError, match="expected an override"):
        parse_overrides(["a.b", "1"])


def test_all_keys_cover_every_section():
    sections = {key.split(".")[0] for key in all_keys()}
    assert sections == {"model", "data", "optim", "train", "parallel", "diagnostics"}
    assert Config().parallel.check_every == 50
