"""Is the Hugging Face hub usable right now? Decided fast, so offline runs never wait on timeouts."""

from __future__ import annotations

import concurrent.futures
import functools
import os
import socket

HUB_HOST = "huggingface.co"
_TRUE = {"1", "true", "yes", "on"}


def offline_forced() -> bool:
    """True when the user asked for offline mode (``HF_HUB_OFFLINE`` or ``LAB_OFFLINE`` set to 1/true).

    >>> import os; os.environ["LAB_OFFLINE"] = "1"; offline_forced()
    True
    >>> del os.environ["LAB_OFFLINE"]
    """
    return any(os.environ.get(var, "").strip().lower() in _TRUE for var in ("HF_HUB_OFFLINE", "LAB_OFFLINE"))


def _can_connect(host: str, port: int, timeout_s: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout_s: float = 3.0) -> bool:
    """True when a TCP connection to the hub opens within ``timeout_s`` (DNS included); cached per process.

    The DNS lookup runs in a worker thread so a resolver that hangs cannot stall the caller.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(_can_connect, HUB_HOST, 443, timeout_s)
        try:
            return future.result(timeout=timeout_s + 0.5)
        except concurrent.futures.TimeoutError:
            return False


def use_hub() -> bool:
    """True when models and datasets should come from the hub, False for the offline copies.

    >>> import os; os.environ["HF_HUB_OFFLINE"] = "1"; use_hub()
    False
    >>> del os.environ["HF_HUB_OFFLINE"]
    """
    return not offline_forced() and hub_reachable()
