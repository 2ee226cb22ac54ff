"""What a function's entry point serves with (its configuration, its pipeline), built on first use
and kept for the instance's life: clients are slow to create. A test or a fault-test wrapper
hands in its own through the entry point's `configure` instead of patching the module."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Wired(Generic[T]):
    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._built: tuple[T] | None = None
        self._lock = threading.RLock()

    def __call__(self) -> T:
        with self._lock:
            if self._built is None:
                self._built = (self._build(),)
            return self._built[0]

    def build_with(self, build: Callable[[], T]) -> None:
        """Serve with what `build` makes (on first use) from now on."""
        with self._lock:
            self._build, self._built = build, None
