"""The package's layering, checked on its source: where the environment is read, where SQL and
attribute names live."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ppp_otel"
SOURCES = sorted(PACKAGE.rglob("*.py"))


def _relative(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def test_only_the_config_module_reads_the_environment():
    readers = [
        _relative(path) for path in SOURCES
        if re.search(r"os\.environ|os\.getenv|getenv\(", path.read_text(encoding="utf-8"))
    ]
    assert readers == ["config/settings.py"]


_SQL = re.compile(r"\b(SELECT\s+\S|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|PRAGMA\s+\w|CREATE\s+(TABLE|INDEX))")


def _sql_strings(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and _SQL.search(node.value):
            found.append(node.value)
    return found


@pytest.mark.parametrize("path", [p for p in SOURCES if not _relative(p).startswith("storage/")], ids=_relative)
def test_no_sql_outside_storage(path):
    assert _sql_strings(path) == []


# ppp's own span, event and annotation names and the OpenInference ones it writes.
_ATTRIBUTE_NAME = re.compile(
    r"^(openinference\.|ppp\.|session\.id$|(input|output)\.(value|mime_type)$"
    r"|llm\.(token_count|input_messages|output_messages|model_name))"
)


@pytest.mark.parametrize(
    "path",
    # The config module's "ppp.<section>.<key>" strings are settings, not attributes.
    [p for p in SOURCES if _relative(p) not in ("conventions.py", "config/settings.py")],
    ids=_relative,
)
def test_attribute_names_are_spelled_only_in_the_conventions_module(path):
    spelled = [node.value for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
               if isinstance(node, ast.Constant) and isinstance(node.value, str) and _ATTRIBUTE_NAME.match(node.value)]
    assert spelled == []


def test_no_class_is_longer_than_250_lines():
    long = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > 250:
                long.append(f"{_relative(path)}:{node.name}")
    assert long == []
