"""Which Phoenix project holds given spans, asked through Phoenix's REST API.

A project is where a span's resource filed it when it was exported
(``openinference.project.name``): ``ppp-otel demo --phoenix`` records into
``ppp-otel-demo``, an application into its own. A consensus span sent there
is seen beside the trajectories it judged. ``GET /v1/projects`` lists the
projects (``cursor`` / ``next_cursor``); ``GET /v1/projects/{id}/spans``
with ``span_id=`` filters (arize-phoenix 20.x) says which of the spans each
has. Only the spans asked for are counted, whatever a server that ignores the
filter answers. Nothing here raises: a Phoenix that cannot be asked gives None.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections import Counter
from typing import Iterable

from ppp_otel.config.settings import PHOENIX_API_KEY_ENV, env_value
from ppp_otel.publish.phoenix_link import PhoenixError, base_url, get_json

logger = logging.getLogger(__name__)

__all__ = ["project_of_spans"]

#: Span ids per request: the query string stays well below common URL limits.
_IDS_PER_REQUEST = 100
_PROJECTS_PER_PAGE = 100
_RETRY_INTERVAL_S = 0.5


def _projects(base: str, headers: dict[str, str], timeout_s: float) -> list[tuple[str, str]]:
    """(id, name) of every project, in Phoenix's order."""
    found: list[tuple[str, str]] = []
    cursor: str | None = None
    while True:
        query = {"limit": _PROJECTS_PER_PAGE, **({"cursor": cursor} if cursor else {})}
        page = get_json(f"{base}/v1/projects?{urllib.parse.urlencode(query)}", headers, timeout_s)
        found.extend((str(p["id"]), str(p["name"])) for p in page.get("data") or [] if "id" in p and "name" in p)
        cursor = page.get("next_cursor")
        if not cursor:
            return found


def _held(base: str, project_id: str, span_ids: list[str], headers: dict[str, str], timeout_s: float) -> int:
    """How many of ``span_ids`` the project has."""
    held = 0
    wanted = set(span_ids)
    for i in range(0, len(span_ids), _IDS_PER_REQUEST):
        chunk = span_ids[i:i + _IDS_PER_REQUEST]
        query = urllib.parse.urlencode([("span_id", s) for s in chunk] + [("limit", len(chunk))])
        try:
            page = get_json(f"{base}/v1/projects/{urllib.parse.quote(project_id, safe='')}/spans?{query}",
                        headers, timeout_s)
        except PhoenixError:
            continue  # a project deleted meanwhile, or one this key may not read
        held += sum(1 for s in page.get("data") or []
                    if isinstance(s, dict) and (s.get("context") or {}).get("span_id") in wanted)
    return held


def project_of_spans(
    phoenix_url: str,
    span_ids: Iterable[str],
    *,
    api_key: str | None = None,
    wait_s: float = 0.0,
    timeout_s: float = 10.0,
) -> str | None:
    """The name of the project holding most of ``span_ids`` (the first listed on a tie);
    None when no project has any of them within ``wait_s`` (spans just exported may not
    be there yet) or Phoenix cannot be asked. ``api_key``: default ``$PHOENIX_API_KEY``."""
    ids = list(dict.fromkeys(s for s in span_ids if s))
    if not ids:
        return None
    base = base_url(phoenix_url)
    headers = {"Accept": "application/json"}
    api_key = api_key if api_key is not None else env_value(PHOENIX_API_KEY_ENV)
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    deadline = time.monotonic() + wait_s
    while True:
        counts: Counter[str] = Counter()
        try:
            for pid, name in _projects(base, headers, timeout_s):
                counts[name] = _held(base, pid, ids, headers, timeout_s)
                if counts[name] == len(ids):
                    return name  # all of them: no other project can hold more
        except PhoenixError as exc:
            logger.info("ppp-otel: cannot find the Phoenix project of the trajectories: %s", exc)
            return None
        best = max(counts.items(), key=lambda item: item[1], default=(None, 0))  # max keeps the first of a tie
        if best[1] > 0:
            return best[0]
        if time.monotonic() >= deadline:
            return None
        time.sleep(_RETRY_INTERVAL_S)
