"""The int8 graph against float on every validation source, in two arithmetics, same run.

    python benchmarks/int8.py [--manifest manifests/val.csv] [--out docs/evaluation/int8/fidelity.json]

"this CPU": ONNX Runtime's fused int8 kernels as they run here. On AVX2 without VNNI they
multiply u8 x s8 pairs into saturating 16-bit sums, so they can answer worse than the graph
is. "exact int8": the same graph with graph optimisations off, each QDQ pair run as written
(quantize, dequantize, float convolution): the int32 sums VNNI computes (avx512_vnni,
avx_vnni), the CPUs `--precision auto` gives int8 to. Figures are accuracy per source, the
net change in points against float, and the faces whose answer changes side, on the
aligned frames and on tight crops (65% of the frame). On a source of a few hundred faces one
face is 0.2-0.4 points: read the "moved" counts beside the points.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

from facegender import manifest  # noqa: E402
from facegender.classifier import DEFAULT_INT8, DEFAULT_MODEL, Classifier, has_vnni  # noqa: E402
from facegender.evaluate import predict_rows_with  # noqa: E402

LIMIT = 0.2  # points: the most int8 may lose on any source, aligned or tight (issue #25)
CROPS = (1.0, 0.65)  # the aligned frame, and tight crops as the original task's


def exact(clf: Classifier) -> Classifier:
    """The classifier with its graph run unfused: QDQ as written, int32-exact sums."""
    from facegender import runtime
    clf.session = runtime.session(clf.path, 1, optimize=False)
    return clf


def compare(rows, models: list, names: list[str], crop: float) -> dict:
    """Accuracy per source of each model, its change in points against float and the faces
    whose answer changes side, on frames cut to `crop`."""
    y = np.array([r.label for r in rows])
    source = np.array([r.source for r in rows])
    answers = dict(zip(names, predict_rows_with(rows, models, crop=crop)[0]))
    out = {}
    print(f"\ncrop {crop:g} ({'aligned frame' if crop == 1 else 'tight'}):")
    print(f"{'source':16} {'faces':>6} {'float':>7} " + " ".join(f"{n:>24}" for n in names[1:]))
    for g in ["all"] + sorted(set(source)):
        m = np.ones(len(y), bool) if g == "all" else source == g
        acc = {n: float(((p[m] >= 0.5) == y[m]).mean()) for n, p in answers.items()}
        flips = {n: int(((p[m] >= 0.5) != (answers["float"][m] >= 0.5)).sum()) for n, p in answers.items()}
        out[g] = {"faces": int(m.sum()), "accuracy": acc, "changed_side": flips}
        cells = [f"{acc[n]:.4f} ({(acc[n] - acc['float']) * 100:+.2f}, {flips[n]:>3} moved)" for n in names[1:]]
        print(f"{g:16} {int(m.sum()):>6} {acc['float']:>7.4f} " + " ".join(f"{c:>24}" for c in cells))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--manifest", default=str(ROOT / "manifests" / "val.csv"))
    ap.add_argument("--float", default=str(DEFAULT_MODEL))
    ap.add_argument("--int8", default=str(DEFAULT_INT8))
    ap.add_argument("--out", help="write the figures as JSON here")
    a = ap.parse_args()

    rows = manifest.read(a.manifest)
    names = ["float", "int8, this CPU", "int8, exact"]
    models = [Classifier(a.float, threads=1), Classifier(a.int8, threads=1), exact(Classifier(a.int8, threads=1))]
    shown = os.path.relpath(a.manifest, ROOT)
    report = {"vnni_here": has_vnni(), "manifest": shown, "float": os.path.relpath(a.float, ROOT),
              "int8": os.path.relpath(a.int8, ROOT), "int8_float_nodes": models[1].meta.get("int8_float_nodes"), "crops": {}}
    print(f"{shown}: {len(rows)} faces; this CPU {'has' if has_vnni() else 'lacks'} VNNI; "
          f"float in the int8 graph: {report['int8_float_nodes']}")
    for crop in CROPS:
        report["crops"][str(crop)] = compare(rows, models, names, crop)
    worst = {n: min((s["accuracy"][n] - s["accuracy"]["float"]) * 100 for c in report["crops"].values() for s in c.values())
             for n in names[1:]}
    report["worst_loss_points"] = worst
    for n, w in worst.items():
        print(f"{n}: worst source {w:+.2f} points ({'within' if w >= -LIMIT else 'outside'} the {LIMIT} limit)")
    if a.out:
        Path(a.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
