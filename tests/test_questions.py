"""Which sentences of an agent's response are questions put to the user."""

import random

import pytest

from ppp_otel.analysis.questions import extract_questions


def test_a_single_question_is_returned_as_its_sentence():
    assert extract_questions("I can do that. Should I also add tests? Let me know.") == [
        "Should I also add tests?"
    ]


def test_several_questions_on_one_line_come_back_in_order():
    assert extract_questions("Which database do you use? And which version? Thanks.") == [
        "Which database do you use?",
        "And which version?",
    ]


def test_a_statement_without_a_question_mark_asks_nothing():
    assert extract_questions("I fixed the bug and pushed the branch.") == []


def test_numbered_list_markers_are_stripped():
    text = "Before I start:\n1. Which Python version do you use?\n2) Do you want type hints?"
    assert extract_questions(text) == ["Which Python version do you use?", "Do you want type hints?"]


def test_bulleted_list_markers_are_stripped():
    text = "A few things:\n- Should I keep the old API?\n* Is Friday okay?\n• Any deadline?"
    assert extract_questions(text) == ["Should I keep the old API?", "Is Friday okay?", "Any deadline?"]


def test_bold_emphasis_around_a_question_is_stripped():
    assert extract_questions("- **Is Friday okay for the release?**") == ["Is Friday okay for the release?"]


def test_question_marks_inside_fenced_code_are_not_questions():
    text = "Here is the code:\n```python\nx = a if b else c  # why?\nprint('ok?')\n```\nDoes that look right?"
    assert extract_questions(text) == ["Does that look right?"]


def test_an_unterminated_code_fence_hides_everything_after_it():
    assert extract_questions("Try this:\n```\nmaybe = value?.field\n") == []


def test_question_marks_inside_inline_code_are_not_questions():
    assert extract_questions("Run `git log --grep=fix?` to see the commits.") == []


def test_a_question_keeps_its_inline_code():
    assert extract_questions("Should I use `a?.b` or `a && a.b`?") == ["Should I use `a?.b` or `a && a.b`?"]


def test_question_marks_inside_urls_are_not_questions():
    assert extract_questions("See https://x.com/?q=1 for the details.") == []


def test_a_url_at_the_end_of_a_question_leaves_the_question_mark():
    assert extract_questions("Did you mean https://x.com/docs?") == ["Did you mean https://x.com/docs?"]


def test_quoted_questions_are_not_questions_to_the_user():
    assert extract_questions("He asked 'why?' and I explained it to him.") == []


def test_double_and_typographic_quotations_are_not_questions_either():
    assert extract_questions('The docs say "what now?" and “why not?” in places.') == []


def test_apostrophes_do_not_open_a_quotation():
    assert extract_questions("Don't you think it's ready to merge?") == ["Don't you think it's ready to merge?"]


def test_a_question_the_agent_answers_itself_is_rhetorical():
    assert extract_questions("Why does this fail? Because the index is stale.") == []


def test_a_real_question_after_a_rhetorical_one_is_kept():
    text = "Why does this fail? Because the index is stale. Want me to rebuild it?"
    assert extract_questions(text) == ["Want me to rebuild it?"]


def test_a_yes_or_no_invitation_is_not_a_self_answer():
    assert extract_questions("Does that work for you? Yes or no is fine.") == ["Does that work for you?"]


def test_a_spanish_question_keeps_its_opening_mark():
    assert extract_questions("¡Hola! ¿Prefieres Python o Go? Dime.") == ["¿Prefieres Python o Go?"]


def test_full_width_question_marks_end_a_question():
    assert extract_questions("好的。你想用Python还是Go？我可以两个都做。") == ["你想用Python还是Go？"]


def test_a_question_wrapped_over_two_lines_reads_as_one():
    assert extract_questions("Could you tell me\nwhich version you use?") == [
        "Could you tell me which version you use?"
    ]


def test_a_heading_is_a_title_not_a_question():
    assert extract_questions("## Why is it slow?\nThe cache is cold.\n\nShould I warm it up?") == [
        "Should I warm it up?"
    ]


def test_a_block_quote_is_quoted_text_not_a_question():
    assert extract_questions("> Can you help?\nSure. What's the deadline?") == ["What's the deadline?"]


def test_a_question_with_emphatic_punctuation_is_still_a_question():
    assert extract_questions("You want to delete production?!") == ["You want to delete production?!"]


def test_abbreviations_do_not_cut_a_question_short():
    assert extract_questions("Do you use a managed DB, e.g. RDS or Cloud SQL?") == [
        "Do you use a managed DB, e.g. RDS or Cloud SQL?"
    ]


def test_a_question_mark_inside_a_word_is_not_a_sentence_end():
    assert extract_questions("The operator x?y is a ternary in that language.") == []


@pytest.mark.parametrize("text", ["", "   ", "\n\t\n", "?", "???", "?!?!", "...?", "? ? ?", "？", "¿?"])
def test_empty_whitespace_or_punctuation_only_input_has_no_questions(text):
    assert extract_questions(text) == []


def test_none_is_a_type_error():
    with pytest.raises(TypeError):
        extract_questions(None)


def test_any_string_gives_a_list_of_stripped_non_empty_strings():
    rng = random.Random(7)
    alphabet = "ab ?？¿!.。\n`'\"“”«»-*1#>~:/()[]_\twhtps.eg"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        questions = extract_questions(text)
        assert all(isinstance(q, str) and q and q == q.strip() for q in questions), text


@pytest.mark.parametrize(
    "text",
    ["`" * 50_000 + "?", "~" * 50_000 + "?\n", "e.g." * 30_000 + "?", "www." * 20_000 + "?", "'a " * 50_000 + "?"],
)
def test_pathological_input_does_not_hang(text):
    # No timing assertion: a quadratic pattern would take minutes here, not seconds.
    assert isinstance(extract_questions(text), list)


def test_two_questions_joined_in_one_sentence_are_two():
    assert extract_questions("Which Python version are you on, and what error do you see?") == [
        "Which Python version are you on?", "What error do you see?"]


def test_a_question_asked_without_its_question_mark_is_a_question():
    assert extract_questions("Please tell me which version you are running.") == [
        "Please tell me which version you are running."]
    assert extract_questions("Let me know if you need anything else.") == []


def test_an_agent_asking_whether_it_should_act_without_a_question_mark_asks():
    assert extract_questions("I can add tests. Should I") == ["Should I"]
    assert extract_questions("Shall we start with the parser") == ["Shall we start with the parser"]
    assert extract_questions("Do I need to restart it") == ["Do I need to restart it"]


def test_a_condition_put_as_should_you_is_not_a_question():
    assert extract_questions("Should you have any questions, let me know.") == []
    assert extract_questions("Should I need more, I will ask.") == []


def test_a_should_question_going_on_after_its_comma_is_still_one():
    assert extract_questions("Should I add tests, or is the fix enough") == ["Should I add tests, or is the fix enough"]


def test_the_questions_of_a_json_message_are_its_strings_questions():
    assert extract_questions('```json\n{"questions": ["Which Python version?", "Which OS?"]}\n```') == [
        "Which Python version?", "Which OS?"]


# --- the cheap check before the unmarked-question one ----------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from ppp_otel.analysis import questions as questions_module  # noqa: E402

_PIECES = ["so", "and", "ok,", "what", "which", "can", "you", "tell", "me", "please", "let", "know",
           "file", "did", "edit", "1.", "a)", "- ", "[x]", "**", "_", "\n", "(", ">", "#", " ", "Which", "Do",
           "please tell me which", "let me know what", "so, can you", "confirm whether", "remind me where",
           "should", "i", "we", "shall", "i,", "or"]


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_PIECES), st.sampled_from(["", " ", "\n"])), min_size=1, max_size=8))
def test_every_sentence_read_as_an_unmarked_question_passes_the_cheap_check_first(pieces):
    sentence = "".join(a + b for a, b in pieces)
    if questions_module._UNMARKED_QUESTION.match(questions_module._tidy(sentence)[0]):
        assert questions_module._UNMARKED_LEAD.match(sentence)


# --- the ASCII fast paths give what the general patterns give ------------------------------------

_CASED = ["So", "AND", "also", "Ok", "okay,", "What", "WHICH", "who", "Whom", "whose", "Where", "when", "WHY",
          "How", "can", "Could", "would", "Will", "DO", "did", "Are", "were", "have", "should", "Shall",
          "Please", "TELL ME", "let me know", "Remind Me", "confirm", "whatever", "cannot", "x", "'", '"',
          ".", "!", "?", "\n", " ", "  ", "\t", ",", "é", "ſ", "K", "“", "»"]


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.sampled_from(_CASED), max_size=10).map("".join))
def test_the_cheap_check_for_an_unmarked_question_ignores_case_as_the_patterns_do(text):
    general = (questions_module._UNMARKED_AT_START.match(text) is not None
               or questions_module._UNMARKED_AFTER_END.search(text) is not None)
    assert questions_module._may_ask_unmarked(text) == general


@pytest.mark.parametrize("mark", list("'\"“”‘’„«»‹›「」『』"))
def test_a_quotation_mark_of_any_script_is_seen(mark):
    assert questions_module._quoting(f"He said {mark}yes{mark} to it.")
    assert questions_module._quoting(f"He said {mark}yes{mark} to it, café.")


def test_a_text_without_quotation_marks_has_none_ascii_or_not():
    assert not questions_module._quoting("Plain text, no quotes.")
    assert not questions_module._quoting("Café au lait — non?")


@pytest.mark.parametrize("sentence, asks", [("Really？", True), ("Really?!", True), ("Really? :)", True),
                                            ("No question.", False), ("What? No, fine.", False), ("", False)])
def test_a_sentence_asks_when_a_question_mark_ends_it(sentence, asks):
    assert questions_module._asks(sentence) is asks


def test_a_sentence_keeps_the_code_its_masked_copy_hides():
    assert questions_module._sentences("Run `a.b()`. Ok?") == [("Run `a.b()`.", "Run `a_b()`."), (" Ok?", " Ok?")]


# What asks, as a pattern: a question mark, then only exclamation marks and other non-word
# characters to the end of the sentence.
_ASKS = __import__("re").compile(r"[?？][!！]*\W*$")


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="ab_1 ?？!！.)\n\t。é", max_size=12))
def test_a_sentence_asks_where_the_pattern_finds_a_closing_question_mark(sentence):
    assert questions_module._asks(sentence) is bool(_ASKS.search(sentence.rstrip()))


@pytest.mark.parametrize("sentence, tidied", [
    ("  Which one?  ", ("Which one?", True)),
    ("-   **Which one?**", ("Which one?", True)),
    ("1.  _Which one?_ ", ("Which one?", True)),
    ("** Which one? **", ("* Which one? *", True)),
    ("# Which one?", ("# Which one?", False)),
    ("- ?", ("?", False)),
])
def test_a_sentence_is_tidied_of_its_marker_emphasis_and_edge_spaces(sentence, tidied):
    assert questions_module._tidy(sentence) == tidied
