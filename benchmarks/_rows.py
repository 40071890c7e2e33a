"""What every benchmark module returns: report rows, and progress lines while it runs."""

from __future__ import annotations

from typing import Any, Callable

Progress = Callable[[str], Any] | None


def row(name: str, value: float | None, unit: str, *, baseline_name: str | None = None,
        baseline_value: float | None = None, ratio: float | None = None,
        target: str | None = None, ok: bool | None = None, **extra: Any) -> dict:
    r = {"name": name, "value": value, "unit": unit, "baseline_name": baseline_name,
         "baseline_value": baseline_value, "ratio": ratio, "target": target, "ok": ok}
    r.update(extra)
    return r


def say(progress: Progress, message: str) -> None:
    # A broken progress display must not cost the measurement.
    if progress is not None:
        try:
            progress(message)
        except Exception:
            pass
