"""One options object: the CLI's flags are ProcessOptions' fields, api.process passes it whole,
and the service's detector settings reach its detector."""
from __future__ import annotations

import json
from dataclasses import fields

import pytest

import facegender as fg
from facegender import cli
from facegender.errors import ConfigError
from facegender.options import ProcessOptions


def parsed(*argv) -> ProcessOptions:
    a = cli.build_parser().parse_args(["process", "photos", *argv])
    return ProcessOptions(**{f.name: getattr(a, f.name) for f in fields(ProcessOptions) if hasattr(a, f.name)})


def test_every_option_is_a_process_flag_with_the_options_default():
    a = cli.build_parser().parse_args(["process", "photos"])
    missing = [f.name for f in fields(ProcessOptions) if not hasattr(a, f.name) and f.name != "checkpoint_seconds"]
    assert missing == []
    assert parsed() == ProcessOptions()


def test_flags_land_in_their_fields():
    opts = parsed("--detect", "--detector", "mtcnn", "--min-face", "30", "--max-faces", "2", "--detector-side", "800",
                  "--precision", "float", "--threads", "1", "-q")
    assert (opts.detect, opts.detector, opts.min_face, opts.max_faces, opts.detector_side) == (True, "mtcnn", 30.0, 2, 800)
    assert (opts.precision, opts.threads, opts.progress) == ("float", 1, False)
    det = opts.face_detector()
    assert (det.name, det.min_face, det.max_faces) == ("mtcnn", 30.0, 2)
    assert ProcessOptions().face_detector() is None


@pytest.mark.parametrize("field, value", [("precision", "fp16"), ("detector", "hog"), ("engine", "spark"),
                                          ("format", "csv")])
def test_a_bad_choice_is_a_config_error(field, value):
    with pytest.raises(ConfigError, match=field):
        ProcessOptions(**{field: value})


def test_api_process_keeps_precision(face_folder, tmp_path, monkeypatch):
    """api.process once dropped precision: the graph asked for, not auto's, must be loaded
    (asking for the one auto does not pick on this CPU, so the test bites on every CPU)."""
    import facegender.api as api
    from facegender.classifier import has_vnni

    want = "float" if has_vnni() else "int8"

    loaded = []
    real = api.process_folder
    monkeypatch.setattr(api, "process_folder", lambda folder, opts, clf: loaded.append(clf) or real(folder, opts, clf))
    out = tmp_path / "r.json"
    summary = fg.process(face_folder, output=str(out), precision=want, progress=False)
    assert loaded[0].precision == want
    assert summary.classified == len(json.loads(out.read_text())) > 0


def test_service_settings_carry_the_detector(monkeypatch):
    from facegender.service.settings import Settings

    s = Settings.from_env({"FACEGENDER_MIN_FACE": "30", "FACEGENDER_DETECTOR": "mtcnn"}, detector_side=800)
    assert (s.min_face, s.detector, s.detector_side) == (30.0, "mtcnn", 800)
    a = cli.build_parser().parse_args(["serve", "--detector", "mtcnn", "--min-face", "28"])
    assert (a.detector, a.min_face) == ("mtcnn", 28.0)
