"""Measures one block of work: wall time, CPU seconds and peak resident memory."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import psutil


@dataclass
class ResourceUsage:
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    peak_rss_bytes: int = 0


class ResourceMeter:
    """Context manager; samples RSS on a thread because ru_maxrss is a lifetime maximum and a
    worker process renders many videos."""

    def __init__(self, interval: float = 0.05) -> None:
        self.usage = ResourceUsage()
        self._interval = interval
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.wait(self._interval):
            self.usage.peak_rss_bytes = max(
                self.usage.peak_rss_bytes, self._process.memory_info().rss
            )

    def __enter__(self) -> ResourceMeter:
        self._wall0 = time.perf_counter()
        times = self._process.cpu_times()
        self._cpu0 = times.user + times.system
        self.usage.peak_rss_bytes = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        times = self._process.cpu_times()
        self.usage.cpu_seconds = times.user + times.system - self._cpu0
        self.usage.wall_seconds = time.perf_counter() - self._wall0
        self.usage.peak_rss_bytes = max(self.usage.peak_rss_bytes, self._process.memory_info().rss)
