"""The two small helpers every layer shares: the bounded LRU map and the log limiter."""

from __future__ import annotations

import logging

from ppp_otel.logs import LogLimiter
from ppp_otel.lru import LRUMap


def test_the_least_recently_used_entry_is_forgotten_first():
    m = LRUMap(2)
    m.put("a", 1)
    m.put("b", 2)
    assert m.get("a") == 1  # a is now the newest
    m.put("c", 3)
    assert "b" not in m and m.get("a") == 1 and m.get("c") == 3 and len(m) == 2


def test_a_map_of_capacity_zero_keeps_nothing():
    m = LRUMap(0)
    m.put("a", 1)
    assert m.get("a") is None and len(m) == 0


def test_a_log_once_limiter_logs_each_kind_once(caplog):
    log = LogLimiter.once(logging.getLogger("ppp_otel.test"))
    with caplog.at_level(logging.WARNING, logger="ppp_otel.test"):
        for _ in range(3):
            log("broken: %s", "a", key="a")
            log("broken: %s", "b", key="b")
    assert [r.getMessage() for r in caplog.records] == ["broken: a", "broken: b"]


def test_a_forgotten_kind_is_logged_again(caplog):
    log = LogLimiter.once(logging.getLogger("ppp_otel.test"))
    with caplog.at_level(logging.WARNING, logger="ppp_otel.test"):
        log("broken", key="x")
        log.forget("x")
        log("broken", key="x")
    assert len(caplog.records) == 2


def test_the_default_limiter_logs_the_first_ten_then_every_thousandth_with_its_count(caplog):
    log = LogLimiter(logging.getLogger("ppp_otel.test"))
    with caplog.at_level(logging.WARNING, logger="ppp_otel.test"):
        for _ in range(2000):
            log("queue full")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 12 and messages[-1] == "queue full (occurrence 2000)"
