"""How wide a cascade's "unsure" band should be: accuracy against the share of faces the
accurate net re-answers, on the validation split, with the two nets alone beside it.

    python benchmarks/cascade_margin.py FAST.onnx ACCURATE.onnx [--out docs/cascade_margin]

Each net is run once per image (and the accurate one also on the mirror image); every
cascade is then simulated from those probabilities: a face whose fast P(female) lies within
`margin` of 0.5 takes the accurate net's answer. Aligned frames (crop 1.0) and tight crops
(0.65) as in the evaluation; CelebA and UTKFace adults reported apart.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from facegender import manifest  # noqa: E402
from facegender.classifier import Classifier  # noqa: E402
from facegender.evaluate import predict_rows  # noqa: E402
from facegender.metrics import classification_metrics  # noqa: E402

MARGINS = [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5]


class Mirrored(Classifier):
    """The same model answering for each face's mirror image."""

    def predict(self, faces, flip=False):
        return super().predict(faces[:, :, ::-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("fast")
    ap.add_argument("accurate")
    ap.add_argument("--manifest", default=str(ROOT / "manifests" / "val.csv"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "cascade_margin"), help="writes OUT.json and OUT.png")
    a = ap.parse_args()

    rows = manifest.read(a.manifest)
    groups = {"celeba": np.array([r.source.startswith("celeba") for r in rows]),
              "utkface 18+": np.array([r.source == "utkface" and bool(r.age) and int(r.age) >= 18 for r in rows])}
    y = np.array([r.label for r in rows])
    fast, accurate, mirrored = Classifier(a.fast), Classifier(a.accurate), Mirrored(a.accurate)
    table = []
    for crop in (1.0, 0.65):
        pf = predict_rows(rows, fast, crop)[0]
        pa = predict_rows(rows, accurate, crop)[0]
        pa_flip = (pa + predict_rows(rows, mirrored, crop)[0]) / 2
        variants = {"fast alone": (pf, 1.0, 0.0), "accurate alone": (pa, 0.0, 1.0)}
        for m in MARGINS:
            unsure = np.abs(pf - 0.5) < m
            variants[f"cascade {m:.2f}"] = (np.where(unsure, pa, pf), 1.0, unsure.mean())
            variants[f"cascade {m:.2f} + mirror"] = (np.where(unsure, pa_flip, pf), 1.0, 2 * unsure.mean())
        for name, (p, fast_runs, accurate_runs) in variants.items():
            row = {"crop": crop, "system": name, "fast_runs": fast_runs, "accurate_runs": round(float(accurate_runs), 4)}
            for g, mask in groups.items():
                m = classification_metrics(y[mask], p[mask])
                row[g] = round(m["accuracy"], 4)
                row[g + " balanced"] = round(m["balanced_accuracy"], 4)
            table.append(row)
    print(f"{'crop':>4} {'system':24} {'acc. net runs':>13} {'CelebA':>7} {'(bal.)':>7} {'UTK 18+':>8} {'(bal.)':>7}")
    for r in table:
        print(f"{r['crop']:>4} {r['system']:24} {r['accurate_runs']:>13.3f} {r['celeba']:>7.4f} {r['celeba balanced']:>7.4f} "
              f"{r['utkface 18+']:>8.4f} {r['utkface 18+ balanced']:>7.4f}")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out + ".json").write_text(json.dumps(table, indent=1))
    plot(table, Path(a.out + ".png"))


def plot(table: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=False)
    for ax, group in zip(axes, ("celeba", "utkface 18+")):
        for crop, style in ((1.0, "-"), (0.65, "--")):
            for mirror, colour in ((False, "tab:blue"), (True, "tab:orange")):
                pts = [(r["accurate_runs"], r[group]) for r in table if r["crop"] == crop and r["system"].startswith("cascade")
                       and r["system"].endswith("+ mirror") == mirror]
                ax.plot(*zip(*pts), style, marker=".", color=colour,
                        label=f"crop {crop}{' + mirror' if mirror else ''}")
            ref = next(r for r in table if r["crop"] == crop and r["system"] == "accurate alone")
            ax.axhline(ref[group], color="grey", ls=style, lw=0.8)
        ax.set_xlabel("accurate-net runs per face (its cost share)")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{group} validation (grey: accurate net alone)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
