"""Rows (record.Answer.to_row) as Arrow tables, Parquet and JSON-lines files.

The schema is fixed, so files from different workers always agree on their columns,
whatever mix of crops, faces and errors each block held.
"""
from __future__ import annotations

from ..record import Answer


def row_schema():
    import pyarrow as pa

    return pa.schema([("path", pa.string()), ("gender", pa.string()), ("probability", pa.float64()),
                      ("p_female", pa.float64()), ("faces", pa.string()), ("error", pa.string()),
                      ("message", pa.string())])


def to_table(rows: list[dict]):
    import pyarrow as pa

    return pa.Table.from_pylist(rows, schema=row_schema())


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
            summary.count(Answer(error=error, faces=[] if faces == "[]" else None))  # what counting reads
