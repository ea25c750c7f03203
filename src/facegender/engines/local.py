"""The local engine: a folder's files in batches to a process per core, each decoding and
classifying its own batch with a single-threaded model, so memory stays flat however large
the folder and the cores never wait on each other. The run loop (run.collect) records what
comes back.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from ..classifier import Classifier
from ..faces.detect import annotate
from ..options import ProcessOptions
from ..predict import classify, decode
from ..record import Answer
from ..run import ResultFiles, Summary, collect, list_inputs

INLINE_MAX = 16  # up to this many inputs run in the calling process: starting workers (~0.3 s) costs more


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
    todo = [n for n in names if n not in files.results]
    detector = opts.face_detector()
    summary.loaded(classifier, detector)
    cores = opts.threads or (os.cpu_count() or 1)
    # at least 4 batches per worker, so no worker idles while another finishes a long batch
    size = max(1, min(opts.batch_size, -(-len(todo) // (4 * cores))))
    batches = [todo[i:i + size] for i in range(0, len(todo), size)]

    files.save()  # fails now, not after the work, if the output cannot be written
    processes = min(cores, len(batches)) if len(todo) > INLINE_MAX else 1
    pool = None
    if processes > 1:  # a process per core, each decoding and classifying whole batches
        context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
        pool = ProcessPoolExecutor(processes, context, _start_worker,
                                   (str(classifier.path), detector, folder, opts.annotate))
        done = pool.map(_run_batch, batches)
    else:
        done = map(_BatchWorker(classifier, detector, folder, opts.annotate), batches)
    stage = "decode" if detector is None else "decode+detect"

    def answers():
        try:
            for items, classify_seconds in done:
                summary.seconds["classify"] += classify_seconds
                summary.seconds[stage] += sum(it.seconds for it in items)
                yield [(it.name, it.answer) for it in items]
        except BrokenProcessPool:  # a worker was killed (out of memory?) or crashed inside a decoder
            summary.interrupted = True
            summary.notes.append("a worker process died (killed, out of memory, or a crash in a decoder)")

    in_main_thread = threading.current_thread() is threading.main_thread()  # only it may set handlers
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main_thread else None
    try:
        collect(answers(), files, len(todo))
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return summary
