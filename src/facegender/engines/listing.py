"""Every input of a source, named as the local engine names it, before any engine reads it.

A local folder is listed by `run.list_inputs` (os.walk: the same names, the same
sub-folder rule); other sources (s3://, gs://, hdfs://, file://) by pyarrow.fs. Entries
that cannot be read as files (sub-folders named like images, broken symlinks, permission
denied) get their per-file error here, from `predict.decode`, so an engine that reads bytes
in bulk never fails a block on them nor drops them silently.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..images import IMAGE_SUFFIXES
from ..predict import decode
from ..run import list_inputs


@dataclass
class Listing:
    names: list[str]  # every input, relative names, sorted (the keys of process_results.json)
    prefix: str  # path of a name to read = prefix + name
    readable: list[str] = field(default_factory=list)  # names to read
    failed: dict = field(default_factory=dict)  # name -> {"error", "message"} found while listing
    notes: list[str] = field(default_factory=list)
    filesystem: object = None  # pyarrow filesystem of a remote source; None: local

    def path(self, name: str) -> str:
        return self.prefix + name


def list_source(src: str, recursive: bool, pre) -> Listing:
    """List `src`; raises FileNotFoundError when it is not a folder (as `process_folder`).
    file:// URIs are listed as local folders: pyarrow's listing leaves out broken symlinks."""
    src = str(src)
    if src.startswith("file://"):
        from urllib.parse import unquote, urlparse
        src = unquote(urlparse(src).path)
    return list_remote(src, recursive) if "://" in src else _list_local(Path(src), recursive, pre)


def _list_local(folder: Path, recursive: bool, pre) -> Listing:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder" if folder.exists() else f"folder {folder} does not exist")
    names, notes = list_inputs(folder, recursive)
    out = Listing(names, os.path.abspath(folder) + os.sep, notes=notes)
    for name in names:
        p = folder / name
        if os.path.isfile(p) and os.access(p, os.R_OK):
            out.readable.append(name)
            continue
        error = decode(p, pre).error  # the local engine's reason: not_a_file, broken_symlink, permission_denied
        if error:
            out.failed[name] = error
        else:  # became readable since the check
            out.readable.append(name)
    return out


def list_remote(uri: str, recursive: bool) -> Listing:
    """A folder on an object store or HDFS (s3://, gs://, hdfs://), listed through pyarrow.fs."""
    from pyarrow import fs as pafs

    filesystem, root = pafs.FileSystem.from_uri(uri)
    root = root.rstrip("/")
    if filesystem.get_file_info(root).type != pafs.FileType.Directory:
        raise FileNotFoundError(f"{uri} is not a folder")
    out = Listing([], root + "/", filesystem=filesystem)
    skipped_dirs = 0
    for info in filesystem.get_file_info(pafs.FileSelector(root, recursive=recursive)):
        name = info.path[len(out.prefix):]
        if info.type == pafs.FileType.Directory:
            if recursive:
                continue
            if PurePosixPath(name).suffix.lower() not in IMAGE_SUFFIXES:
                skipped_dirs += 1
                continue
            out.failed[name] = {"error": "not_a_file", "message": f"{info.path} is a directory"}
        else:
            out.readable.append(name)
        out.names.append(name)
    out.names.sort()
    out.readable.sort()
    if skipped_dirs:
        out.notes.append(f"{skipped_dirs} sub-folder(s) not entered (use --recursive)")
    return out
