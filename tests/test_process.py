"""The main job, through its real entry points, with the shipped model."""
import json
import subprocess
import sys

import numpy as np
from PIL import Image

import facegender.api as fg
from facegender.engines.local import process_folder
from facegender.evaluate import evaluate
from facegender.options import ProcessOptions

from .conftest import ROOT, SAMPLE


def run_process_py(folder, cwd, *args):
    return subprocess.run([sys.executable, str(ROOT / "process.py"), str(folder), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_process_py_writes_the_original_format(face_folder, tmp_path):
    r = run_process_py(face_folder, tmp_path)
    assert r.returncode == 0, r.stderr
    results = json.loads((tmp_path / "process_results.json").read_text())
    assert isinstance(results, dict)
    assert sorted(results) == sorted(p.name for p in face_folder.iterdir())
    assert set(results.values()) <= {"male", "female"}
    truth = {p.name: _true_gender(p.name) for p in face_folder.iterdir()}
    assert sum(results[n] == g for n, g in truth.items()) >= 0.9 * len(truth)


def _true_gender(name):
    from .conftest import DATA
    return next(g for g in ("male", "female") for s in ("celeba-89x109", "utkface") if (DATA / s / g / name).exists())


def test_shipped_model_scores_at_least_95_percent_on_1000_fixed_images():
    report = evaluate(str(SAMPLE))
    assert report["overall"]["count"] == 1000
    assert report["overall"]["accuracy"] >= 0.95, report["overall"]


def test_several_models_are_evaluated_from_one_decode_each(monkeypatch):
    """`evaluate --model A --model B` decodes each image once for both, with the answers
    each model gives alone."""
    import facegender.evaluate as ev
    from facegender.classifier import DEFAULT_INT8, DEFAULT_MODEL
    alone = [ev.evaluate(str(SAMPLE), str(m), limit=60)["_p"] for m in (DEFAULT_MODEL, DEFAULT_INT8)]
    decodes = []
    real = ev.load_frame
    monkeypatch.setattr(ev, "load_frame", lambda *a, **k: decodes.append(a) or real(*a, **k))
    together = ev.evaluate_models(str(SAMPLE), [str(DEFAULT_MODEL), str(DEFAULT_INT8)], limit=60)
    assert len(decodes) == 60 and all(np.array_equal(r["_p"], p) for r, p in zip(together, alone))
    assert together[0]["model"] != together[1]["model"]


def test_details_carry_probabilities(face_folder, tmp_path):
    r = run_process_py(face_folder, tmp_path, "--details", "d.json", "-o", "out.json")
    assert r.returncode == 0, r.stderr
    details = json.loads((tmp_path / "d.json").read_text())
    results = json.loads((tmp_path / "out.json").read_text())
    for name, entry in details["files"].items():
        assert entry["gender"] == results[name]
        p = entry["p_female"]  # the probability is that of the answer given
        assert abs(entry["probability"] - max(p, 1 - p)) < 2e-6 and (p > 0.5) == (entry["gender"] == "female")
    assert details["summary"]["classified"] == len(results)


def test_batched_results_equal_unbatched(face_folder, tmp_path):
    outs = []
    for batch in (1, 64):
        opts = ProcessOptions(output=str(tmp_path / f"r{batch}.json"), details=str(tmp_path / f"d{batch}.json"),
                              batch_size=batch, progress=False)
        process_folder(face_folder, opts, fg.load_model())
        outs.append(json.loads((tmp_path / f"d{batch}.json").read_text())["files"])
    assert outs[0].keys() == outs[1].keys()
    for name in outs[0]:
        assert outs[0][name]["gender"] == outs[1][name]["gender"]
        assert abs(outs[0][name]["p_female"] - outs[1][name]["p_female"]) <= 1e-5


def test_python_api_takes_path_bytes_pil_and_array(face_folder):
    path = sorted(face_folder.iterdir())[0]
    img = Image.open(path)
    answers = [fg.predict(x) for x in (path, str(path), path.read_bytes(), img, np.asarray(img.convert("RGB")))]
    assert all(a == answers[0] for a in answers)
    assert answers[0]["gender"] in ("male", "female")
