"""`facegender evaluate`: a model's metrics on a manifest or class folders, overall and per
subgroup (source, age band, race, CelebA look), as JSON plus a Markdown report with plots."""
from __future__ import annotations

import os
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import manifest, occlusion
from .classifier import Classifier
from .images import ImageError
from .looks import look
from .manifest import CLASSES, load_frame
from .metrics import best_threshold, classification_metrics
from .results import write_json_atomic

RACES = {"0": "White", "1": "Black", "2": "Asian", "3": "Indian", "4": "Other"}
AGE_BANDS = [(0, 12, "0-12"), (13, 17, "13-17"), (18, 29, "18-29"), (30, 44, "30-44"), (45, 59, "45-59"), (60, 200, "60+")]


def load_rows(data: str, limit: int = 0, seed: int = 0) -> list[manifest.Row]:
    if os.path.isdir(data):
        from collections import Counter

        from .folders import scan
        rows = [r for r, _ in scan(Path(data), Counter())]
    else:
        rows = manifest.read(data)
    if limit and limit < len(rows):
        rows = sorted(random.Random(seed).sample(rows, limit), key=lambda r: r.path)
    return rows


POPULATIONS = {  # the two face populations the benchmarks report, as row predicates
    "celeba": lambda r: r.source.startswith("celeba"),
    "utkface 18+": lambda r: r.source == "utkface" and bool(r.age) and int(r.age) >= 18,
}


def population_masks(rows) -> dict[str, np.ndarray]:
    """Boolean masks over `rows`, one per population in POPULATIONS."""
    return {name: np.array([member(r) for r in rows], bool) for name, member in POPULATIONS.items()}


def benchmark_samples(manifest_path: str, per_group: int, seed: int = 0) -> dict[str, list]:
    """Seeded samples of the two face populations the benchmarks report: CelebA, UTKFace adults."""
    rows = manifest.read(manifest_path)
    groups = {name: [r for r in rows if member(r)] for name, member in POPULATIONS.items()}
    rng = random.Random(seed)
    return {name: rng.sample(members, min(per_group, len(members))) for name, members in groups.items()}


def predict_rows(rows, clf: Classifier, crop: float = 1.0, batch: int = 256, occlude: str = "") -> tuple[np.ndarray, list]:
    """P(female) per row (NaN where the image failed) and the failures; `occlude`: a kind of
    cover drawn on each face first, seeded by its path so every model sees the same views."""
    ps, failures = predict_rows_with(rows, [clf], crop, batch, occlude)
    return ps[0], failures


def predict_rows_with(rows, classifiers: list, crop: float = 1.0, batch: int = 256, occlude: str = "") -> tuple[list, list]:
    """`predict_rows` for several models at once: each image is decoded once for all the
    models of one input size."""
    def face(row, pre):
        try:
            img = load_frame(row)
            if occlude:
                img = occlusion.occlude(img, row, occlude, random.Random(row.path))
            return pre.fit(img, crop, x_stretch=row.x_stretch)
        except ImageError as e:
            return e
    geometry = {(c.pre.width, c.pre.height): c.pre for c in classifiers}  # normalisation is each model's own
    ps = [np.full(len(rows), np.nan) for _ in classifiers]
    failures = []
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        for start in tqdm(range(0, len(rows), batch), desc="evaluate", unit="batch", leave=False):
            for k, (size, pre) in enumerate(geometry.items()):
                faces = list(pool.map(lambda r: face(r, pre), rows[start:start + batch]))
                ok = [i for i, f in enumerate(faces) if not isinstance(f, Exception)]
                if k == 0:  # an image that fails fails at every size
                    failures += [(rows[start + i].path, str(f)) for i, f in enumerate(faces) if isinstance(f, Exception)]
                if ok:
                    stack = np.stack([faces[i] for i in ok])
                    for c, p in zip(classifiers, ps):
                        if (c.pre.width, c.pre.height) == size:
                            p[[start + i for i in ok]] = c.predict(stack)[:, 1]
    return ps, failures


def age_band(age: str) -> str | None:
    if not age:
        return None
    a = int(age)
    return next(name for lo, hi, name in AGE_BANDS if lo <= a <= hi)


def _cue(row) -> str | None:
    lk = look(row.path)
    return lk and lk.split(",")[0]


def subgroups(rows, y, p) -> dict:
    keys = {
        "dataset": lambda r: r.source.split("-")[0] or None,  # celeba-89x109 + celeba-64x64 -> celeba
        "source": lambda r: r.source or None,
        "age_band": lambda r: age_band(r.age),
        "race": lambda r: RACES.get(r.race) if r.race else None,
        "adult": lambda r: ("adult 18+" if int(r.age) >= 18 else "under 18") if r.age else None,
        "sex": lambda r: CLASSES[r.label],
        "source and sex": lambda r: f"{r.source} {CLASSES[r.label]}" if r.source else None,
        "source, sex and age band": lambda r: f"{r.source} {CLASSES[r.label]} {age_band(r.age)}" if r.age else None,
        "CelebA look and sex": lambda r: f"{CLASSES[r.label]}, {cue}" if (cue := _cue(r)) else None,
        "CelebA look, sex and age": lambda r: f"{CLASSES[r.label]}, {lk}" if (lk := look(r.path)) else None,
    }
    out = {}
    for name, key in keys.items():
        groups: dict = {}
        for i, r in enumerate(rows):
            g = key(r)
            if g is not None:
                groups.setdefault(g, []).append(i)
        if groups:
            out[name] = {g: group_metrics(y[idx], p[idx], with_threshold=name in ("dataset", "source"))
                         for g, idx in sorted(groups.items())}
    return out


def group_metrics(y, p, with_threshold: bool = False) -> dict:
    """Accuracy and recalls; with `with_threshold` also the ranking (AUC) and the decision
    point that would balance the group (metrics.best_threshold)."""
    m = classification_metrics(y, p)
    out = {k: m[k] for k in ("count", "accuracy", "balanced_accuracy", "recall")}
    if with_threshold:
        t, acc = best_threshold(y, p)
        out.update(roc_auc=m["roc_auc"], best_threshold=t, balanced_accuracy_at_best=acc)
    return out


def worst_groups(subgroups: dict, min_count: int = 30) -> dict:
    """The group with the lowest recall: among source x sex, and among source x sex x age
    band cells of at least `min_count` faces (where ages are known)."""
    out = {}
    for name in ("source and sex", "source, sex and age band", "CelebA look and sex"):
        cells = {g: m for g, m in subgroups.get(name, {}).items() if m["count"] >= min_count}
        if cells:
            g = min(cells, key=lambda c: cells[c]["accuracy"])  # one sex per cell: accuracy is its recall
            out[name] = {"group": g, "count": cells[g]["count"], "recall": cells[g]["accuracy"]}
    return out


def source_balanced_threshold(rows, y, p) -> tuple[float, float]:
    """The one threshold best for a pool in which every source counts the same and, within
    it, both sexes: the decision point chosen for all kinds of photo, not for the largest."""
    from collections import Counter

    sizes = Counter((r.source, r.label) for r in rows)
    per_sex = Counter(r.label for r in rows)
    # weights within each sex: 1/size of its (source, sex) cell, so sources weigh alike
    w = np.array([1.0 / sizes[(r.source, r.label)] for r in rows])
    return best_threshold(y, p, w) if len(per_sex) == 2 else (float("nan"), float("nan"))


def evaluate(data: str, model: str | None = None, crop: float = 1.0, limit: int = 0, occlude: str = "") -> dict:
    return evaluate_models(data, [model], crop, limit, occlude)[0]


def evaluate_models(data: str, models: list, crop: float = 1.0, limit: int = 0, occlude: str = "") -> list[dict]:
    """One report per model (None: the shipped one), the images decoded once for all."""
    classifiers = [Classifier(m) for m in models]
    rows = load_rows(data, limit)
    ps, failures = predict_rows_with(rows, classifiers, crop, occlude=occlude)
    reports = []
    for clf, p in zip(classifiers, ps):
        ok = ~np.isnan(p)
        kept = [r for r, k in zip(rows, ok) if k]
        y = np.array([r.label for r in kept])
        groups = subgroups(kept, y, p[ok])
        threshold, at = source_balanced_threshold(kept, y, p[ok])
        reports.append({"data": str(data), "model": str(clf.path), "crop": crop, "occlude": occlude or None, "failures": failures,
                        "overall": classification_metrics(y, p[ok]), "subgroups": groups, "worst": worst_groups(groups),
                        "source_balanced_threshold": {"threshold": threshold, "balanced_accuracy": at},
                        "_y": y, "_p": p[ok]})
    return reports


def plot_reliability(reports: list[dict], path: Path) -> None:
    """One reliability curve per model: accuracy against confidence, beside the diagonal."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 4.8))
    ax.plot([0.5, 1], [0.5, 1], "k--", lw=1, label="perfect calibration")
    for r in reports:
        bins = r["overall"]["calibration_bins"]
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o-",
                label=f"{model_name(r)} (ECE {r['overall']['ece']:.4f})")
    ax.set_xlabel("confidence of predicted class")
    ax.set_ylabel("accuracy")
    ax.set_title("Reliability")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def model_name(report: dict) -> str:
    return Path(report["model"]).name


def markdown(reports: list[dict]) -> str:
    """The models side by side: overall metrics, then every subgroup (accuracy / balanced)."""
    first = reports[0]
    names = [model_name(r) for r in reports]
    if len(set(names)) < len(names):  # same file name in different folders: show the paths
        names = [r["model"] for r in reports]
    head = "| metric | " + " | ".join(names) + " |"
    rule = "|---" * (len(names) + 1) + "|"
    cover = f", every face with {first['occlude']}" if first.get("occlude") else ""
    lines = [f"# Evaluation on `{first['data']}` (centre crop {first['crop']}{cover})", "", head, rule]
    for k in ("count", "accuracy", "balanced_accuracy", "roc_auc", "log_loss", "ece"):
        cells = [f"{r['overall'][k]:.4f}" if isinstance(r["overall"][k], float) else str(r["overall"][k]) for r in reports]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    recall = [f"{r['overall']['recall']['male']:.4f} / {r['overall']['recall']['female']:.4f}" for r in reports]
    lines += ["| recall male / female | " + " | ".join(recall) + " |",
              "| failed images | " + " | ".join(str(len(r["failures"])) for r in reports) + " |", ""]
    for r in reports:
        (tn, fp), (fn, tp) = r["overall"]["confusion"]["rows_true_cols_pred"]
        lines.append(f"Confusion of `{model_name(r)}` (rows true male/female, columns predicted): "
                     f"[[{tn}, {fp}], [{fn}, {tp}]]  ")
    lines += decision_points(reports, names)
    lines += ["", "![reliability](reliability.png)", "",
              "Subgroups: accuracy / balanced accuracy (mean of male and female recall) per model.", ""]
    for name, groups in first["subgroups"].items():
        lines += [f"## By {name}", "", "| group | count | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
        for g, m in groups.items():
            cells = []
            for r in reports:
                o = r["subgroups"][name][g]
                cells.append(f"{o['accuracy']:.4f} / {o['balanced_accuracy']:.4f}")
            lines.append(f"| {g} | {m['count']} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def decision_points(reports: list[dict], names: list[str]) -> list[str]:
    """Per source: ranking (AUC) and the threshold that would balance it; the worst groups."""
    first = reports[0]
    lines = ["", "## Decision point per source", "",
             "AUC / the threshold on P(female) that balances the source (0.5 is the model's) / balanced accuracy there.", "",
             "| source | count | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
    for g, m in first["subgroups"].get("source", {}).items():
        cells = [f"{o['roc_auc']:.4f} / {o['best_threshold']:.2f} / {o['balanced_accuracy_at_best']:.4f}"
                 for o in (r["subgroups"]["source"][g] for r in reports)]
        lines.append(f"| {g} | {m['count']} | " + " | ".join(cells) + " |")
    pooled = [f"{t['threshold']:.2f} (balanced {t['balanced_accuracy']:.4f})"
              for t in (r["source_balanced_threshold"] for r in reports)]
    lines += ["| every source and sex weighted alike | | " + " | ".join(pooled) + " |", ""]
    for name in ("source and sex", "source, sex and age band"):
        if all(name in r["worst"] for r in reports):
            cells = [f"{w['group']} ({w['count']}): {w['recall']:.4f}" for w in (r["worst"][name] for r in reports)]
            lines.append(f"Worst {name} (recall): " + "; ".join(f"`{n}` {c}" for n, c in zip(names, cells)) + "  ")
    return lines


def evaluate_cli(a) -> int:
    reports = evaluate_models(a.data, a.model or [None], a.crop, a.limit, a.occlude or "")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    public = [{k: v for k, v in r.items() if not k.startswith("_")} for r in reports]
    write_json_atomic(out / "report.json", public[0] if len(public) == 1 else {"models": public})
    try:
        plot_reliability(public, out / "reliability.png")
    except ImportError:
        print("matplotlib is not installed: no plot (pip install 'facegender[train]')")
    (out / "report.md").write_text(markdown(public))
    for r in public:
        o = r["overall"]
        print(f"{model_name(r)}: accuracy {o['accuracy']:.4f}  balanced {o['balanced_accuracy']:.4f}  AUC {o['roc_auc']:.4f}  "
              f"log loss {o['log_loss']:.4f}  ECE {o['ece']:.4f}  on {o['count']} images")
    print(f"report in {out}/report.md")
    return 0
