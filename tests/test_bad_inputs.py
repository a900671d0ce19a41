"""Every kind of bad (or merely unusual) input, through the real API and through the CLI."""

from __future__ import annotations

import re

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

import app
from cartoon.explorer import CONTROL_NAMES, DEFAULT_VALUES
from cartoon.__main__ import main as cli
from tests.app_server import running_app
from tests.bad_inputs import catalogue

CASES = catalogue()
GOOD = app.EXAMPLES_DIR / "chelsea-the-cat.jpg"
PARAMS = [DEFAULT_VALUES[name] for name in CONTROL_NAMES]


def test_catalogue_is_large_enough():
    assert len(CASES) >= 30
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.fixture(scope="module")
def client():
    with pytest.MonkeyPatch.context() as monkeypatch, running_app(monkeypatch) as url:
        yield Client(url, verbose=False)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_api_answers_every_input_and_keeps_serving(client, tmp_path, case):
    path = tmp_path / case.filename
    path.write_bytes(case.data)
    if case.expect == "ok":
        out = np.asarray(Image.open(client.predict(handle_file(str(path)), api_name="/cartoonize")))
        assert out.shape == (*case.size, 3)
        views = client.predict(handle_file(str(path)), *PARAMS, api_name="/representations")
        assert all(np.asarray(Image.open(v)).ndim == 3 for v in views)
    else:
        with pytest.raises(Exception, match=case.expect) as error:
            client.predict(handle_file(str(path)), api_name="/cartoonize")
        assert "Traceback" not in str(error.value)
    # The server is still there for the next person.
    assert np.asarray(Image.open(client.predict(handle_file(str(GOOD)), api_name="/cartoonize"))).ndim == 3


@pytest.mark.parametrize(
    "name,value,match",
    [("radius", -1, "radius"), ("radius", 10_000, "radius"), ("radius", 2.5e9, "radius"), ("radius", 2.5, "radius"),
     ("eps", 0, "eps"), ("eps", -0.5, "eps"), ("scale", -3, "scale"), ("sigma", 99, "sigma"), ("min_size", 0, "min_size"),
     ("min_size", 1e300, "min_size"), ("n_segments", 0, "n_segments"), ("n_segments", 1e9, "n_segments"),
     ("merge_to", -1, "merge_to"), ("red", -5, "colour-shift"), ("surface_weight", -1, "surface_weight"),
     ("texture_weight", "lots", "texture_weight"), ("algorithm", "../../etc/passwd", "segmentation"), ("eps", "abc", "eps"),
     ("radius", None, "radius"), ("algorithm", 3, "segmentation")],
)
def test_api_rejects_bad_parameters_clearly(client, name, value, match):
    params = list(PARAMS)
    params[CONTROL_NAMES.index(name)] = value
    with pytest.raises(Exception, match=match):
        client.predict(handle_file(str(GOOD)), *params, api_name="/representations")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_inf_slider_values_are_refused(value):
    # JSON cannot carry them from gradio_client, so the handler is called as the server would call it.
    params = list(PARAMS)
    params[CONTROL_NAMES.index("eps")] = value
    with pytest.raises(app.gr.Error, match="eps must be a number in"):
        app.representations({"path": str(GOOD)}, *params)


def test_no_photo_is_a_clear_message():
    with pytest.raises(app.gr.Error, match="Upload a photo first"):
        app.cartoonize(None)


def test_cli_reports_and_skips_bad_files(tmp_path, tiny_checkpoint, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for case in CASES:
        (folder / case.filename).write_bytes(case.data)
    paths = [str(folder / case.filename) for case in CASES]
    code = cli([*paths, "-o", str(tmp_path / "out"), "--model", str(tiny_checkpoint), "--device", "cpu"])
    err = capsys.readouterr().err
    bad = [case for case in CASES if case.expect != "ok"]
    assert code == 1
    assert f"{len(CASES) - len(bad)} of {len(CASES)} files" in err
    for case in bad:
        assert re.search(rf"skipped .*{re.escape(case.filename)}: .*({case.expect})", err), case.name
    for case in CASES:
        if case.expect == "ok":
            stem = case.filename.rsplit(".", 1)[0]
            assert np.asarray(Image.open(tmp_path / "out" / f"{stem}.png")).shape == (*case.size, 3), case.name
