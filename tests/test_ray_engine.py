"""--engine ray gives the local engine's answers, file for file, on one local Ray (2 CPUs)."""
import json
import os
import shutil

import pytest
from PIL import Image

from facegender.engines.local import process_folder
from facegender.options import ProcessOptions

from .conftest import real_images
from .test_detect import shipped

ray = pytest.importorskip("ray", reason="the ray extra: pip install -e '.[ray]' (.ci/run installs it)")
from facegender.engines.ray_engine import process_source  # noqa: E402

BAD_REASONS = {"truncated.jpg": "truncated", "text.jpg": "not_an_image", "empty.jpg": "empty_file",
               "broken.jpg": "broken_symlink", "folder.jpg": "not_a_file"}


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """30 real faces (two named the way Ray's own folder listing skips: _x and .x) + bad files."""
    d = tmp_path_factory.mktemp("ray_faces")
    faces = [p for cls in ("male", "female") for p in real_images("celeba-89x109", cls, 8) + real_images("utkface", cls, 7)]
    for p in faces:
        shutil.copy(p, d / p.name)
    shutil.copy(faces[0], d / "_underscore.jpg")
    shutil.copy(faces[-1], d / ".hidden.jpg")
    (d / "truncated.jpg").write_bytes(faces[1].read_bytes()[:1500])
    (d / "text.jpg").write_text("not a photo\n")
    (d / "empty.jpg").write_bytes(b"")
    os.symlink(d / "missing.jpg", d / "broken.jpg")
    (d / "folder.jpg").mkdir()
    (d / "sub").mkdir()  # not entered without -r
    shutil.copy(faces[2], d / "sub" / "nested.jpg")
    return d


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    d = tmp_path_factory.mktemp("ray_photos")
    Image.open(shipped("skimage", "data/astronaut.png")).convert("RGB").save(d / "astronaut.jpg")
    Image.open(shipped("skimage", "data/coffee.png")).convert("RGB").save(d / "coffee.jpg")  # no one
    Image.open(shipped("insightface", "data/images/t1.jpg")).save(d / "group.jpg")
    (d / "text.jpg").write_text("not a photo\n")
    return d


def run_both(src, tmp_path, detect: bool = False):
    """(local results, local details, ray results, ray details) for one folder."""
    out = {}
    for engine in ("local", "ray"):
        opts = ProcessOptions(output=str(tmp_path / f"{engine}.json"), details=str(tmp_path / f"{engine}_details.json"),
                              progress=False, detect=detect, batch_size=8)
        if engine == "local":
            opts.threads = 1  # in this process: no fork of a process running Ray
            summary = process_folder(src, opts)
        else:
            summary = process_source(str(src), opts)
        out[engine] = summary, json.loads((tmp_path / f"{engine}.json").read_text()), \
            json.loads((tmp_path / f"{engine}_details.json").read_text())
    return out["local"], out["ray"]


def assert_same_answers(local_details: dict, ray_details: dict) -> None:
    assert ray_details.keys() == local_details.keys()
    for name, want in local_details.items():
        got = ray_details[name]
        if "error" in want:
            assert got["error"] == want["error"], name
            continue
        wanted_faces, got_faces = want.get("faces", [want]), got.get("faces", [got])
        assert [f["gender"] for f in got_faces] == [f["gender"] for f in wanted_faces], name
        # another batch mix can move ONNX Runtime's sums in the last bits, never by more
        assert [f["p_female"] for f in got_faces] == pytest.approx([f["p_female"] for f in wanted_faces], abs=1e-5), name


def test_crops_match_the_local_engine(folder, tmp_path):
    (local, local_results, local_details), (ray_summary, ray_results, ray_details) = run_both(folder, tmp_path)
    assert ray_results == local_results and len(ray_results) == 32  # the 30 faces + _underscore + .hidden
    assert_same_answers(local_details["files"], ray_details["files"])
    assert {n: ray_details["files"][n]["error"] for n in BAD_REASONS} == BAD_REASONS
    for key in ("inputs", "classified", "failed", "errors_by_reason", "notes", "exit_code"):
        assert ray_details["summary"][key] == local_details["summary"][key], key
    assert ray_summary.exit_code == local.exit_code == 1


def test_detect_mode_matches_the_local_engine(photos, tmp_path):
    (_, local_results, local_details), (_, ray_results, ray_details) = run_both(photos, tmp_path, detect=True)
    assert ray_results == local_results
    assert ray_results["astronaut.jpg"] == "female" and ray_results["coffee.jpg"] is None  # Eileen Collins; a cup
    assert len(ray_details["files"]["group.jpg"]["faces"]) == len(local_details["files"]["group.jpg"]["faces"]) > 1
    assert_same_answers(local_details["files"], ray_details["files"])
    assert ray_details["summary"]["no_face"] == local_details["summary"]["no_face"] == 1


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_row_files_hold_one_row_per_input(folder, tmp_path, fmt):
    import pyarrow.dataset as pads

    from facegender.record import Answer

    local = ProcessOptions(output=str(tmp_path / "local.json"), details=str(tmp_path / "d.json"), progress=False, threads=1)
    process_folder(folder, local)
    results = json.loads((tmp_path / "local.json").read_text())
    want = {n: Answer.from_dict(d).to_row(n) for n, d in json.loads((tmp_path / "d.json").read_text())["files"].items()}
    out = tmp_path / fmt
    src = folder.as_uri() if fmt == "parquet" else str(folder)
    summary = process_source(src, ProcessOptions(output=str(out), progress=False, format=fmt))
    if fmt == "parquet":
        table = pads.dataset(str(out), format="parquet").to_table().to_pylist()
    else:
        table = [json.loads(line) for f in sorted(out.iterdir()) for line in f.read_text().splitlines()]
    rows = {r["path"]: r for r in table}
    assert len(table) == len(rows) == len(want) == summary.inputs == 37
    assert {n: (r["gender"], r["error"]) for n, r in rows.items()} == {n: (r["gender"], r["error"]) for n, r in want.items()}
    assert [rows[n]["p_female"] for n in results] == pytest.approx([want[n]["p_female"] for n in results], abs=1e-5)
    assert (summary.classified, summary.failed, dict(summary.errors)) == (32, 5, {r: 1 for r in BAD_REASONS.values()})


@pytest.mark.parametrize("recursive", [False, True])
def test_object_store_listing_names_files_as_the_local_engine(folder, recursive):
    from facegender.engines.listing import list_remote
    from facegender.run import list_inputs

    names, notes = list_inputs(folder, recursive)
    got = list_remote(folder.as_uri(), recursive)  # file:// through pyarrow.fs, as s3:// and gs:// are listed
    assert got.names == [n for n in names if n != "broken.jpg"]  # pyarrow leaves out broken symlinks (none on object stores)
    assert got.notes == notes and ("sub/nested.jpg" in got.names) == recursive
    assert {n: e["error"] for n, e in got.failed.items()} == ({} if recursive else {"folder.jpg": "not_a_file"})


def test_cli_runs_the_ray_engine_and_refuses_its_options_without_it(folder, tmp_path, capsys):
    from facegender.cli import main

    out = tmp_path / "r.json"
    assert main(["process", str(folder), "--engine", "ray", "-o", str(out), "-q"]) == 1  # some files are bad
    assert len(json.loads(out.read_text())) == 32
    assert "failures by reason" in capsys.readouterr().err
    for extra in (["--format", "parquet"], ["--address", "auto"], ["--read-tasks", "4"]):
        with pytest.raises(SystemExit) as e:
            main(["process", str(folder), *extra])
        assert e.value.code == 2


def test_resume_does_only_the_rest(folder, tmp_path):
    out = tmp_path / "r.json"
    opts = ProcessOptions(output=str(out), progress=False)
    process_source(str(folder), opts)
    full = json.loads(out.read_text())
    out.write_text(json.dumps(dict(sorted(full.items())[:10])))
    opts.resume = True
    summary = process_source(str(folder), opts)
    assert (summary.resumed, summary.classified, summary.failed) == (10, len(full) - 10, len(BAD_REASONS))
    assert json.loads(out.read_text()) == full
