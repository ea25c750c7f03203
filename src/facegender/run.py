"""The run loop both engines share: list a folder, read back an earlier run (--resume), take
each input's Answer as it arrives into process_results.json, the details file and the
summary, show progress, and save atomically every few seconds and at the end, so an
interrupted run loses nothing that was finished. Where answers come from is the engine's
business (engines.local: a process per core; engines.ray_engine: Ray Data).
"""
from __future__ import annotations

import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from tqdm import tqdm

from .images import IMAGE_SUFFIXES
from .options import ProcessOptions
from .record import Answer
from .results import read_json, write_json_atomic

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
    models: dict = field(default_factory=dict)  # "classifier" / "detector" -> "file (why that file)"

    def loaded(self, classifier, detector=None) -> None:
        """Say which graph files the run uses and why (auto precision picks by the CPU)."""
        self.models["classifier"] = f"{classifier.path.name} ({classifier.chosen_because})"
        if detector is not None:
            self.models["detector"] = detector.loaded

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


def collect(batches: Iterable[list[tuple[str, Answer]]], files: ResultFiles, total: int) -> None:
    """Take batches of (name, Answer) as an engine yields them: each into the results, the
    details and the summary; a progress bar; a save every `checkpoint_seconds` and one at the
    end, also when the run is interrupted (Ctrl-C or SIGTERM) or the engine stops early."""
    opts, summary = files.opts, files.summary
    bar = tqdm(total=total, disable=not opts.progress, unit="img", dynamic_ncols=True, file=sys.stderr)
    last_save = time.monotonic()
    try:
        for batch in batches:
            for name, answer in batch:
                files.details[name] = answer.to_dict()
                summary.count(answer)
                if not answer.error:
                    files.results[name] = answer.value
            bar.update(len(batch))
            if time.monotonic() - last_save > opts.checkpoint_seconds:
                files.save()
                last_save = time.monotonic()
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        bar.close()
        files.save()


def summary_dict(s: Summary) -> dict:
    return {"inputs": s.inputs, "classified": s.classified, "resumed": s.resumed, "failed": s.failed, "no_face": s.no_face,
            "errors_by_reason": dict(s.errors), "notes": s.notes, "interrupted": s.interrupted,
            "seconds": {k: round(v, 3) for k, v in s.seconds.items()}, "models": s.models, "exit_code": s.exit_code}
