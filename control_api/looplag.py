"""Event-loop lag probe: one loop carries every call's audio, so anything holding it shows up here."""

from __future__ import annotations

import asyncio
import contextlib
import time

from control_api.metrics import LOOP_LAG

PROBE_INTERVAL_SECONDS = 0.1


class LoopLagProbe:
    """Measure how late the loop wakes a sleeper; the overshoot is the lag (``voxdesk_event_loop_lag_seconds``).

    Args:
        interval: Seconds between probes.
    """

    def __init__(self, *, interval: float = PROBE_INTERVAL_SECONDS) -> None:
        self.interval = interval
        self.max_lag = 0.0
        self.samples = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start probing on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag-probe")

    async def stop(self) -> None:
        """Stop probing and wait for the task to finish."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(self.interval)
            lag = max(0.0, time.perf_counter() - start - self.interval)
            LOOP_LAG.observe(lag)
            self.max_lag = max(self.max_lag, lag)
            self.samples += 1
