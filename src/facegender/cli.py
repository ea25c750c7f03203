"""`facegender VERB ...`: each verb is a thin wrapper over one public function."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields

from .errors import FacegenderError


def step_numbers(text: str) -> list[int]:
    """"3,5,11-14" -> [3, 5, 11, 12, 13, 14]."""
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += range(int(lo), int(hi or lo) + 1)
    return out


def _process(a) -> int:
    from .api import process
    from .classifier import ModelError
    from .options import ProcessOptions
    from .results import OutputError
    from .run import EXIT_CANNOT_RUN, summary_dict

    opts = ProcessOptions(**{f.name: getattr(a, f.name) for f in fields(ProcessOptions) if hasattr(a, f.name)})
    try:
        summary = process(a.folder, opts)
    except ModuleNotFoundError as e:
        if opts.engine != "ray" or (e.name or "").split(".")[0] not in ("ray", "pyarrow"):
            raise
        print(f"facegender: error: --engine ray needs Ray: pip install 'facegender[ray]' ({e})", file=sys.stderr)
        return EXIT_CANNOT_RUN
    except (ModelError, OutputError, FileNotFoundError) as e:
        print(f"facegender: error: {e}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    s = summary_dict(summary)
    done = summary.classified + summary.resumed
    print(f"{done} of {summary.inputs} files classified ({summary.resumed} from before), {summary.failed} failed; "
          f"results in {a.output}" + (f", details in {a.details}" if a.details else ""), file=sys.stderr)
    if summary.no_face:
        print(f"{summary.no_face} image(s) with no face found (null in {a.output})", file=sys.stderr)
    if summary.failed:
        print("failures by reason: " + ", ".join(f"{k}: {v}" for k, v in summary.errors.items())
              + ("" if a.details else " (per-file messages: --details FILE)"), file=sys.stderr)
    for role, loaded in summary.models.items():
        print(f"{role}: {loaded}", file=sys.stderr)
    for note in summary.notes:
        print(f"note: {note}", file=sys.stderr)
    if opts.progress:
        print("stage seconds: " + ", ".join(f"{k} {v}" for k, v in s["seconds"].items()), file=sys.stderr)
    if summary.interrupted:
        print("interrupted: finished results were saved; run again with --resume to continue", file=sys.stderr)
    return summary.exit_code


def _prepare(a) -> int:
    from .training.prepare import prepare

    print(json.dumps(prepare(a.roots, a.out, a.val_ratio, a.seed, a.keep_split, a.audit), indent=2))
    return 0


def _train(a) -> int:
    from .training.train import TrainConfig, train

    if a.recipe:
        from .training.recipe import run
        run(a.recipe, step_numbers(a.steps) if a.steps else None)
        return 0
    given = {f.name: getattr(a, f.name) for f in fields(TrainConfig) if getattr(a, f.name, None) is not None}
    summary = train(TrainConfig(**given))
    print(f"best val accuracy {summary['best_val_acc']:.4f} at epoch {summary['best_epoch']}")
    return 0


def _export(a) -> int:
    from .training.export import export

    card = json.loads(open(a.card).read()) if a.card else None
    meta = export(a.checkpoint, a.out, card=card, mirror_margin=a.mirror_margin, half_weights=a.half_weights,
                  calibrate=a.calibrate)
    print(json.dumps(meta, indent=2))
    return 0


def _serve(a) -> int:
    from .service.server import serve
    from .service.settings import Settings

    return serve(Settings.from_env(host=a.host, port=a.port, api_key=a.api_key, model=a.model, precision=a.precision,
                                   detector=a.detector, min_face=a.min_face, detector_side=a.detector_side,
                                   cors_origins=a.cors_origin,
                                   max_request_bytes=a.max_request_mb and int(a.max_request_mb * 2**20),
                                   max_files=a.max_files, max_pixels=a.max_pixels, request_timeout=a.timeout,
                                   workers=a.workers, max_in_flight=a.max_in_flight,
                                   header_timeout=a.header_timeout, body_timeout=a.body_timeout))


def _quantize(a) -> int:
    images = {"images": a.images} if a.images else {}  # else each quantizer's own default
    if a.detector:
        from .training.quantize_detector import quantize_detector
        meta = quantize_detector(a.model, a.out, a.calibration, **images)
    else:
        from .training.quantize import quantize
        meta = quantize(a.model, a.out, a.calibration, **images, float_nodes=a.float_nodes)
    print(json.dumps({k: meta[k] for k in ("sha256", "bytes", "int8_calibration", "int8_float_nodes")}, indent=2))
    return 0


def _average(a) -> int:
    from .training.soup import average

    print(json.dumps(average(a.checkpoints, a.out), indent=2))
    return 0


def _evaluate(a) -> int:
    from .evaluate import evaluate_cli

    return evaluate_cli(a)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="facegender", description="Tell a face's gender from a photo.")
    sub = p.add_subparsers(dest="verb", required=True)

    from .classifier import PRECISIONS
    from .faces.detect import DETECTORS, MIN_FACE, SCRFD_MAX_SIDE
    from .options import ENGINES, FORMATS, ProcessOptions

    d = ProcessOptions()  # the flags' defaults are the options' own
    s = sub.add_parser("process", help="classify every image in a folder -> process_results.json",
                       description="Exit codes: 0 all classified, 1 some failed, 2 bad command line, "
                                   "3 none classified, 4 could not run (folder, model or output), 130 interrupted.")
    s.add_argument("folder")
    s.add_argument("-o", "--output", default=d.output, help="file name -> gender JSON (default %(default)s)")
    s.add_argument("--details", help="also write a JSON with probabilities, per-file errors and the summary")
    s.add_argument("--model", help="ONNX model exported by `facegender export` (default: the shipped model)")
    s.add_argument("-r", "--recursive", action="store_true", help="descend into sub-folders")
    s.add_argument("--resume", action="store_true", help="keep the results already in --output; do the rest")
    s.add_argument("--detect", action="store_true", help="find faces in ordinary photos instead of taking face crops")
    s.add_argument("--max-faces", type=int, default=d.max_faces, help="with --detect: keep only the N most prominent "
                   "faces (size x centrality; 0 = all)")
    s.add_argument("--detector", choices=DETECTORS, default=d.detector, help="with --detect: SCRFD-2.5G (default, "
                   "faster, finds more) or MTCNN")
    s.add_argument("--min-face", type=float, help="with --detect: smallest face searched for, pixels (default: SCRFD "
                   f"{MIN_FACE['scrfd']} in the photo, MTCNN {MIN_FACE['mtcnn']} in the photo scaled to <= 1024 px)")
    s.add_argument("--detector-side", type=int, help="with --detect (SCRFD): longest side of the detector's input, "
                   f"pixels (default {SCRFD_MAX_SIDE}: a 12-megapixel photo costs what a 640x480 one does; raise it "
                   "to find faces under ~30 px in photos over 1000 px)")
    s.add_argument("--annotate", metavar="DIR", help="with --detect: write copies of the photos with boxes drawn")
    s.add_argument("--precision", choices=PRECISIONS, default=d.precision, help="the shipped model's graph: auto "
                   "(default) takes int8 where the CPU has VNNI (avx512_vnni / avx_vnni), float elsewhere")
    s.add_argument("--batch-size", type=int, default=d.batch_size)
    s.add_argument("--threads", type=int, default=d.threads, help="worker processes, one per core (0 = all cores)")
    s.add_argument("-q", "--quiet", dest="progress", action="store_false", help="no progress bar")
    s.add_argument("--engine", choices=ENGINES, default=d.engine, help="local: a process per core (default); "
                   "ray: Ray Data on a cluster, FOLDER may then be a URI (s3://, gs://, hdfs://)")
    s.add_argument("--address", help="with --engine ray: the cluster to join (auto, ray://HOST:10001); "
                   "default: start a local Ray on --threads cores")
    s.add_argument("--format", choices=FORMATS, default=d.format, help="with --engine ray: "
                   "parquet/jsonl write one row per file into the folder or URI --output (for very large archives)")
    s.add_argument("--read-tasks", type=int, default=d.read_tasks, help="with --engine ray: file reads at once (0: a "
                   "quarter of the cluster's CPUs; raise it for s3:// and gs://, whose reads wait on the network)")
    s.set_defaults(run=_process)

    s = sub.add_parser("prepare", help="class folders -> seeded, person-disjoint train.csv / val.csv")
    s.add_argument("roots", nargs="+", help="folders holding male/ and female/ (and maybe labels.csv)")
    s.add_argument("--out", default="manifests")
    s.add_argument("--val-ratio", type=float, default=0.1)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--keep-split", default="", metavar="DIR|CSV", help="an earlier prepare's folder: its people keep "
                   "their train/validation side (a model trained on it is never judged on faces it learned); or a "
                   "manifest CSV whose people all stay in validation")
    s.add_argument("--audit", default="", metavar="CSV", help="label decisions to apply (labels/audit.csv: "
                   "relabel, drop or keep per file; see training/audit.py)")
    s.set_defaults(run=_prepare)

    s = sub.add_parser("train", help="train a registered model on manifests (see models.REGISTRY)")
    s.add_argument("--recipe", help="run every step of a recipe file (TOML) instead; the other options are then ignored")
    s.add_argument("--steps", help="with --recipe: run only these steps (1-based: 3,5 or 11-24)")
    s.add_argument("--model", dest="model")
    s.add_argument("--train", dest="train_manifest")
    s.add_argument("--val", dest="val_manifest")
    s.add_argument("--out", dest="out_dir")
    s.add_argument("--mode", choices=["finetune", "feature"])
    s.add_argument("--weights", help="start from this checkpoint (.pt) or exported model (.onnx, e.g. the shipped one) "
                   "instead of ImageNet weights")
    s.add_argument("--resume", action="store_true", default=None)
    s.add_argument("--looks", action="store_true", default=None, help="balance and group DRO also over CelebA's "
                   "looks (make-up, hat, glasses, young or older; facegender.looks)")
    for name, kind in [("epochs", int), ("batch_size", int), ("optimizer", str), ("lr", float),
                       ("weight_decay", float), ("label_smoothing", float), ("limit", int), ("seed", int),
                       ("patience", int), ("workers", int), ("width", int), ("height", int), ("augment", float),
                       ("teacher", str), ("teacher_weight", float), ("ema", float), ("device", str),
                       ("balance", float), ("hide", float), ("grey", float), ("occlude", float),
                       ("wild", float), ("dro", float), ("consistency", float)]:
        s.add_argument("--" + name.replace("_", "-"), dest=name, type=kind)
    s.set_defaults(run=_train)

    s = sub.add_parser("export", help="checkpoint -> ONNX with preprocessing and card metadata")
    s.add_argument("checkpoint")
    s.add_argument("--out", default="model.onnx")
    s.add_argument("--card", help="JSON file of model-card facts (data, metrics) to embed")
    s.add_argument("--mirror-margin", type=float, default=0.0, help="re-answer faces whose P(female) is within "
                   "this of 0.5 as their mirror image too, and average (0 = never)")
    s.add_argument("--half-weights", action="store_true", help="store weights as float16 (half the file; "
                   "inference still runs in float32)")
    s.add_argument("--calibrate", default="", metavar="MANIFEST", help="fit a temperature and a bias on these "
                   "images' answers, every source x sex weighted alike, and apply them inside the graph (calibrated "
                   "probabilities; the decision point that serves every source)")
    s.set_defaults(run=_export)

    s = sub.add_parser("average", help="average fine-tunes of one starting point into one checkpoint (a model soup)")
    s.add_argument("checkpoints", nargs="+", help="train's best.pt files, same architecture and start")
    s.add_argument("--out", required=True)
    s.set_defaults(run=_average)

    s = sub.add_parser("evaluate", help="metrics and a report for a model on a manifest or class folders")
    s.add_argument("data", help="a manifest CSV, or a folder with male/ and female/")
    s.add_argument("--model", action="append", help="ONNX model (default: the shipped model); repeat to put "
                   "models side by side")
    s.add_argument("--crop", type=float, default=1.0, help="evaluate on centre crops of this fraction (tight: 0.65)")
    s.add_argument("--out", default="evaluation", help="folder for report.json, report.md and plots")
    s.add_argument("--limit", type=int, default=0, help="evaluate a seeded sample of this many images")
    s.add_argument("--occlude", choices=["sunglasses", "cap", "mask", "hidden"], help="draw this over every face "
                   "first (seeded per image): how much the model leans on what it covers")
    s.set_defaults(run=_evaluate)

    from .training.quantize import CALIBRATION_IMAGES, FLOAT_NODES  # numpy only
    from .training.quantize_detector import PHOTOS

    s = sub.add_parser("quantize", help="exported model -> static int8 copy (fast on CPUs with VNNI) + .sha256")
    s.add_argument("model")
    s.add_argument("--out", required=True, help="e.g. src/facegender/weights/facegender-default.int8.onnx")
    s.add_argument("--calibration", default="manifests/train.csv", help="manifest of faces to calibrate on")
    s.add_argument("--images", type=int, help=f"calibration faces (seeded sample, even over sources; {CALIBRATION_IMAGES}), "
                   f"or with --detector photos built from them ({PHOTOS})")
    s.add_argument("--detector", action="store_true", help="the model is the SCRFD detector (weights/scrfd-2.5g.onnx): "
                   "calibrate on photos built from the manifest's faces")
    s.add_argument("--float-nodes", choices=FLOAT_NODES, default="stem",
                   help="what stays float: the first convolution (default), or nothing")
    s.set_defaults(run=_quantize)

    s = sub.add_parser("serve", help="HTTP service: POST /v1/classify, web page at /, docs at /docs (extra `serve`)",
                       description="Every option can also be set as FACEGENDER_<NAME> (e.g. FACEGENDER_API_KEY).")
    s.add_argument("--host", help="address to bind (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, help="default 8000")
    s.add_argument("--api-key", help="require this key (X-API-Key or Authorization: Bearer) on /v1/* and /metrics")
    s.add_argument("--model", help="ONNX model (default: the shipped model)")
    s.add_argument("--precision", choices=PRECISIONS, help="the shipped model's (default auto: "
                   "int8 where the CPU has VNNI); GET /v1/model says which ran and why")
    s.add_argument("--detector", choices=DETECTORS, help="for ?detect=true (default scrfd)")
    s.add_argument("--min-face", type=float, help="for ?detect=true: smallest face searched for, pixels (as process)")
    s.add_argument("--detector-side", type=int, help="for ?detect=true (SCRFD): longest side of its input (as process)")
    s.add_argument("--cors-origin", help="allow these browser origins, comma-separated (default: no CORS)")
    s.add_argument("--max-request-mb", type=float, help="request body limit (default 32)")
    s.add_argument("--max-files", type=int, help="files per request (default 64)")
    s.add_argument("--max-pixels", type=int, help="pixels per image (default and maximum: process's 40,000,000)")
    s.add_argument("--timeout", type=float, help="seconds per request (default 30)")
    s.add_argument("--workers", type=int, help="decode/classify threads (default: one per core)")
    s.add_argument("--max-in-flight", type=int, help="classify requests at once; beyond, 503 + Retry-After (default 32)")
    s.add_argument("--header-timeout", type=float, help="seconds for a request's head, else dropped (default 10)")
    s.add_argument("--body-timeout", type=float, help="seconds for each 16 KB of a body, else dropped (default 10)")
    s.set_defaults(run=_serve)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb == "process":
        _check_engine(parser, args)
    try:
        return args.run(args)
    except FacegenderError as e:  # what the library raises instead of exiting: one line, exit 1
        print(f"facegender: error: {e}", file=sys.stderr)
        return 1


def _check_engine(parser, a) -> None:
    """Options that only one engine has are refused (exit 2) rather than ignored."""
    if a.engine != "ray" and (a.address or a.format != "json" or a.read_tasks):
        parser.error("--address, --format and --read-tasks need --engine ray")
    if a.engine == "ray" and a.annotate:
        parser.error("--annotate runs with the local engine only")
    if a.format != "json" and (a.resume or a.details):
        parser.error("--resume and --details go with --format json; a row-file run writes every row again")
    if a.format != "json" and a.output == "process_results.json":
        a.output = f"process_results_{a.format}"  # a folder of row files, not one JSON


if __name__ == "__main__":
    sys.exit(main())
