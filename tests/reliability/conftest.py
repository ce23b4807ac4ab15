"""Every process a reliability test starts keeps its temporary files in a directory of the test's
own: a launcher killed with SIGKILL cannot remove its torchrun agent's directory
(`rnnscope-torchrun-*`), which would otherwise stay behind in the machine's /tmp."""

import pytest


@pytest.fixture(autouse=True)
def own_tmpdir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path_factory.mktemp("tmpdir")))
