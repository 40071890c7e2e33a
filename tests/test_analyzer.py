"""TurnAnalyzer.analyze: which questions of a batch are graded, in what order, and when a trajectory is forgotten."""

from ppp_otel.analysis.analyzer import TurnAnalyzer
from ppp_otel.model import Question
from ppp_otel.records import TrajectoryRecord, TurnRecord

KEY = ("t" * 32, "s" * 16)


class _InOrder:
    """Grades the n-th question it is given with the n-th level of a fixed cycle, and keeps them."""

    judge = "custom/in-order"

    def __init__(self):
        self.seen: list[str] = []

    def classify_many(self, questions, contexts=None):
        self.seen += questions
        return [("high", "medium", "low")[i % 3] for i in range(len(questions))]


def _turn(number, response, questions=(), extract=True):
    return TurnRecord("t" * 32, f"{number:016x}", KEY, number, "prompt", response,
                      questions=list(questions), extract_questions=extract)


def test_ungraded_questions_are_graded_in_batch_order_the_agents_before_the_extracted():
    classifier = _InOrder()
    analyzer = TurnAnalyzer(classifier)
    first = _turn(1, "Which file? Which line?", [Question("Asked by a tool?"), Question("Graded?", "low")])
    second = _turn(2, "Nothing asked here.")
    third = _turn(3, "Shall I push?")
    analyzer.analyze([TrajectoryRecord(*KEY, "spec", "agent"), first, second, third])
    assert classifier.seen == ["Asked by a tool?", "Which file?", "Which line?", "Shall I push?"]
    assert [(q.text, q.effort, q.judge) for q in first.questions] == [
        ("Asked by a tool?", "high", "custom/in-order"), ("Graded?", "low", None),
        ("Which file?", "medium", "custom/in-order"), ("Which line?", "low", "custom/in-order")]
    assert second.questions == []
    assert [(q.text, q.effort) for q in third.questions] == [("Shall I push?", "high")]


def test_a_question_the_tool_already_asked_is_not_extracted_again():
    analyzer = TurnAnalyzer(_InOrder())
    turn = _turn(1, "Which file?", [Question("Which file?")])
    analyzer.analyze([turn])
    assert [q.text for q in turn.questions] == ["Which file?"]


def test_a_trajectory_that_ends_in_the_batch_is_forgotten_after_its_turns_are_judged():
    analyzer = TurnAnalyzer(_InOrder())
    ended = TrajectoryRecord(*KEY, "spec", "agent", preferences=("no_questions",), ended_at="2026-01-01T00:00:00Z")
    turn = _turn(1, "Which file?")
    analyzer.analyze([ended, turn])
    assert [v.preference for v in turn.violations] == ["no_questions"]
    assert KEY not in analyzer._open


def test_the_rules_grade_found_questions_where_they_are_found_as_their_batch_grading_would():
    from ppp_otel.analysis.llm_classifier import HeuristicEffortClassifier

    class BatchRules(HeuristicEffortClassifier):  # a subclass: graded with the batch, after extraction
        pass

    texts = ["Which file did you edit? And can you run the tests on it?", "Done. Shall I push?",
             "Could you grep the logs for it? Please tell me which version you run.", "Nothing to ask.",
             "Which file did you edit? Which file did you edit?", '{"q": ["Why?", "Which OS?"]}']

    def judged(classifier):
        turns = [_turn(i, text, [Question("Asked by a tool?")] if i % 2 else [], extract=True)
                 for i, text in enumerate(texts, 1)]
        TurnAnalyzer(classifier).analyze(turns)
        return [turn.questions for turn in turns]

    at_once, in_batch = judged(HeuristicEffortClassifier()), judged(BatchRules())
    assert at_once == in_batch
    assert sum(len(questions) for questions in at_once) > 10


def test_rules_replaced_on_the_instance_are_asked_as_any_classifier_is():
    from ppp_otel.analysis.llm_classifier import HeuristicEffortClassifier

    rules = HeuristicEffortClassifier()
    rules.classify_many = lambda questions, contexts=None: ["high"] * len(questions)
    turn = _turn(1, "Shall I push?")
    TurnAnalyzer(rules).analyze([turn])
    assert [q.effort for q in turn.questions] == ["high"]


def _violations(preferences, turn):
    analyzer = TurnAnalyzer(_InOrder())
    analyzer.analyze([TrajectoryRecord(*KEY, "spec", "agent", preferences=preferences), turn])
    return [(v.preference, v.actual) for v in turn.violations]


def test_a_question_asked_through_a_tool_is_the_message_the_format_preferences_judge():
    # The paper's simulator judges the ask_question query, not the reply that follows the answer.
    turn = _turn(1, "I fixed the check.", [Question("Which column, time or flux, were you removing?",
                                                    source="explicit")])
    assert _violations(("no_commas",), turn) == [("no_commas", "2 commas")]


def test_a_reply_that_asks_nothing_is_not_judged_beside_a_question_asked_through_a_tool():
    turn = _turn(1, "I fixed the check, added a test, and updated the docs.",
                 [Question("WHICH COLUMN WERE YOU REMOVING?", source="explicit")])
    assert _violations(("no_commas", "english_all_caps", "exact_sentences(count=1)"), turn) == []


def test_a_reply_that_asks_too_is_judged_beside_a_question_asked_through_a_tool():
    turn = _turn(1, "Thanks. Which line, please?", [Question("Which file were you in?", source="explicit")])
    assert _violations(("no_commas",), turn) == [("no_commas", "1 comma")]


def test_a_preference_broken_by_two_questions_asked_through_a_tool_is_one_violation_of_the_turn():
    turn = _turn(1, "Fixed.", [Question("Which file, core or utils?", source="explicit"),
                               Question("Which line, 10 or 20?", source="explicit")])
    assert _violations(("no_commas",), turn) == [("no_commas", "1 comma")]
