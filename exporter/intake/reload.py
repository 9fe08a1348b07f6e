"""Reloading the config file: on request (SIGHUP, ``POST /-/reload``) or when it changes.

Kubernetes updates a mounted ConfigMap by writing a new directory and swapping
the ``..data`` symlink, so the file's path never changes while what it resolves
to does: the watcher compares the file's :class:`~exporter.files.Fingerprint`
(the resolved path and the target's device, inode, size and modification
time), not just the mtime of the name.

A config that does not validate is refused: the running one stays, the
problems are logged, and ``batchjob_exporter_config_last_reload_successful``
drops to 0 until a reload succeeds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from exporter.clock import Clock
from exporter.config import Config, ConfigError
from exporter.files import fingerprint

LOG = logging.getLogger(__name__)

# How often the config file is checked for a change; Kubernetes itself takes up to
# a minute to swap a ConfigMap, so a few seconds adds little.
CHECK_INTERVAL = 5.0

Load = Callable[[str], Config]
Apply = Callable[[Config], Awaitable[None]]
Outcome = Callable[[bool], None]


class Reloader:
    """Loads ``path`` with ``load`` and hands a valid config to ``apply``, one reload at a time.

    ``outcome`` is told whether each reload worked (it sets the reload gauges).
    As an async context manager it also watches the file every ``interval``.
    """

    def __init__(
        self,
        path: str,
        *,
        load: Load,
        apply: Apply,
        outcome: Outcome,
        clock: Clock,
        interval: float = CHECK_INTERVAL,
    ) -> None:
        self.path = path
        self._load = load
        self._apply = apply
        self._outcome = outcome
        self._clock = clock
        self._interval = interval
        self._lock = asyncio.Lock()
        self._seen = fingerprint(path)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Reloader:
        self._task = asyncio.create_task(self._watch(), name="config-watch")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The file-watching task, so the owner can see it die."""
        return self._task

    async def close(self) -> None:
        """Stop watching the file; safe to call twice."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def reload(self, why: str) -> str | None:
        """Reload now; ``None`` on success, else the problems (the old config keeps running)."""
        async with self._lock:
            self._seen = fingerprint(self.path)
            try:
                # Reading the file and its secret files is blocking I/O: off the loop.
                config = await asyncio.to_thread(self._load, self.path)
                await self._apply(config)  # raises ConfigError, changing nothing, if unusable
            except ConfigError as exc:
                self._outcome(False)
                LOG.error(
                    "config reload (%s) failed, keeping the running config: %s",
                    why,
                    "; ".join(exc.problems),
                )
                return str(exc)
            except Exception as exc:  # a bug, not a bad config: one line with its traceback
                self._outcome(False)
                LOG.exception("config reload (%s) crashed", why)
                return f"config reload crashed: {exc!r}"
            self._outcome(True)
            jobs = sum(len(s.jobs) for s in config.sources)
            LOG.info("config reloaded (%s): %d sources, %d jobs", why, len(config.sources), jobs)
            return None

    async def _watch(self) -> None:
        never = asyncio.Event()
        while True:
            await self._clock.wait(never, self._interval)
            now = await asyncio.to_thread(fingerprint, self.path)
            if now is not None and now != self._seen:
                await self.reload("file changed")
