"""`rnnscope explain` end to end: tables, JSON, and one-line errors."""

import json

import pytest

from rnnscope.cli import main


def test_default_prints_every_quantity_the_chapter_names(capsys):
    assert main(["explain", "--epochs", "3"]) == 0
    out = capsys.readouterr().out
    for words in ("weighted sum", "prediction ŷ", "MSE", "output error", "error term", "Δw_h", "Δw_x",
                  "Accumulated", "updated weight", "Loss per epoch"):
        assert words in out, words


def test_json_has_the_same_numbers(capsys):
    assert main(["explain", "--json", "--sequence", "1,0.5,-0.5,0.8", "--time-reduction", "mean"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["setting"]["sequence"] == [1.0, 0.5, -0.5, 0.8]
    assert len(result["forward"]) == 4 and result["check"] <= 1e-12


def test_sigmoid_and_forgetting_topics(capsys):
    assert main(["explain", "sigmoid", "--json", "--z=-5,-2.2"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [row["z"] for row in rows] == [-5.0, -2.2]
    assert main(["explain", "forgetting", "--steps", "3", "--w-h", "1"]) == 0
    assert "Forgotten" in capsys.readouterr().out


@pytest.mark.parametrize("argv,words", [
    (["explain", "--hidden", "2", "--w-h", "3"], "--w-h"),
    (["explain", "--activation", "swish"], "swish"),
    (["explain", "forgetting", "--steps", "4", "--sequence", "1"], "--sequence"),
])
def test_mistakes_exit_2_with_one_line(argv, words, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1


def test_bad_number_list_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["explain", "--sequence", "1,x"])
    assert exc.value.code == 2
