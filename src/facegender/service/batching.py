"""Dynamic batching: faces from requests that arrive together go to the model in one call.

A model call on 32 faces costs far less than 32 calls on one (the per-call overhead of ONNX
Runtime dominates a single 80x96 face), so under load the batcher waits a few milliseconds
for more decoded inputs, up to `max_faces`, and hands the lot to `run` in the thread pool.
At most `concurrency` batches run at once; while they do, the next batch fills up.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable


class Batcher:
    def __init__(self, run: Callable[[list, bool], list], executor, max_faces: int = 64, wait_s: float = 0.003,
                 concurrency: int = 1, on_batch: Callable[[int], None] | None = None):
        """run(decoded_list, detecting) -> one answer per item, called in `executor`."""
        self.run, self.executor = run, executor
        self.max_faces, self.wait_s = max_faces, wait_s
        self.slots = asyncio.Semaphore(concurrency)
        self.on_batch = on_batch or (lambda faces: None)
        self.queue: asyncio.Queue = asyncio.Queue()
        self.task: asyncio.Task | None = None
        self.running: set[asyncio.Task] = set()

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._collect())

    async def stop(self) -> None:
        """Let running batches finish, then stop collecting (called after the last request)."""
        if self.running:
            await asyncio.gather(*self.running, return_exceptions=True)
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def submit(self, decoded, detecting: bool):
        """The answer for one decoded input, once its batch has run."""
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((decoded, detecting, future))
        return await future

    def _drain(self, batch: list, faces: int) -> int:
        while faces < self.max_faces and not self.queue.empty():
            item = self.queue.get_nowait()
            batch.append(item)
            faces += max(1, len(item[0].arrays))
        return faces

    async def _collect(self) -> None:
        while True:
            batch = [await self.queue.get()]
            faces = self._drain(batch, max(1, len(batch[0][0].arrays)))
            if faces < self.max_faces and self.wait_s > 0:
                await asyncio.sleep(self.wait_s)  # give inputs decoded right now a chance to join
                faces = self._drain(batch, faces)
            await self.slots.acquire()
            self._drain(batch, faces)  # what arrived while every slot was busy joins too
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self.running.add(task)
            task.add_done_callback(self.running.discard)

    async def _run(self, batch: list) -> None:
        loop = asyncio.get_running_loop()
        try:
            for detecting in (False, True):  # the two modes differ in the model call (mirror pass)
                group = [item for item in batch if item[1] == detecting]
                if not group:
                    continue
                decoded = [item[0] for item in group]
                self.on_batch(sum(len(d.arrays) for d in decoded))
                try:
                    answers = await loop.run_in_executor(self.executor, self.run, decoded, detecting)
                except Exception as e:  # the requests waiting on this batch get the error, not a hang
                    answers = [e] * len(group)
                for (_, _, future), answer in zip(group, answers):
                    if future.done():  # its request timed out or was cancelled
                        continue
                    if isinstance(answer, Exception):
                        future.set_exception(answer)
                    else:
                        future.set_result(answer)
        finally:
            self.slots.release()
