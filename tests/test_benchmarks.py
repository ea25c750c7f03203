"""The benchmarks run end to end on tiny inputs, so they cannot rot (CI times nothing)."""
import json
import subprocess
import sys

from .conftest import ROOT, SAMPLE


def test_throughput_benchmark_runs(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--manifest", str(SAMPLE), "--images", "24",
                        "--baseline-images", "4", "--memory-images", "60", "--peer-python", "/nonexistent",
                        "--out", str(tmp_path / "t.json")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = json.loads((tmp_path / "t.json").read_text())["rows"]
    assert [row["images"] for row in rows] == [24, 4, 1, 60]
    assert all(row["images_per_s"] > 0 and row["peak_mb"] > 0 for row in rows)
    assert rows[0]["accuracy"] is not None and "x base" in r.stdout


def test_detection_benchmark_runs(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "detection.py"), "--manifest", str(SAMPLE), "--per-source", "6",
                        "--speed-photos", "3", "--out", str(tmp_path / "d.json")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads((tmp_path / "d.json").read_text())
    assert report["celeba"]["photos"] == 6 and 0 <= report["celeba"]["detection_rate"] <= 1
    assert report["speed_640x480_photos_per_s"] > 0
