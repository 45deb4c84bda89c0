"""Talking to a running ``bench.sandbox_process`` from a scenario."""

from __future__ import annotations

from typing import Any

import aiohttp


class StandClient:
    def __init__(self, url: str) -> None:
        self.url = url
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))

    async def close(self) -> None:
        await self._session.close()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        async with self._session.request(method, self.url + path, **kwargs) as response:
            return await response.json()

    async def reset(self, *, latency: float = 0.0) -> None:
        """Forget what was created (memory stays flat across runs) and set the latency."""
        await self._call("POST", "/_sandbox/reset")
        if latency:
            await self._call("POST", "/_sandbox/state", json={"faults": {"latency": latency}})
        await self._call("POST", "/_bench/window")

    async def reset_window(self) -> None:
        await self._call("POST", "/_bench/window")

    async def window(self) -> dict[str, Any]:
        window: dict[str, Any] = await self._call("GET", "/_bench/window")
        return window

    async def wait(self, number: str, wait_seconds: float = 10.0) -> float | None:
        answer = await self._call(
            "GET", "/_bench/wait", params={"number": number, "timeout": str(wait_seconds)}
        )
        received: float | None = answer["received"]
        return received
