"""The shipped int8 graph: chosen only where the CPU has VNNI (fake /proc/cpuinfo texts), forced
either way by precision, and answering like the float graph it was quantized from."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facegender import manifest
from facegender.classifier import DEFAULT_INT8, DEFAULT_MODEL, Classifier, ModelError, default_model, has_vnni
from facegender.images import load_rgb

from .conftest import ROOT, SAMPLE

AVX2 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse sse2 avx avx2 fma bmi2\n"
AVX512_VNNI = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512bw avx512_vnni\n"
AVX_VNNI = "processor\t: 0\nflags\t\t: fpu avx2 avx_vnni\n"


@pytest.mark.parametrize("cpuinfo, vnni", [(AVX2, False), (AVX512_VNNI, True), (AVX_VNNI, True), ("", False),
                                           ("flags\t\t: avx512_vnnix\n", False)])
def test_vnni_is_read_from_the_flags(cpuinfo, vnni):
    assert has_vnni(cpuinfo) is vnni


@pytest.mark.parametrize("precision, cpuinfo, expected", [
    ("auto", AVX2, DEFAULT_MODEL), ("auto", AVX512_VNNI, DEFAULT_INT8), ("auto", AVX_VNNI, DEFAULT_INT8),
    ("float", AVX512_VNNI, DEFAULT_MODEL), ("int8", AVX2, DEFAULT_INT8)])
def test_shipped_graph_follows_precision_and_cpu(precision, cpuinfo, expected):
    assert default_model(precision, cpuinfo) == expected


def test_unknown_precision_is_one_clear_error():
    with pytest.raises(ModelError, match="auto, float, int8"):
        Classifier(precision="int4")


def test_an_explicit_model_file_wins_over_precision():
    assert Classifier(DEFAULT_MODEL, precision="int8").path == DEFAULT_MODEL
    assert Classifier(precision="int8").path == DEFAULT_INT8


@pytest.fixture(scope="module")
def faces():
    clf = Classifier(DEFAULT_MODEL, threads=1)
    return np.stack([clf.pre.fit(load_rgb(r.path)) for r in manifest.read(SAMPLE)[:200]])


def test_int8_graph_is_shipped_checked_and_agrees_with_float(faces):
    assert DEFAULT_INT8.with_name(DEFAULT_INT8.name + ".sha256").is_file()
    q, f = Classifier(precision="int8", threads=1), Classifier(precision="float", threads=1)
    assert q.meta["int8"] is True and q.pre == f.pre and q.labels == f.labels
    pq, pf = q.predict(faces)[:, 1], f.predict(faces)[:, 1]
    assert np.mean((pq >= 0.5) == (pf >= 0.5)) >= 0.97
    assert np.abs(pq - pf).mean() < 0.03


def test_process_takes_precision(face_folder, tmp_path):
    answers, details = {}, {}
    for precision in ("float", "int8"):
        out, det = tmp_path / f"{precision}.json", tmp_path / f"{precision}-details.json"
        r = subprocess.run([sys.executable, str(ROOT / "process.py"), str(face_folder), "--precision", precision,
                            "-o", str(out), "--details", str(det), "-q"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        answers[precision] = json.loads(out.read_text())
        details[precision] = json.loads(det.read_text())["files"]
    same = sum(answers["float"][k] == answers["int8"][k] for k in answers["float"])
    assert len(answers["float"]) == 40 and same >= 38
    # the two runs used different graphs: int8's probabilities are close to float's, not equal
    gaps = [abs(details["float"][k]["p_female"] - details["int8"][k]["p_female"]) for k in details["float"]]
    assert max(gaps) > 1e-4 and sum(gaps) / len(gaps) < 0.05


def test_int8_leaves_only_the_stem_float():
    """The rule behind the shipped copy: every convolution (depthwise included) and the head
    are int8, except the first convolution, which reads the normalised pixels."""
    import onnx

    from facegender.training.quantize import kept_float
    model = onnx.load(str(DEFAULT_MODEL))
    convs = [n.name for n in model.graph.node if n.op_type == "Conv"]
    stems = [c for c in convs if c.endswith(("features.0.0/Conv", "features.0.0_1/Conv"))]  # the pass and its mirror
    assert len(stems) == 2 and kept_float(model) == stems and kept_float(model, "none") == []
    with pytest.raises(ValueError, match="float_nodes"):
        kept_float(model, "depthwise")
    quantized = onnx.load(str(DEFAULT_INT8))  # the shipped copy follows the rule
    made_by = {out: n.op_type for n in quantized.graph.node for out in n.output}
    int8 = {n.name for n in quantized.graph.node
            if n.op_type in ("Conv", "Gemm") and made_by.get(n.input[1]) == "DequantizeLinear"}
    assert int8 == set(convs) - set(stems) | {n.name for n in model.graph.node if n.op_type == "Gemm"}


def test_int8_graph_runs_int8_from_one_convolution_to_the_next(tmp_path):
    """ONNX Runtime fuses the shipped QDQ graph into 102 int8 convolutions with no requantization
    between them (a DequantizeLinear feeding a QuantizeLinear). A ReLU6 left in float made 66
    such pairs, 40% of the int8 graph's time (training/quantize.py)."""
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED  # the QDQ fusions, no CPU-specific layouts
    options.optimized_model_filepath = str(tmp_path / "fused.onnx")
    ort.InferenceSession(str(DEFAULT_INT8), options, providers=["CPUExecutionProvider"])
    fused = onnx.load(str(tmp_path / "fused.onnx")).graph
    made_by = {out: n.op_type for n in fused.node for out in n.output}
    assert sum(n.op_type == "QLinearConv" for n in fused.node) == 102
    assert [n.name for n in fused.node if n.op_type == "QuantizeLinear" and made_by.get(n.input[0]) == "DequantizeLinear"] == []


@pytest.mark.parametrize("vnni, precision, int8", [(False, "auto", False), (True, "auto", True),
                                                   (True, "float", False), (False, "int8", True)])
def test_detector_graph_follows_the_classifiers_rule(monkeypatch, vnni, precision, int8):
    """SCRFD's int8 copy is taken where the classifier's is (the CPU's flags faked), and the
    run says which file and why."""
    import facegender.classifier as classifier
    from facegender.faces import scrfd
    from facegender.faces.detect import FaceDetector
    monkeypatch.setattr(classifier, "has_vnni", lambda cpuinfo=None: vnni)
    detector = FaceDetector(precision=precision)
    assert detector.net.path == (scrfd.INT8 if int8 else scrfd.FLOAT)
    assert detector.loaded.startswith(detector.net.path.name) and ("VNNI" in detector.loaded) == (precision == "auto")
    assert FaceDetector(detector="mtcnn", precision=precision).loaded.endswith("(float only)")


def test_int8_detector_finds_the_faces_the_float_one_does():
    """On a real group photo (InsightFace's six people) and a portrait: as many faces, boxes
    and landmarks within 3% of the face's width, scores within 0.05."""
    from facegender.faces.detect import FaceDetector

    from .test_detect import shipped
    group = load_rgb(shipped("insightface", "data/images/t1.jpg"))
    portrait = load_rgb(shipped("skimage", "data/astronaut.png"))
    for img, faces in ((group, 6), (portrait, 1)):
        (bf, sf, mf), (bq, sq, mq) = (FaceDetector(precision=p).detect(img) for p in ("float", "int8"))
        assert len(bf) == len(bq) == faces
        width = (bf[:, 2] - bf[:, 0])[:, None]
        assert np.abs(bq - bf).max(axis=1).max() < 0.03 * width.min()
        assert (np.abs(mq - mf).max(axis=(1, 2)) < 0.03 * width[:, 0]).all()
        assert np.abs(sq - sf).max() < 0.05


def test_process_says_which_graphs_it_loaded_and_why(tmp_path):
    photos = tmp_path / "in"
    photos.mkdir()
    for r in manifest.read(SAMPLE)[:3]:
        load_rgb(r.path).save(photos / (Path(r.path).stem + ".jpg"))
    r = subprocess.run([sys.executable, str(ROOT / "process.py"), str(photos), "--detect", "--precision", "int8",
                        "-o", str(tmp_path / "r.json")], capture_output=True, text=True, timeout=300)
    assert r.returncode in (0, 1), r.stderr
    assert "classifier: facegender-default.int8.onnx (precision=int8 was asked for)" in r.stderr
    assert "detector: scrfd-2.5g.int8.onnx (precision=int8 was asked for)" in r.stderr


def test_batches_run_in_cache_sized_chunks_with_the_same_answers(faces):
    """One thread: 16 faces per ONNX Runtime call (classifier.CHUNK_ONE_THREAD); the answers do not
    depend on how a batch is cut."""
    for precision in ("float", "int8"):
        clf = Classifier(precision=precision, threads=1)
        assert clf.chunk == 16 and Classifier(precision=precision, threads=2).chunk == 32
        chunked = clf.predict(faces[:50])
        clf.chunk = 50
        assert np.abs(clf.predict(faces[:50]) - chunked).max() < 1e-5
