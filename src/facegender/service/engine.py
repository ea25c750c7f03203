"""The service's inference: the one predict path (predict.decode / classify / record) run off
the event loop, with decoded inputs bounded and faces batched across requests.

Decoding (and detection) runs in a thread pool sized to the cores: Pillow and ONNX Runtime
release the GIL, so threads use every core without copying images between processes. Each
model call is single-threaded, as in `process`'s workers, so calls never oversubscribe cores.
"""
from __future__ import annotations

import asyncio
import functools
import hashlib
import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from ..classifier import Classifier
from ..faces.detect import FaceDetector
from ..images import MAX_PIXELS
from ..predict import Decoded, classify, decode
from .batching import Batcher
from .settings import Settings


class Engine:
    def __init__(self, settings: Settings, classifier: Classifier | None = None, metrics=None):
        self.settings = settings
        self.classifier = classifier or Classifier(settings.model, threads=1, precision=settings.precision)
        self.detector = FaceDetector(threads=1, detector=settings.detector, min_face=settings.min_face,
                                     max_side=settings.detector_side, precision=settings.precision)
        self.metrics = metrics
        self.pool: ThreadPoolExecutor | None = None
        self.decoded_slots: asyncio.Semaphore | None = None
        self.batcher: Batcher | None = None
        self.ready = False

    async def start(self) -> None:
        """Bind to the running loop and classify once, so /healthz is 200 only when it can.
        (An app may be started again after a stop: each start gets a new pool.)"""
        self.pool = ThreadPoolExecutor(self.settings.workers, thread_name_prefix="facegender")
        self.decoded_slots = asyncio.Semaphore(self.settings.max_decoded)
        on_batch = self.metrics.batch_faces.observe if self.metrics else None
        self.batcher = Batcher(self._classify, self.pool, self.settings.batch_size, self.settings.batch_wait_ms / 1000,
                               concurrency=self.settings.workers, on_batch=on_batch)
        self.batcher.start()
        blank = np.full((self.classifier.pre.height, self.classifier.pre.width, 3), 128, np.uint8)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.pool, self.classifier.predict, blank[None])
        await loop.run_in_executor(self.pool, self.detector.detect, Image.fromarray(blank))
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        if self.batcher:
            await self.batcher.stop()
        self.pool.shutdown(wait=True)

    @functools.cache
    def model_info(self) -> dict:
        """What /v1/model answers; the model does not change while the server runs, so once."""
        meta = self.classifier.meta
        path = self.classifier.path
        sidecar = path.with_name(path.name + ".sha256")
        sha = sidecar.read_text().split()[0] if sidecar.exists() else hashlib.sha256(path.read_bytes()).hexdigest()
        return {"name": meta.get("name", path.stem), "labels": list(self.classifier.labels),
                "input_size": {"width": self.classifier.pre.width, "height": self.classifier.pre.height},
                "version": str(meta.get("version") or meta.get("exported") or "unknown"), "sha256": sha,
                "file": path.name, "precision": self.classifier.precision,
                "chosen_because": self.classifier.chosen_because, "detector": self.detector.loaded,
                "architecture": meta.get("architecture"), "validation": meta.get("validation", {}), "card": meta}

    def _classify(self, decoded: list[Decoded], detecting: bool) -> list[dict]:
        return [answer.to_dict() for answer in classify(decoded, self.classifier, detecting)]

    def _decode(self, data: bytes, detector) -> Decoded:
        too_big = self._pixel_guard(data)
        return Decoded(error=too_big) if too_big else decode(data, self.classifier.pre, detector)

    def _pixel_guard(self, data: bytes) -> dict | None:
        """The configured pixel limit, from the header alone; decode applies process's own guard."""
        limit = self.settings.max_pixels
        if limit >= MAX_PIXELS:
            return None
        try:
            with Image.open(io.BytesIO(data)) as img:
                w, h = img.size
        except Exception:
            return None  # not readable: decode says why, in process's words
        if w * h <= limit:
            return None
        return {"error": "too_large", "message": f"{w}x{h} pixels is over this server's limit of {limit:,}"}

    def detector_for(self, max_faces: int | None):
        if not max_faces:
            return self.detector
        return self.detector.limited(max_faces)

    async def classify_files(self, files: list[tuple[str | None, bytes | dict]], detect: bool,
                             max_faces: int | None = None) -> list[dict]:
        """One record per (name, bytes) in order; a dict instead of bytes is that file's error."""
        detector = self.detector_for(max_faces) if detect else None
        loop = asyncio.get_running_loop()

        async def one(name, data) -> dict:
            if isinstance(data, dict):
                return {"file": name, **data}
            async with self.decoded_slots:  # bounds decoded inputs held, across all requests
                d = await loop.run_in_executor(self.pool, self._decode, data, detector)
                try:
                    entry = dict(d.error) if d.error else await self.batcher.submit(d, detect)
                except Exception as e:  # a failed model call is these files' error, never a 500
                    entry = {"error": "unexpected", "message": f"{type(e).__name__}: {e}"}
            return {"file": name, **entry}

        results = await asyncio.gather(*(one(name, data) for name, data in files))
        if self.metrics:
            self.metrics.count_files(results, detect)
        return results
