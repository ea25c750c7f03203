"""`facegender process SRC --engine ray`: the same predict path on a Ray cluster (Ray Data).

read_binary_files streams the bytes of every listed file; each actor holds one ONNX Runtime
classifier (intra-op threads = the actor's CPUs) and decodes + classifies whole batches with
`predict.decode` / `predict.classify`, the code the local engine runs, so a corrupt file is
a per-file error row and never a failed block. Results come back to the driver as rows
(process_results.json + --details, written atomically, checkpointed) or are written by the
workers as Parquet / JSON-lines for archives too big for one JSON file.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time

from ..classifier import Classifier
from ..options import ProcessOptions
from ..predict import classify, decode
from ..record import Answer
from ..run import ResultFiles, Summary, collect
from . import outputs
from .listing import list_source


class ClassifyBatch:
    """Ray Data callable class: bytes of a batch of files -> their rows (one actor, one model)."""

    def __init__(self, opts: ProcessOptions, threads: int, prefix: str):
        # opts.model None: each node loads its own installed default, and its own CPU decides "auto"
        self.classifier = Classifier(opts.model, threads=threads, precision=opts.precision)
        self.detector, self.prefix = opts.face_detector(threads), prefix

    def __call__(self, batch: dict):
        decoded = [decode(b, self.classifier.pre, self.detector) for b in batch["bytes"]]
        answers = classify(decoded, self.classifier, detecting=self.detector is not None)
        names = [str(p)[len(self.prefix):] for p in batch["path"]]
        return outputs.to_table([answer.to_row(n) for n, answer in zip(names, answers)])


def connect(address: str | None, cpus: int) -> bool:
    """Join the cluster at `address` ("auto", "ray://host:10001", "host:6379"), or start a
    local Ray on `cpus` cores (0 = all). True when this call started Ray (and should stop it)."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
    else:
        ray.init(num_cpus=cpus or os.cpu_count() or 1, include_dashboard=False, logging_level=logging.WARNING)
    return True


def build_dataset(listing, names: list[str], opts: ProcessOptions, cpus_per_actor: int = 1):
    """The lazy pipeline: read bytes -> decode + classify on a fixed pool of actors.
    opts.read_tasks: reads at once (0: a quarter of the actors; raise it for object stores,
    whose reads wait on the network rather than the disk)."""
    import ray
    import ray.data

    cores = int(ray.cluster_resources().get("CPU", 1))
    actors = max(1, cores // cpus_per_actor)
    # at least 4 batches per actor, as the local engine, so no actor idles on a long batch
    size = max(1, min(opts.batch_size, -(-len(names) // (4 * actors))))
    actors = max(1, min(actors, -(-len(names) // size)))
    # reads take no CPU slot (actors holding every core would starve them) but are few: each
    # is a worker process of its own, and unbounded they crowd out the actors (2.7x slower here)
    read_tasks = opts.read_tasks or max(1, actors // 4)
    ds = ray.data.read_binary_files([listing.path(n) for n in names], include_paths=True,
                                    filesystem=listing.filesystem, num_cpus=0, concurrency=read_tasks)
    return ds.map_batches(ClassifyBatch, batch_size=size, batch_format="numpy", num_cpus=cpus_per_actor,
                          compute=ray.data.ActorPoolStrategy(size=actors),
                          fn_constructor_args=(opts, cpus_per_actor, listing.prefix))


def process_source(src: str, opts: ProcessOptions, cpus_per_actor: int = 1) -> Summary:
    """Classify every file of `src` on Ray into `opts.output` (a JSON file, or for
    opts.format parquet/jsonl a folder or URI of row files); returns the summary."""
    import ray
    import ray.data

    fmt = opts.format
    if opts.model:  # actors run in folders of their own
        opts = dataclasses.replace(opts, model=os.path.abspath(opts.model))
    # fails now on a bad model; its preprocessing names listing errors
    driver = Classifier(opts.model, threads=1, precision=opts.precision)
    listing = list_source(src, opts.recursive, driver.pre)
    summary = Summary(inputs=len(listing.names), notes=list(listing.notes))
    summary.loaded(driver, opts.face_detector())
    t = time.perf_counter()
    started = connect(opts.address, opts.threads)
    summary.seconds["ray_start"] += time.perf_counter() - t
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = opts.progress and fmt != "json"  # json: one tqdm bar of files instead
    if not opts.progress:
        logging.getLogger("ray.data").setLevel(logging.WARNING)

    def build(names):
        return build_dataset(listing, names, opts, cpus_per_actor)

    try:
        if fmt == "json":
            _to_json(listing, opts, build, summary)
        else:
            _to_table(listing, opts, build, summary, fmt)
    finally:
        if started:
            ray.shutdown()
    return summary


def _to_json(listing, opts: ProcessOptions, build, summary: Summary) -> None:
    files = ResultFiles(opts, listing.names, summary)
    for name, error in listing.failed.items():
        answer = Answer.failed(error["error"], error.get("message"))
        files.details[name] = answer.to_dict()
        summary.count(answer)
    files.save()  # fails now, not after the work, if the output cannot be written
    todo = [n for n in listing.readable if n not in files.results]

    def answers():
        if todo:
            for batch in build(todo).iter_batches(batch_size=None, batch_format="pyarrow"):
                yield [(row["path"], Answer.from_row(row)) for row in batch.to_pylist()]

    t = time.perf_counter()
    try:
        collect(answers(), files, len(todo))
    finally:
        summary.seconds["ray_run"] += time.perf_counter() - t


def _to_table(listing, opts: ProcessOptions, build, summary: Summary, fmt: str) -> None:
    import ray.data

    dest = opts.output if "://" in opts.output else os.path.abspath(opts.output)  # workers have their own cwd
    parts = [build(listing.readable)] if listing.readable else []
    if listing.failed:
        failed = [Answer.failed(e["error"], e.get("message")).to_row(n) for n, e in sorted(listing.failed.items())]
        parts.append(ray.data.from_arrow(outputs.to_table(failed)))
    t = time.perf_counter()
    try:
        if parts:
            outputs.write_table(parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0], dest, fmt)
            outputs.read_counts(dest, fmt, summary)
    except KeyboardInterrupt:
        summary.interrupted = True
    summary.seconds["ray_run"] += time.perf_counter() - t
