"""What the repository itself holds: text a user reads as it is."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFLICT_MARKER = re.compile(r"^(<{7}( .*)?|={7}|>{7}( .*)?)$", re.M)


def _tracked_texts() -> list[Path]:
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    paths = [ROOT / p for p in listed.decode().split("\0") if p]
    return [p for p in paths if p.suffix in {".md", ".py", ".toml", ".yml", ".yaml", ".txt", ".cfg", ""} and p.is_file()]


def test_no_tracked_file_keeps_a_merge_conflict_marker():
    marked = []
    for path in _tracked_texts():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for match in CONFLICT_MARKER.finditer(text):
            marked.append(f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, match.start()) + 1}: {match.group(0)}")
    assert not marked, "merge conflict markers left in:\n" + "\n".join(marked)
