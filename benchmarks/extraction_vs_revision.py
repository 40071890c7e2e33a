"""Question extraction of this tree against an earlier revision: the same questions, and the time.

    python benchmarks/extraction_vs_revision.py --base REV            # 200,000 composed texts
    python benchmarks/extraction_vs_revision.py --base REV --quick    # 20,000

The texts: every string of the repository's tests, benchmarks and test data, and
random compositions of their sentences with what responses carry (code, links,
quotations, abbreviations, list items, headings, JSON, joined and unmarked
questions), seeded so that every run has the same ones. The revision's
``ppp_otel/analysis/questions.py`` (``git show REV:...``) runs beside this tree's
in one process, in interleaved rounds; a text on which the two find different
questions is a failure (exit 1) and is printed.
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import re
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from bench_recording import QUESTION, RESPONSES  # noqa: E402

from ppp_otel.analysis import questions as this_tree  # noqa: E402

_GLUE = (" ", " ", " ", "\n", "\n\n", "\n- ", "\n1. ", "\n* ", ", and ", "; ", " (", ") ", " `x.y?` ",
         ' "quoted? text" ', " https://example.com/a?b=1 ", " e.g. ", " i.e. ", " vs. ", " No. 5 ",
         "\n```\ncode? here\n```\n", " **", "** ", " ¿", "？", "。", " — ", "\n> ", "\n# ", " so ", " Also, ",
         " Please tell me which ", " because ", " Yes, ", " don't ", " 'single' ", "\t", "...", "?!",
         " [link](http://x.io) ", "{", "}", " ~~~\n")


def _repository_strings() -> list[str]:
    strings = set()
    for path in sorted((ROOT / "tests" / "data").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            value = json.loads(line)
            strings.update(v for v in value.values() if isinstance(v, str))
    for path in sorted([*(ROOT / "tests").glob("*.py"), *(ROOT / "benchmarks").glob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and 3 < len(node.value) < 400:
                strings.add(node.value)
    return sorted(strings)


def corpus(n: int) -> list[str]:
    """The repository's strings, then ``n`` compositions of their sentences."""
    rng = random.Random(7)
    strings = _repository_strings()
    sentences = sorted({s.strip() for p in strings for s in re.split(r"(?<=[.!?])\s+", p) if s.strip()})
    texts = list(strings)
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 6)):
            parts.append(rng.choice(sentences))
            if rng.random() < 0.6:
                parts.append(rng.choice(_GLUE))
        text = "".join(parts)
        r = rng.random()
        if r < 0.05:
            text = text.lower()
        elif r < 0.1:
            text = text.upper()
        elif r < 0.13:
            text = json.dumps({"message": text, "options": [rng.choice(sentences)]})
        texts.append(text)
    return texts


def _benchmark_responses(n: int) -> list[str]:
    """The recording benchmark's responses, distinct as there."""
    return [f"{RESPONSES[i & 3]} (change 5.{i})" + (f" {QUESTION[:-1]} for change 5.{i}?" if i & 3 == 0 else "")
            for i in range(n)]


def _revision_module(rev: str) -> types.ModuleType:
    source = subprocess.run(["git", "show", f"{rev}:ppp_otel/analysis/questions.py"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    module = types.ModuleType(f"questions_at_{rev}")
    exec(compile(source, f"{rev}:ppp_otel/analysis/questions.py", "exec"), module.__dict__)
    return module


def _time(extract, texts: list[str]) -> float:
    t0 = time.process_time()
    for text in texts:
        extract(text)
    return (time.process_time() - t0) / len(texts) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the git revision to compare with")
    parser.add_argument("--quick", action="store_true", help="20,000 composed texts instead of 200,000")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    base = _revision_module(args.base)
    texts = corpus(20_000 if args.quick else 200_000)
    print(f"[extraction_vs_revision] {len(texts):,} texts: comparing the questions found", file=sys.stderr)
    differences = [(t, a, b) for t in texts
                   if (a := base.extract_questions(t)) != (b := this_tree.extract_questions(t))]
    for text, was, now in differences[:10]:
        print(f"differs: {text!r}\n  {args.base}: {was}\n  this tree: {now}", file=sys.stderr)
    sets = {"the recording benchmark's responses": _benchmark_responses(2_000), "the corpus": texts[:20_000]}
    rows = []
    for name, sample in sets.items():
        times: dict[str, list[float]] = {"base": [], "tree": []}
        for r in range(args.rounds):
            pair = (("base", base.extract_questions), ("tree", this_tree.extract_questions))
            for who, extract in (pair if r % 2 == 0 else pair[::-1]):
                times[who].append(_time(extract, sample))
            print(f"[extraction_vs_revision] {name}: round {r + 1}/{args.rounds}", file=sys.stderr)
        ratios = [t / b for t, b in zip(times["tree"], times["base"])]
        rows.append({"texts": name, "n": len(sample), "base_us": round(statistics.median(times["base"]), 2),
                     "tree_us": round(statistics.median(times["tree"]), 2),
                     "ratio": round(statistics.median(ratios), 3), "ratio_min": round(min(ratios), 3)})
    result = {"base": args.base, "texts_compared": len(texts), "differences": len(differences), "timings": rows}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{len(texts):,} texts compared with {args.base}: {len(differences)} with different questions")
        for r in rows:
            print(f"{r['texts']} ({r['n']:,}): {r['tree_us']} us a text against {r['base_us']} "
                  f"(ratio {r['ratio']}, min {r['ratio_min']})")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
