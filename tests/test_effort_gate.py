"""The cue gate: effort grading searches only the cues that can match, and grades exactly as searching every cue."""

import ast
import json
import re
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ppp_otel.analysis import cue_gate
from ppp_otel.analysis.cue_gate import CueGate, required_fragments
from ppp_otel.analysis.effort import _PRIOR, EFFORT_CUES, _normalized, effort_scores, without_list_marker
from ppp_otel.analysis.questions import extract_questions

TESTS = Path(__file__).parent


def scores_of_every_cue(question: str) -> dict[str, float]:
    """effort_scores as it is without the gate: every cue searched, in order."""
    text = _normalized(question)
    scores = dict(_PRIOR)
    for cue in EFFORT_CUES:
        if cue.pattern.search(text):
            scores[cue.effort] += cue.weight
    return scores


def fragments(pattern: str, flags: int = 0):
    found = required_fragments(re.compile(pattern, flags))
    return None if found is None else set(found)


# --- what a pattern requires ------------------------------------------------------------


def test_a_literal_requires_itself():
    assert fragments(r"objection") == {"objection"}


def test_an_alternation_requires_one_of_its_branches():
    assert fragments(r"(?:do|would) you (?:want|like)\b") == {"do you want", "do you like", "would you want",
                                                              "would you like"}


def test_a_branch_that_requires_nothing_leaves_the_alternation_without_fragments():
    assert fragments(r"hunch|\w+") is None
    assert fragments(r"hunch|\w+ing") == {"hunch", "ing"}


def test_an_optional_part_is_enumerated_not_required():
    assert fragments(r"would you(?: be able to)? run") == {"would you run", "would you be able to run"}


def test_a_part_that_may_repeat_zero_times_requires_nothing():
    assert fragments(r"(?:abc)*") is None
    assert fragments(r"x(?:abc)*yz") == {"yz"}


def test_a_part_repeated_at_least_once_requires_what_it_requires():
    assert fragments(r"(?:ab)+") == {"ab"}


def test_anchors_and_word_boundaries_match_no_characters():
    assert fragments(r"^\bshould\b i$") == {"should i"}


def test_the_longest_literal_run_is_chosen():
    assert fragments(r"a.\s*investigat") == {"investigat"}


def test_a_fragment_containing_another_of_the_same_set_is_dropped():
    assert fragments(r" or| o\b|either") == {" o", "either"}


def test_a_character_class_naming_its_characters_is_enumerated():
    assert fragments(r"analy[sz]") == {"analys", "analyz"}


def test_a_negated_class_or_a_category_requires_nothing():
    assert fragments(r"[^a]") is None
    assert fragments(r"\w\s\d.") is None


def test_a_negative_lookaround_requires_nothing_of_the_text():
    assert fragments(r"(?!abc)") is None
    assert fragments(r"confirm\b(?! with)") == {"confirm"}


def test_what_a_positive_lookahead_sees_is_in_the_text():
    assert fragments(r"^(?=.*\b(?:design|schema)\b)") == {"design", "schema"}


def test_a_case_insensitive_pattern_requires_nothing():
    assert fragments(r"objection", re.IGNORECASE) is None
    assert fragments(r"(?i)objection") is None
    assert fragments(r"(?i:objection)") is None


def test_a_back_reference_requires_nothing():
    assert fragments(r"(a|b)\1") == {"a", "b"}
    assert fragments(r"(?:(a)|b)(?(1)c|d)") == {"a", "b"}
    assert fragments(r"(\w)\1") is None


def test_too_many_alternatives_are_summed_up_by_the_nearest_parts():
    many = "|".join(f"w{i}" for i in range(40))
    found = fragments(rf"(?:x|y|z|q|r|s|t)(?:{many}) (?:a|b|c|d|e|f|g|h)")
    assert found and all(len(f) >= 3 for f in found)


def test_every_effort_cue_has_fragments():
    # A cue without any is searched for every question: the gate would save nothing on it.
    assert [cue.name for cue in EFFORT_CUES if required_fragments(cue.pattern) is None] == []


# --- the derivation is sound: a pattern never matches a text without one of its fragments -------

_ATOMS = ["a", "b", "c", "ab", "ba", "abc", " ", r"\b", "^", "$", ".", r"\w", r"\s", "[ab]", "[^a]", "[a-c]"]


def _patterns(children):
    return st.one_of(
        st.lists(children, min_size=1, max_size=4).map("".join),
        st.lists(children, min_size=2, max_size=3).map(lambda xs: "(?:" + "|".join(xs) + ")"),
        st.tuples(children, st.sampled_from(["?", "*", "+", "{2}", "{1,2}", "??", "+?", "{0,2}?"])).map(
            lambda x: "(?:" + x[0] + ")" + x[1]),
        st.tuples(st.sampled_from(["(?=", "(?!", "(?<=a", "(?<!b"]), children).map(
            lambda x: x[0] + (x[1] if x[0] in ("(?=", "(?!") else "") + ")"),
        children.map(lambda x: "(" + x + ")"),
    )


_PATTERN = st.recursive(st.sampled_from(_ATOMS), _patterns, max_leaves=8)


@settings(max_examples=1500, deadline=None)
@given(_PATTERN, st.data())
def test_a_text_a_pattern_matches_contains_one_of_its_fragments(pattern, data):
    try:
        compiled = re.compile(pattern)
    except re.error:  # "(?:^)*": nothing to repeat
        assume(False)
    found = required_fragments(compiled)
    assume(found is not None)
    # Texts made to match (hypothesis writes them from the pattern), and random ones.
    text = data.draw(st.one_of(st.from_regex(compiled), st.text(alphabet="abc x", max_size=12)))
    if compiled.search(text):
        assert any(fragment in text for fragment in found), (pattern, text, found)


# --- effort_scores with the gate is effort_scores without it ------------------------------------

_CUE_WORDS = sorted({word for cue in EFFORT_CUES for fragment in required_fragments(cue.pattern) or ()
                     for word in [fragment, *fragment.split()] if word.strip()})
_GLUE = [" ", " ", " ", ", ", "; ", " — ", "-", ": ", "", "?", " or ", " and ", "'", "\n"]


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_CUE_WORDS), st.text(max_size=6)), max_size=8),
       st.lists(st.sampled_from(_GLUE), min_size=8, max_size=8),
       st.sampled_from(["", "- ", "1. ", "So, ", "Ok, ", "Just to confirm, ", "¿"]),
       st.sampled_from(["?", "", " ?", "?!", "...?"]),
       st.booleans())
def test_the_gate_grades_generated_questions_as_every_cue_does(words, glue, start, end, upper):
    question = start + "".join(word + sep for word, sep in zip(words, glue)) + end
    if upper:
        question = question.upper()
    assert effort_scores(question) == scores_of_every_cue(question)


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _repository_questions() -> list[str]:
    texts = set()
    for path in sorted((TESTS / "data").rglob("*.json*")):
        lines = path.read_text(encoding="utf-8").splitlines() if path.suffix == ".jsonl" else [path.read_text()]
        for line in lines:
            try:
                texts.update(_strings(json.loads(line)))
            except ValueError:  # the deliberately broken files of tests/data/atif/bad
                texts.add(line)
    for path in sorted(TESTS.glob("test_effort*.py")):
        texts.update(node.value for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                     if isinstance(node, ast.Constant) and isinstance(node.value, str))
    return sorted(texts | {q for text in texts for q in extract_questions(text)})


def test_the_gate_grades_every_question_of_the_test_data_as_every_cue_does():
    questions = _repository_questions()
    assert len(questions) > 1000
    differing = [q for q in questions if effort_scores(q) != scores_of_every_cue(q)]
    assert differing == []


def test_every_cue_matches_some_question_of_the_test_data():
    # So that the equality above holds for cues that match, not only for cues skipped.
    texts = [_normalized(q) for q in _repository_questions()]
    assert [cue.name for cue in EFFORT_CUES if not any(cue.pattern.search(t) for t in texts)] == []


# --- the gate itself ------------------------------------------------------------------------------


def test_a_cue_is_skipped_only_when_none_of_its_fragments_occurs():
    gate = CueGate(EFFORT_CUES, pattern=lambda cue: cue.pattern)
    names = [cue.name for cue in gate.possible("objection?")]
    assert "objection" in names and "state of a system" not in names


def test_the_selection_keeps_the_order_of_the_cues():
    gate = CueGate(EFFORT_CUES, pattern=lambda cue: cue.pattern)
    selected = gate.possible("should i run the benchmark and see whether every test passes, ok?")
    assert list(selected) == [cue for cue in EFFORT_CUES if cue in selected]


def test_a_pattern_without_fragments_is_always_possible():
    patterns = [re.compile(r"abc"), re.compile(r"\w+")]
    assert CueGate(patterns, pattern=lambda p: p).possible("xyz") == (patterns[1],)


def test_without_the_ahocorasick_package_the_gate_selects_the_same_cues(monkeypatch):
    with_automaton = CueGate(EFFORT_CUES, pattern=lambda cue: cue.pattern)
    monkeypatch.setattr(cue_gate, "ahocorasick", None)
    without = CueGate(EFFORT_CUES, pattern=lambda cue: cue.pattern)
    assert with_automaton._automaton is not None and without._automaton is None
    texts = [_normalized(q) for q in _repository_questions()] + ["", "x" * 500, "¿should i?", "ok"]
    assert [t for t in texts if with_automaton.possible(t) != without.possible(t)] == []


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_CUE_WORDS), st.text(max_size=4)), max_size=10).map("".join))
def test_the_one_regular_expression_finds_the_fragments_the_automaton_finds(text):
    assert _EFFORT_GATE.possible(text) == _EFFORT_GATE_WITHOUT_AUTOMATON.possible(text)


_EFFORT_GATE = CueGate(EFFORT_CUES, pattern=lambda cue: cue.pattern)
_EFFORT_GATE_WITHOUT_AUTOMATON = CueGate(EFFORT_CUES, pattern=lambda cue: cue.pattern, automaton=False)


# --- a cue is searched branch by branch --------------------------------------------------------


def test_a_cue_matches_a_question_exactly_where_one_of_its_branches_does():
    from ppp_otel.analysis.effort import _BRANCHES

    texts = [_normalized(q) for q in _repository_questions()]
    for cue in EFFORT_CUES:
        branches = [b.pattern for b in _BRANCHES if b.cue is cue]
        assert [t for t in texts if bool(cue.pattern.search(t)) != any(b.search(t) for b in branches)] == []


def test_a_leading_group_of_a_few_alternatives_becomes_one_branch_each():
    from ppp_otel.analysis.effort import _alternatives

    assert _alternatives(r"(?:do|would) you\b|x") == [r"do you\b", r"would you\b", "x"]
    assert _alternatives(r"(?:^|, |\band )(?:can|could) you") == [
        r"^(?:can|could) you", r", (?:can|could) you", r"a(?<!\w.)nd (?:can|could) you"]


def test_an_optional_or_repeated_leading_group_is_left_whole():
    from ppp_otel.analysis.effort import _alternatives

    assert _alternatives(r"(?:so|ok)? you") == [r"(?:so|ok)? you"]
    assert _alternatives(r"(?:a|b){2}c") == [r"(?:a|b){2}c"]


def test_a_cue_two_of_whose_branches_match_counts_once():
    from ppp_otel.analysis.effort import _BRANCHES

    question = "do you want me to rename it?"
    offer = [b for b in _BRANCHES if b.cue.name == "offer" and b.pattern.search(question)]
    assert len(offer) == 2
    assert effort_scores(question) == scores_of_every_cue(question)


def test_a_leading_group_of_many_alternatives_is_left_whole():
    from ppp_otel.analysis.effort import _DISTRIBUTED, _alternatives

    many = "(?:" + "|".join(f"w{i}" for i in range(_DISTRIBUTED + 1)) + ") x"
    assert _alternatives(many) == [many]


_MARKER_PIECES = ["-", "*", "+", "•", "(", ")", ".", "1", "12", "123", "1234", "٣", "²", "a", "Z", "é", "x", "[", "]",
                  "[x]", "[ ]", " ", "  ", "\t", "\n", "word", "?"]


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.sampled_from(_MARKER_PIECES), max_size=6).map("".join))
def test_the_list_marker_is_taken_off_as_the_pattern_takes_it(text):
    from ppp_otel.analysis.effort import LIST_MARKER, without_list_marker

    assert without_list_marker(text) == LIST_MARKER.sub("", text, count=1)


@pytest.mark.parametrize("question, straight", [
    ("Shouldn’t I keep it?", "shouldn't i keep it?"),
    ("‘Ready’ — okay to go?", "'ready' — okay to go?"),
    ("Is it ‘done’ for you, café owner?", "is it 'done' for you, café owner?"),
    ("  - Which FILE is it?  ", "which file is it?"),
])
def test_a_question_is_normalized_with_straight_quotes_ascii_or_not(question, straight):
    assert _normalized(question) == straight


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="aB ’‘'é-1.*_?¿", max_size=14))
def test_normalizing_only_replaces_curly_quotes_in_a_text_that_has_them(question):
    stripped = question.strip().lower().replace("’", "'").replace("‘", "'")
    assert _normalized(question) == without_list_marker(stripped).lstrip("¿¡*_ ").rstrip()
