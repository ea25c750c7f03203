"""One row per input, the form a distributed engine moves and archives results in, and the
way back to the local engine's `process_results.json` / `--details` records.

A row is flat (path, gender, probability, p_female, faces as a JSON string, error, message)
with a fixed Arrow schema, so Parquet and JSON-lines files from different workers always
agree on their columns, whatever mix of crops, faces and errors each block held.
"""
from __future__ import annotations

import json

ROW_FIELDS = ("path", "gender", "probability", "p_female", "faces", "error", "message")


def row_schema():
    import pyarrow as pa

    return pa.schema([("path", pa.string()), ("gender", pa.string()), ("probability", pa.float64()),
                      ("p_female", pa.float64()), ("faces", pa.string()), ("error", pa.string()),
                      ("message", pa.string())])


def to_table(rows: list[dict]):
    import pyarrow as pa

    return pa.Table.from_pylist(rows, schema=row_schema())


def row_of(name: str, value, detail: dict) -> dict:
    """(process_results.json value, details record) of one input -> its row."""
    row = dict.fromkeys(ROW_FIELDS)
    row["path"] = name
    if "error" in detail:
        row["error"], row["message"] = detail["error"], detail.get("message")
    elif "faces" in detail:  # detect mode: the most prominent face answers for the photo
        row["faces"] = json.dumps(detail["faces"])
        row["message"] = detail.get("reason")
        if detail["faces"]:
            first = detail["faces"][0]
            row["gender"], row["probability"], row["p_female"] = value, first["probability"], first["p_female"]
    else:
        row["gender"], row["probability"], row["p_female"] = value, detail["probability"], detail["p_female"]
    return row


def answer_of(row: dict) -> tuple[object, dict]:
    """A row -> (value, details record), exactly as the local engine records that input."""
    if row["error"] is not None:
        return None, {"error": row["error"], "message": row["message"]}
    if row["faces"] is not None:
        faces = json.loads(row["faces"])
        return (faces[0]["gender"], {"faces": faces}) if faces else (None, {"faces": [], "reason": row["message"]})
    return row["gender"], {"gender": row["gender"], "probability": row["probability"], "p_female": row["p_female"]}


def tally(summary, error: str | None, faces: str | None) -> None:
    """Count one finished input into a pipeline.Summary, as `process_folder` does."""
    if error is not None:
        summary.failed += 1
        summary.errors[error] += 1
        return
    summary.classified += 1
    summary.no_face += faces == "[]"


def write_table(ds, dest: str, fmt: str) -> None:
    """Ray Dataset of rows -> Parquet or JSON-lines files under `dest` (local or a URI),
    replacing what an earlier run left there."""
    from ray.data import SaveMode

    if fmt == "parquet":
        ds.write_parquet(dest, mode=SaveMode.OVERWRITE)
    elif fmt == "jsonl":
        ds.write_json(dest, mode=SaveMode.OVERWRITE)
    else:
        raise ValueError(f"unknown table format {fmt!r} (parquet or jsonl)")


def read_counts(dest: str, fmt: str, summary) -> None:
    """Tally what was written (error and faces columns only), so the summary counts the
    rows that reached the archive rather than what the engine meant to write."""
    import pyarrow.json as pajson
    import ray.data

    if fmt == "parquet":
        ds = ray.data.read_parquet(dest).select_columns(["error", "faces"])
    else:  # JSON lines carry no types: a file starting with an error row would read gender as null
        ds = ray.data.read_json(dest, parse_options=pajson.ParseOptions(explicit_schema=row_schema()))
        ds = ds.select_columns(["error", "faces"])
    for batch in ds.iter_batches(batch_format="pyarrow", batch_size=4096):
        for error, faces in zip(batch.column("error").to_pylist(), batch.column("faces").to_pylist()):
            tally(summary, error, faces)
