"""The public API (`import facegender`): docs/architecture.md's example runs as written, on
real face crops and a group photo, and importing the package does no work."""
import os
import re
import shutil
import subprocess
import sys

import pytest
from PIL import Image

import facegender

from .conftest import ROOT, real_images
from .test_detect import shipped


def example() -> str:
    text = (ROOT / "docs" / "architecture.md").read_text()
    return re.search(r"```python\n(.*?)```", text, re.S)[1]


def test_the_architecture_example_runs_as_written(tmp_path, monkeypatch, capsys):
    female, male = real_images("celeba-89x109", "female", 1)[0], real_images("celeba-89x109", "male", 1)[0]
    shutil.copy(female, tmp_path / "face.jpg")
    shutil.copy(male, tmp_path / "other.jpg")
    Image.open(shipped("insightface", "data/images/t1.jpg")).save(tmp_path / "group.jpg")  # six people
    (tmp_path / "photos").mkdir()
    for p in (female, male):
        shutil.copy(p, tmp_path / "photos" / p.name)
    monkeypatch.chdir(tmp_path)
    names: dict = {}
    exec(compile(example(), "docs/architecture.md", "exec"), names)
    assert names["crop"]["gender"] == "female" and 0.5 < names["crop"]["probability"] <= 1
    assert [c["gender"] for c in names["crops"]] == ["female", "male"]
    assert abs(names["crops"][0]["p_female"] - names["crop"]["p_female"]) < 1e-4  # one call or many: one answer
    assert len(names["faces"]) == 6 and all(len(f["box"]) == 4 for f in names["faces"])
    assert (names["summary"].inputs, names["summary"].classified, names["summary"].exit_code) == (2, 2, 0)
    assert (tmp_path / "results.json").exists()
    assert capsys.readouterr().out.splitlines()[-1] == "2 of 2 classified"


def test_a_bad_crop_is_its_own_error_record():
    records = facegender.classify_crops([b"not an image", real_images("utkface", "male", 1)[0]])
    assert records[0]["error"] == "not_an_image" and records[1]["gender"] in ("male", "female")


def test_importing_facegender_does_no_work():
    code = ("import sys, facegender; heavy = {'numpy', 'onnxruntime', 'PIL', 'facegender.api'} & set(sys.modules); "
            "assert not heavy, heavy; facegender.ModelError; assert 'facegender.api' not in sys.modules")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONWARNINGS": "error"})
    assert r.returncode == 0, r.stderr


def test_every_public_name_resolves_and_others_are_attribute_errors():
    import pkgutil

    for name in facegender.__all__:
        assert getattr(facegender, name).__name__ == ("predict" if name == "classify" else name)
    submodules = {m.name for m in pkgutil.iter_modules(facegender.__path__)}
    assert not submodules & set(facegender.__all__)  # importing facegender.X would replace the name X
    assert set(facegender.__all__) <= set(dir(facegender))
    with pytest.raises(AttributeError):
        facegender.no_such_name
    from facegender import manifest  # submodules still import through the package
    assert manifest.CLASSES == ("male", "female")
