"""A listen address as the config writes it: ``HOST:PORT`` or ``off``."""

from __future__ import annotations


def listen_address(value: str) -> tuple[str, int] | None:
    """``"127.0.0.1:9464"``, ``"[::1]:9464"``, ``"0.0.0.0:0"``; None for ``off``."""
    if value.strip().lower() in {"off", "none", ""}:
        return None
    host, sep, port = value.strip().rpartition(":")
    if not sep or not port.isdigit() or not host or int(port) > 65535:
        raise ValueError(f"expected HOST:PORT or off, got {value!r}")
    return host.strip("[]"), int(port)
