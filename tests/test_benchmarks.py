"""The benchmarks run end to end on tiny inputs, so they cannot rot (CI times nothing); as modules,
`python -m benchmarks.NAME` from the repository root, the way their docstrings say."""
import json
import subprocess
import sys

from facegender.classifier import has_vnni

from .conftest import ROOT, SAMPLE


def test_throughput_benchmark_runs(tmp_path):
    r = subprocess.run([sys.executable, "-m", "benchmarks.throughput", "--manifest", str(SAMPLE), "--images", "24",
                        "--baseline-images", "4", "--memory-images", "60", "--peer-python", "/nonexistent",
                        "--out", str(tmp_path / "t.json")], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = json.loads((tmp_path / "t.json").read_text())["rows"]
    assert [row["images"] for row in rows] == [24, 24, 24, 4, 1, 60]  # auto, float, int8, ResNet50, cold, memory
    assert all(row["images_per_s"] > 0 and row["peak_mb"] > 0 for row in rows)
    assert 0.75 < rows[0]["accuracy"] <= 1 and "x base" in r.stdout  # the shipped model on 24 validation crops
    assert set(rows[0]["stages"]) >= {"decode", "classify", "write"} and rows[0]["cores_busy"] > 0.2
    assert "avx2" in r.stdout.split("machine:")[1].splitlines()[0] or "no AVX2" in r.stdout  # the CPU's SIMD flags


def test_detection_benchmark_runs(tmp_path):
    r = subprocess.run([sys.executable, "-m", "benchmarks.detection", "--manifest", str(SAMPLE), "--per-source", "3",
                        "--photos", "2", "--big", "1", "--groups", "1", "--peer-python", "/nonexistent",
                        "--out", str(tmp_path / "d.json")], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads((tmp_path / "d.json").read_text())
    portraits = report["portraits 250x250"]
    float_too = {"facegender scrfd float"} if has_vnni() else set()  # auto ran int8 there: float beside it
    assert set(portraits) == {"facegender scrfd", "facegender mtcnn"} | float_too
    assert portraits["facegender scrfd"]["photos"] == 6 and portraits["facegender scrfd"]["found"] >= 5 / 6
    assert report["group 1280x960"]["facegender mtcnn"]["faces"] == 6
    wide = report["group 1280x960"]["facegender scrfd side 1280 20px"]  # the seeded group of six, searched wide
    assert wide["found"] == 1 and wide["false_detections"] == 0
    assert all(s["photos_per_s"] > 0 for s in report["4000x3000"].values())


def test_mirror_margin_benchmark_runs(tmp_path):
    import torch

    from facegender import manifest
    from facegender.training import models
    from facegender.training.export import export

    manifest.write(tmp_path / "m.csv", manifest.read(SAMPLE)[::25])  # 40 faces, both data sets
    net = models.get("mobilenet_v2").build(pretrained=True)
    torch.save({"model": net.state_dict(), "model_name": "mobilenet_v2", "width": 80, "height": 96,
                "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}, tmp_path / "c.pt")
    export(str(tmp_path / "c.pt"), str(tmp_path / "plain.onnx"))
    r = subprocess.run([sys.executable, "-m", "benchmarks.mirror_margin", str(tmp_path / "plain.onnx"),
                        "--manifest", str(tmp_path / "m.csv"), "--out", str(tmp_path / "mm")],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    table = json.loads((tmp_path / "mm.json").read_text())
    assert {row["system"] for row in table} >= {"plain", "mirror, every face", "mirror when unsure, 0.15"}
    for crop in (1.0, 0.65):
        shares = {row["system"]: row["second_passes"] for row in table if row["crop"] == crop}
        assert shares.pop("plain") == 0 and shares.pop("mirror, every face") == 1
        assert list(shares.values()) == sorted(shares.values())  # a wider unsure band: more second passes
    assert (tmp_path / "mm.png").stat().st_size > 0


def test_crop_tightness_benchmark_runs(tmp_path):
    r = subprocess.run([sys.executable, "-m", "benchmarks.crop_tightness", "--manifest", str(SAMPLE),
                        "--per-group", "12", "--fractions", "1.0", "0.6", "--out", str(tmp_path / "ct")],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads((tmp_path / "ct.json").read_text())
    assert report["images"] == {"celeba": 12, "utkface 18+": 12}
    accs = report["accuracy"]["facegender-default"]
    assert all(len(v) == 2 and v[0] > 0.7 for v in accs.values())  # the shipped model on the frames it knows
    assert (tmp_path / "ct.png").stat().st_size > 0


def test_crop_size_benchmark_runs():
    from facegender.classifier import DEFAULT_MODEL
    r = subprocess.run([sys.executable, "-m", "benchmarks.crop_size", str(DEFAULT_MODEL), "--manifest", str(SAMPLE),
                        "--images", "40"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    last = r.stdout.strip().splitlines()[-1].split()
    assert last[:2] == ["all", "40"] and 0.5 < float(last[2]) <= 1.0


def test_int8_fidelity_benchmark_runs(tmp_path):
    r = subprocess.run([sys.executable, "-m", "benchmarks.int8", "--manifest", str(SAMPLE),
                        "--out", str(tmp_path / "i.json")], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads((tmp_path / "i.json").read_text())
    assert set(report["crops"]) == {"1.0", "0.65"}  # aligned and tight
    everyone = report["crops"]["0.65"]["all"]
    assert everyone["faces"] == 1000 and everyone["changed_side"]["float"] == 0
    assert set(everyone["accuracy"]) == {"float", "int8, this CPU", "int8, exact"}
    assert all(0.9 < acc <= 1 for acc in everyone["accuracy"].values()) and "worst source" in r.stdout


def test_compare_models_benchmark_runs(tmp_path):
    shipped = ROOT / "src" / "facegender" / "weights"
    r = subprocess.run([sys.executable, "-m", "benchmarks.compare_models",
                        f"f={shipped / 'facegender-default.onnx'}", f"q={shipped / 'facegender-default.int8.onnx'}",
                        "--manifest", str(SAMPLE), "--out", str(tmp_path / "c.txt")],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = (tmp_path / "c.txt").read_text().splitlines()
    assert lines[0].startswith("1000 validation images") and [line.split()[0] for line in lines[2:]] == ["f", "q"]
