"""One record: an Answer serialises to the details record, to a Ray row and back unchanged,
and the HTTP schema is that record plus `file`."""
from __future__ import annotations

import dataclasses

import pytest

from facegender.record import Answer, FaceAnswer

FACE = FaceAnswer("female", 0.91, 0.91, [1.0, 2.0, 30.0, 40.0], [[5.0, 6.0]] * 5, 0.88)
KINDS = {
    "crop": Answer(gender="male", probability=0.8, p_female=0.2),
    "faces": Answer(faces=[FACE, dataclasses.replace(FACE, gender="male", probability=0.7, p_female=0.3)]),
    "no face": Answer(faces=[], reason="no face found"),
    "failed": Answer.failed("truncated", "image file is truncated"),
}


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_survives_the_row_and_the_dict(kind):
    a = KINDS[kind]
    assert Answer.from_row(a.to_row("x.jpg")) == a
    assert Answer.from_dict(a.to_dict()) == a


def test_the_value_is_the_most_prominent_faces_gender():
    assert [KINDS[k].value for k in KINDS] == ["male", "female", None, None]
    row = KINDS["faces"].to_row("p.jpg")
    assert (row["gender"], row["p_female"], row["message"]) == ("female", 0.91, None)


def test_the_details_record_omits_what_its_kind_does_not_fill():
    assert KINDS["crop"].to_dict() == {"gender": "male", "probability": 0.8, "p_female": 0.2}
    assert KINDS["no face"].to_dict() == {"faces": [], "reason": "no face found"}
    assert list(KINDS["faces"].to_dict()["faces"][0]) == [f.name for f in dataclasses.fields(FaceAnswer)]


def test_the_http_schema_is_the_record_with_its_file():
    from facegender.service.schemas import FileResult

    assert list(FileResult.model_fields) == ["file", *(f.name for f in dataclasses.fields(Answer))]
    FileResult.model_validate({"file": "a.jpg", **KINDS["faces"].to_dict()})
