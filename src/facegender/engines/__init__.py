"""Engines that run the one predict path (facegender.predict) somewhere other than this
machine's process pool. Each imports its framework lazily, so the plain install needs none."""
