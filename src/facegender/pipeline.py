"""Classify every file of a folder, streaming: list -> decode -> classify -> write.

Decoding runs in a thread pool one batch ahead of ONNX Runtime, so memory stays flat however
large the folder. Every file ends with a result or a per-file error; results are written
atomically, also every few seconds and when the run is interrupted, so `--resume` loses
nothing that was finished.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .classifier import Classifier
from .detect import DETECT_MAX_SIDE, annotate
from .images import IMAGE_SUFFIXES, ImageError, load_rgb
from .results import read_json, write_json_atomic

# Exit codes of `facegender process` / `process.py`
EXIT_ALL_OK, EXIT_SOME_FAILED, EXIT_NONE_OK, EXIT_CANNOT_RUN, EXIT_INTERRUPTED = 0, 1, 3, 4, 130


@dataclass
class ProcessOptions:
    output: str = "process_results.json"  # file name -> "male"/"female", as the original
    details: str | None = None  # optional JSON with probabilities, errors and the summary
    model: str | None = None  # ONNX model path; None = the shipped default
    recursive: bool = False  # descend into sub-folders (keys become relative paths)
    resume: bool = False  # keep finished results from `output` and do only the rest
    batch_size: int = 64  # images per ONNX Runtime call (64: full speed, ~200 MB peak)
    threads: int = 0  # decode threads and ORT threads; 0 = all cores
    checkpoint_seconds: float = 10.0  # write partial results this often
    progress: bool = True  # show a progress bar on stderr
    detector: object = None  # a detect.FaceDetector: find faces instead of taking crops
    annotate: str | None = None  # with a detector: folder for copies with boxes drawn


@dataclass
class Summary:
    inputs: int = 0
    classified: int = 0
    resumed: int = 0
    failed: int = 0
    no_face: int = 0  # detect mode: images read fine with no face in them
    errors: Counter = field(default_factory=Counter)
    notes: list = field(default_factory=list)
    seconds: Counter = field(default_factory=Counter)  # per stage: decode (+detect), classify, write
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        if self.failed == 0:
            return EXIT_ALL_OK
        return EXIT_NONE_OK if self.classified + self.resumed == 0 else EXIT_SOME_FAILED


def list_inputs(folder: Path, recursive: bool) -> tuple[list[str], list[str]]:
    """Every entry a user would call a file: relative names, sorted; plus notes."""
    names, notes, skipped_dirs = [], [], 0
    for root, dirs, files in os.walk(folder, followlinks=False):
        rel = Path(root).relative_to(folder)
        entries = list(files)
        if not recursive:
            for d in dirs:  # a folder named like an image is reported as a bad input
                if Path(d).suffix.lower() in IMAGE_SUFFIXES:
                    entries.append(d)
                else:
                    skipped_dirs += 1
            dirs[:] = []
        names += [str(rel / f) if str(rel) != "." else f for f in entries]
    if skipped_dirs:
        notes.append(f"{skipped_dirs} sub-folder(s) not entered (use --recursive)")
    return sorted(names), notes


@dataclass
class _Item:
    """One input on its way through the stages."""
    name: str
    arrays: list = field(default_factory=list)  # model inputs (one per face)
    faces: list | None = None  # detect mode: the detector's faces
    image: object = None  # detect mode with --annotate: the decoded photo
    error: dict | None = None
    seconds: float = 0.0


def model_inputs(source, pre, detector=None):
    """Decode one input and cut what the classifier takes: (arrays, faces, image).

    Without a detector the image is one face crop (faces is None); with one, every face
    found, aligned (arrays may be empty). Shared by `process` and `api.predict`.
    """
    side = DETECT_MAX_SIDE if detector is not None else max(pre.width, pre.height)
    img = load_rgb(source, min_size=(side, side))
    if detector is None:
        return [pre.fit(img)], None, img
    faces = detector.faces(img, pre)
    return [f.pixels for f in faces], faces, img


def _write_annotated(img, faces: list, dest: Path) -> None:
    dest = dest.with_name(dest.name + ".annotated.jpg")
    dest.parent.mkdir(parents=True, exist_ok=True)
    annotate(img, faces).save(dest, "JPEG", quality=90)


class _Terminated(KeyboardInterrupt):
    pass


def _on_sigterm(signum, frame):
    raise _Terminated()


def process_folder(folder: str | os.PathLike, opts: ProcessOptions, classifier: Classifier | None = None) -> Summary:
    """Classify `folder` into `opts.output` (and `opts.details`); returns the summary."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder" if folder.exists() else f"folder {folder} does not exist")
    classifier = classifier or Classifier(opts.model, threads=opts.threads)
    pre = classifier.pre
    summary = Summary()
    names, summary.notes = list_inputs(folder, opts.recursive)
    summary.inputs = len(names)

    results: dict = {}
    details: dict = {}
    if opts.resume and os.path.exists(opts.output):
        results = read_json(opts.output)
        if opts.details and os.path.exists(opts.details):
            details = {k: v for k, v in read_json(opts.details).get("files", {}).items() if k in results}
        summary.resumed = sum(1 for n in names if n in results)
    elif os.path.exists(opts.output):
        print(f"note: {opts.output} exists and will be replaced (use --resume to continue it)", file=sys.stderr)
    todo = [n for n in names if n not in results]

    detecting = opts.detector is not None

    def decode(name: str) -> _Item:
        t = time.perf_counter()
        item = _Item(name)
        try:
            item.arrays, item.faces, img = model_inputs(folder / name, pre, opts.detector)
            item.image = img if detecting and opts.annotate else None
        except ImageError as e:
            item.error = {"error": e.reason, "message": str(e)}
        except Exception as e:  # never lose the run to one file
            item.error = {"error": "unexpected", "message": f"{type(e).__name__}: {e}"}
        item.seconds = time.perf_counter() - t
        return item

    def save():
        t = time.perf_counter()
        write_json_atomic(opts.output, results)
        if opts.details:
            write_json_atomic(opts.details, {"summary": summary_dict(summary), "files": details})
        summary.seconds["write"] += time.perf_counter() - t

    save()  # fails now, not after the work, if the output cannot be written
    in_main_thread = threading.current_thread() is threading.main_thread()  # only it may set handlers
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main_thread else None
    bar = tqdm(total=len(todo), disable=not opts.progress, unit="img", dynamic_ncols=True, file=sys.stderr)
    last_save = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=opts.threads or (os.cpu_count() or 1)) as pool:
            batches = [todo[i:i + opts.batch_size] for i in range(0, len(todo), opts.batch_size)]
            ahead = [pool.submit(decode, n) for n in batches[0]] if batches else []
            for b in range(len(batches)):
                current = ahead
                ahead = [pool.submit(decode, n) for n in batches[b + 1]] if b + 1 < len(batches) else []
                items = [f.result() for f in current]
                arrays = [a for it in items for a in it.arrays]
                t = time.perf_counter()
                # detected faces are averaged with their mirror: +0.4 points on validation portraits,
                # and the classifier's cost is small next to detection's
                probs = classifier.predict(np.stack(arrays), flip=detecting) if arrays else np.zeros((0, 2), np.float32)
                summary.seconds["classify"] += time.perf_counter() - t
                k = 0
                for it in items:
                    summary.seconds["decode" if not detecting else "decode+detect"] += it.seconds
                    if it.error:
                        summary.failed += 1
                        summary.errors[it.error["error"]] += 1
                        details[it.name] = it.error
                        continue
                    p = probs[k:k + len(it.arrays)]
                    k += len(it.arrays)
                    results[it.name], details[it.name] = _record(classifier.labels, p, it.faces)
                    summary.classified += 1
                    summary.no_face += detecting and results[it.name] is None
                    if it.image is not None:
                        try:
                            _write_annotated(it.image, details[it.name]["faces"], Path(opts.annotate) / it.name)
                        except OSError as e:
                            details[it.name]["annotate_error"] = str(e)
                bar.update(len(items))
                if time.monotonic() - last_save > opts.checkpoint_seconds:
                    save()
                    last_save = time.monotonic()
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        bar.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        save()
    return summary


def _record(labels, probs, faces):
    """(value for process_results.json, entry for the details file) of one image."""
    def one(p):
        i = int(p.argmax())
        return {"gender": labels[i], "probability": round(float(p[i]), 6), "p_female": round(float(p[1]), 6)}
    if faces is None:
        entry = one(probs[0])
        return entry["gender"], entry
    found = [{**one(p), **f.describe()} for p, f in zip(probs, faces)]
    if not found:
        return None, {"faces": [], "reason": "no face found"}
    return found[0]["gender"], {"faces": found}  # faces come largest first


def summary_dict(s: Summary) -> dict:
    return {"inputs": s.inputs, "classified": s.classified, "resumed": s.resumed, "failed": s.failed, "no_face": s.no_face,
            "errors_by_reason": dict(s.errors), "notes": s.notes, "interrupted": s.interrupted,
            "seconds": {k: round(v, 3) for k, v in s.seconds.items()}, "exit_code": s.exit_code}
