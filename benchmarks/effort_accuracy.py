"""How often the effort heuristic agrees with the labelled questions.

    python benchmarks/effort_accuracy.py                 # every split, the paper sets first
    python benchmarks/effort_accuracy.py --split paper --json
    python benchmarks/effort_accuracy.py --errors        # list the disagreements
    python benchmarks/effort_accuracy.py --earlier       # beside the rules before the paper's definitions

Every label follows the PPP paper's definitions (DESIGN.md, "Scoring"): low =
answerable at once from what the user asked for, did or saw; medium = the
user cannot really answer; high = the user must go and do work.

The two paper splits ("paper", 120 questions, and "paper2", 60) are coding and
search questions in the paper's two domains, written and labelled before the
rules were rewritten for the paper's definitions and never tuned on: their
accuracy is the number to quote. The older splits (train, heldout,
independent, independent2) were written under the earlier definitions and
relabelled by the paper's; the rules were tuned on them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ppp_otel.analysis.questions import classify_effort

LEVELS = ("low", "medium", "high")
DATA_DIR = Path(__file__).resolve().parent.parent / "tests" / "data"
DEFAULT_DATA = DATA_DIR / "effort_questions.jsonl"
INDEPENDENT_DATA = sorted(DATA_DIR.glob("effort_questions_independent*.jsonl"))
PAPER_DATA = sorted(DATA_DIR.glob("effort_questions_paper*.jsonl"))
SPLITS = ("paper2", "paper", "independent2", "independent", "heldout", "train")


def load(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def earlier_rules():
    """classify_effort as it was before the paper's definitions (git, see preference_agreement.BASELINE)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import preference_agreement

    questions, _ = preference_agreement.baseline_version()
    return questions.classify_effort


def evaluate(examples: list[dict], classify=classify_effort) -> dict:
    # confusion[expected][predicted]
    confusion = {expected: {predicted: 0 for predicted in LEVELS} for expected in LEVELS}
    errors = []
    started = time.perf_counter()
    predictions = [classify(example["question"]) for example in examples]
    elapsed = time.perf_counter() - started
    for example, predicted in zip(examples, predictions):
        confusion[example["effort"]][predicted] += 1
        if predicted != example["effort"]:
            errors.append({"question": example["question"], "expected": example["effort"], "predicted": predicted})
    correct = sum(confusion[level][level] for level in LEVELS)
    return {
        "n": len(examples),
        "accuracy": correct / len(examples) if examples else None,
        "confusion": confusion,
        "us_per_question": 1e6 * elapsed / len(examples) if examples else None,
        "errors": errors,
    }


def render(split: str, result: dict, show_errors: bool) -> str:
    lines = [f"{split}: n={result['n']} accuracy={result['accuracy']:.3f} "
             f"({result['us_per_question']:.1f} us/question)"
             + (f"; earlier rules {result['earlier_rules_accuracy']:.3f}" if "earlier_rules_accuracy" in result else "")]
    lines.append("  expected \\ predicted " + "".join(f"{level:>8}" for level in LEVELS))
    for expected in LEVELS:
        row = result["confusion"][expected]
        lines.append(f"  {expected:<21}" + "".join(f"{row[predicted]:>8}" for predicted in LEVELS))
    if show_errors:
        for error in result["errors"]:
            lines.append(f"  - [{error['expected']} -> {error['predicted']}] {error['question']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=(*SPLITS, "all"), action="append",
                        help="which split(s) to score (default: every split, the paper sets first)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="labelled JSONL file")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--errors", action="store_true", help="list the misclassified questions")
    parser.add_argument("--earlier", action="store_true",
                        help="also score the earlier rules (before the paper's definitions) on the same split")
    args = parser.parse_args(argv)

    examples = load(args.data)
    if args.data == DEFAULT_DATA:
        for path in PAPER_DATA + INDEPENDENT_DATA:
            examples += load(path)
    splits = args.split or list(SPLITS)
    results = {}
    for split in splits:
        chosen = examples if split == "all" else [e for e in examples if e["split"] == split]
        if not chosen:
            parser.error(f"no examples in split {split!r} of {args.data}")
        results[split] = evaluate(chosen)
        if args.earlier:
            results[split]["earlier_rules_accuracy"] = evaluate(chosen, earlier_rules())["accuracy"]

    if args.json:
        if not args.errors:
            for result in results.values():
                del result["errors"]
        json.dump(results, sys.stdout, indent=2)
        print()
    else:
        print("\n\n".join(render(split, result, args.errors) for split, result in results.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
