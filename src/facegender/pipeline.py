"""Classify every file of a folder, streaming: list -> decode -> classify -> write.

Batches go to a process per core, each decoding and classifying its own batch with a
single-threaded model, so memory stays flat however large the folder and the cores never
wait on each other. Every file ends with a result or a per-file error; results are written
atomically, also every few seconds and when the run is interrupted, so `--resume` loses
nothing that was finished.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from .classifier import Classifier
from .faces.detect import annotate
from .images import IMAGE_SUFFIXES
from .options import ProcessOptions
from .predict import classify, decode
from .record import Answer
from .results import read_json, write_json_atomic

INLINE_MAX = 16  # up to this many inputs run in the calling process: starting workers (~0.3 s) costs more

# Exit codes of `facegender process` / `process.py`
EXIT_ALL_OK, EXIT_SOME_FAILED, EXIT_NONE_OK, EXIT_CANNOT_RUN, EXIT_INTERRUPTED = 0, 1, 3, 4, 130


@dataclass
class Summary:
    inputs: int = 0
    classified: int = 0
    resumed: int = 0
    failed: int = 0
    no_face: int = 0  # detect mode: images read fine with no face in them
    errors: Counter = field(default_factory=Counter)
    notes: list = field(default_factory=list)
    seconds: Counter = field(default_factory=Counter)  # per stage, summed over workers: decode (+detect), classify, write
    interrupted: bool = False

    def count(self, answer: Answer) -> None:
        """One finished input: classified (and maybe with no face found), or failed and why."""
        if answer.error:
            self.failed += 1
            self.errors[answer.error] += 1
        else:
            self.classified += 1
            self.no_face += answer.faces == []

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
    """One input's answer and its decode (+ detect) time, sent back to the main process."""
    name: str
    answer: Answer
    seconds: float = 0.0


def _write_annotated(img, faces: list, dest: Path) -> None:
    dest = dest.with_name(dest.name + ".annotated.jpg")
    dest.parent.mkdir(parents=True, exist_ok=True)
    annotate(img, faces).save(dest, "JPEG", quality=90)


class _BatchWorker:
    """decode -> (detect -> align) -> classify for one batch of file names. Runs in each
    worker process (its own single-threaded model: no GIL, no oversubscribed cores), or in
    the calling process for small folders."""

    def __init__(self, classifier: Classifier, detector, folder: Path, annotate_dir: str | None):
        self.classifier, self.detector, self.folder, self.annotate_dir = classifier, detector, folder, annotate_dir

    def __call__(self, names: list[str]) -> tuple[list[_Item], float]:
        """The batch's items and the seconds spent classifying it."""
        keep = self.detector is not None and bool(self.annotate_dir)  # the photo is kept only to be annotated
        decoded = [decode(self.folder / name, self.classifier.pre, self.detector, keep_image=keep) for name in names]
        t = time.perf_counter()
        answers = classify(decoded, self.classifier, detecting=self.detector is not None)
        seconds = time.perf_counter() - t
        items = []
        for name, d, answer in zip(names, decoded, answers):
            if d.image is not None:
                try:
                    _write_annotated(d.image, answer.faces, Path(self.annotate_dir) / name)
                except OSError as e:
                    answer.annotate_error = str(e)
            items.append(_Item(name, answer, d.seconds))
        return items, seconds


_worker: _BatchWorker | None = None  # the worker process's own


def _start_worker(model_path: str, detector, folder: Path, annotate_dir: str | None) -> None:
    global _worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process handles interrupts
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _worker = _BatchWorker(Classifier(model_path, threads=1), detector, folder, annotate_dir)


def _run_batch(names: list[str]):
    return _worker(names)


class _Terminated(KeyboardInterrupt):
    pass


def _on_sigterm(signum, frame):
    raise _Terminated()


class ResultFiles:
    """A run's process_results.json and details file, shared by the local and Ray engines:
    read back for --resume (else an existing output is announced as replaced), and saved
    atomically, keys sorted, whenever `save` is called."""

    def __init__(self, opts: ProcessOptions, names: list[str], summary: Summary):
        self.opts, self.summary = opts, summary
        self.results: dict = {}
        self.details: dict = {}
        if opts.resume and os.path.exists(opts.output):
            self.results.update(read_json(opts.output))
            if opts.details and os.path.exists(opts.details):
                self.details.update({k: v for k, v in read_json(opts.details).get("files", {}).items() if k in self.results})
            summary.resumed = sum(1 for n in names if n in self.results)
        elif os.path.exists(opts.output):
            print(f"note: {opts.output} exists and will be replaced (use --resume to continue it)", file=sys.stderr)

    def save(self) -> None:
        t = time.perf_counter()
        write_json_atomic(self.opts.output, dict(sorted(self.results.items())))
        if self.opts.details:
            write_json_atomic(self.opts.details, {"summary": summary_dict(self.summary),
                                                  "files": dict(sorted(self.details.items()))})
        self.summary.seconds["write"] += time.perf_counter() - t


def process_folder(folder: str | os.PathLike, opts: ProcessOptions, classifier: Classifier | None = None) -> Summary:
    """Classify `folder` into `opts.output` (and `opts.details`); returns the summary.
    `classifier`: one already loaded from `opts.model` / `opts.precision`, to reuse."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder" if folder.exists() else f"folder {folder} does not exist")
    classifier = classifier or Classifier(opts.model, threads=opts.threads, precision=opts.precision)
    summary = Summary()
    names, summary.notes = list_inputs(folder, opts.recursive)
    summary.inputs = len(names)

    files = ResultFiles(opts, names, summary)
    results, details, save = files.results, files.details, files.save
    todo = [n for n in names if n not in results]
    detector = opts.face_detector()
    cores = opts.threads or (os.cpu_count() or 1)
    # at least 4 batches per worker, so no worker idles while another finishes a long batch
    size = max(1, min(opts.batch_size, -(-len(todo) // (4 * cores))))
    batches = [todo[i:i + size] for i in range(0, len(todo), size)]

    save()  # fails now, not after the work, if the output cannot be written
    processes = min(cores, len(batches)) if len(todo) > INLINE_MAX else 1
    pool = None
    if processes > 1:  # a process per core, each decoding and classifying whole batches
        context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
        pool = ProcessPoolExecutor(processes, context, _start_worker,
                                   (str(classifier.path), detector, folder, opts.annotate))
        done = pool.map(_run_batch, batches)
    else:
        done = map(_BatchWorker(classifier, detector, folder, opts.annotate), batches)
    in_main_thread = threading.current_thread() is threading.main_thread()  # only it may set handlers
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main_thread else None
    bar = tqdm(total=len(todo), disable=not opts.progress, unit="img", dynamic_ncols=True, file=sys.stderr)
    last_save = time.monotonic()
    stage = "decode" if detector is None else "decode+detect"
    try:
        for items, classify_seconds in done:
            summary.seconds["classify"] += classify_seconds
            for it in items:
                summary.seconds[stage] += it.seconds
                details[it.name] = it.answer.to_dict()
                summary.count(it.answer)
                if not it.answer.error:
                    results[it.name] = it.answer.value
            bar.update(len(items))
            if time.monotonic() - last_save > opts.checkpoint_seconds:
                save()
                last_save = time.monotonic()
    except KeyboardInterrupt:
        summary.interrupted = True
    except BrokenProcessPool:  # a worker was killed (out of memory?) or crashed inside a decoder
        summary.interrupted = True
        summary.notes.append("a worker process died (killed, out of memory, or a crash in a decoder)")
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        bar.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        save()
    return summary


def summary_dict(s: Summary) -> dict:
    return {"inputs": s.inputs, "classified": s.classified, "resumed": s.resumed, "failed": s.failed, "no_face": s.no_face,
            "errors_by_reason": dict(s.errors), "notes": s.notes, "interrupted": s.interrupted,
            "seconds": {k: round(v, 3) for k, v in s.seconds.items()}, "exit_code": s.exit_code}
