"""CLI tables: every cell on one line and cut, numbers right-aligned, however many rows."""

import gc
import io
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from ppp_otel.cli import _output
from ppp_otel.cli._output import cell, columns_of, print_columns, print_json, print_table, print_wrapped


def table(rows, headers, **kw):
    out = io.StringIO()
    print_table(rows, headers, file=out, **kw)
    return out.getvalue().splitlines()


def test_one_cell_with_a_newline_among_many_is_folded_onto_its_line():
    rows = [(i, f"prompt {i}") for i in range(1000)]
    rows[500] = (500, "two\nlines  and\tspaces ")
    lines = table(rows, ["id", "prompt"])
    assert len(lines) == 1001
    assert lines[501].split(None, 1) == ["500", "two lines and spaces"]


def test_long_cells_are_cut_with_an_ellipsis():
    lines = table([(1, "x" * 50)], ["id", "text"], max_width=10)
    assert lines[1].endswith("x" * 9 + "…")


def test_numbers_are_right_aligned_and_floats_shown_to_four_digits():
    lines = table([(1, 0.123456, None), (10, 2.0, 3)], ["id", "score", "n"])
    assert lines == ["ID   SCORE  N", " 1  0.1235  -", "10       2  3"]


def test_a_column_given_decimals_shows_every_number_with_that_many_lined_up_on_the_point():
    lines = table([(1, 0.016935), (2, 12345.678), (3, None), (4, 7)], ["turn", "latency_ms"],
                  decimals={"latency_ms": 2})
    assert lines == ["TURN  LATENCY_MS", "   1        0.02", "   2    12345.68", "   3           -",
                     "   4        7.00"]


def test_decimals_leave_the_other_columns_at_four_significant_digits():
    lines = table([(0.123456, 0.123456)], ["score", "latency_ms"], decimals={"latency_ms": 1})
    assert lines == [" SCORE  LATENCY_MS", "0.1235         0.1"]


def test_decimals_for_a_column_of_text_leave_its_cells_as_they_are():
    assert table([("fast",), ("slow",)], ["latency_ms"], decimals={"latency_ms": 2}) == [
        "LATENCY_MS", "fast", "slow"]


def test_a_table_without_rows_is_its_header():
    assert table([], ["id", "spec"]) == ["ID  SPEC"]


def test_negative_zero_is_shown_and_measured_as_its_own_text():
    assert table([(0.0,), (-0.0,)], ["x"]) == [" X", " 0", "-0"]


def test_whitespace_beyond_ascii_is_folded_too():
    lines = table([(1, "a\u2003\u2003b"), (2, "c\x1cd")], ["id", "text"])
    assert lines == ["ID  TEXT", " 1  a b", " 2  c d"]


def test_an_empty_cell_in_the_last_column_leaves_no_trailing_spaces():
    assert table([(1, ""), (22, "x")], ["id", "note"]) == ["ID  NOTE", " 1", "22  x"]


def test_percent_signs_in_cells_and_headers_are_printed_as_they_are():
    assert table([("100%", 1), ("%s", 2)], ["%d", "n%"]) == ["%D    N%", "100%   1", "%s     2"]


def test_a_table_given_by_columns_prints_as_the_same_table_given_by_rows():
    rows = [(i, f"spec-{i % 3}", None if i % 4 else i / 7, "x" * (i % 40)) for i in range(50)]
    by_columns = io.StringIO()
    print_columns(columns_of(rows, 4), ["id", "spec", "score", "text"], file=by_columns, max_width=20)
    assert by_columns.getvalue().splitlines() == table(rows, ["id", "spec", "score", "text"], max_width=20)


# --- whatever the cells, the table is the one cell() and padding make ---------------

def reference_table(rows, headers, max_width):
    """The table by its rules, a cell at a time: what the fast column paths must reproduce."""
    columns = list(zip(*rows))
    texts = [[cell(v, max_width) for v in col] for col in columns]
    right = [all(isinstance(v, (int, float)) or v is None for v in col) for col in columns]
    widths = [max([len(h)] + [len(t) for t in col]) for h, col in zip(headers, texts)]
    last = len(headers) - 1
    lines = []
    for row in [[h.upper() for h in headers]] + [list(r) for r in zip(*texts)]:
        parts = [t.rjust(w) if r else (t if i == last else t.ljust(w))
                 for i, (t, w, r) in enumerate(zip(row, widths, right))]
        lines.append("  ".join(parts))
    if not right[last] and "" in texts[last] + [headers[last].upper()]:
        lines = [line.rstrip() for line in lines]
    return lines


_texts = st.one_of(st.text(max_size=40), st.sampled_from(["", " ", "a  b", "x\ty", " lead", "trail ", "\u3000"]))
_column_values = st.sampled_from([
    st.integers(-10**6, 10**6),
    st.one_of(st.none(), st.integers(-10**6, 10**6)),
    st.floats(allow_nan=True, allow_infinity=True),
    st.one_of(st.none(), st.floats(-1e6, 1e6), st.integers(-10**6, 10**6)),
    _texts,
    st.one_of(st.none(), _texts),
    st.booleans(),
])


@settings(max_examples=300, deadline=None)
@given(data=st.data(), width=st.sampled_from([None, 8, 32]))
def test_every_column_path_prints_the_table_the_rules_give(data, width):
    kinds = data.draw(st.lists(_column_values, min_size=1, max_size=5))
    rows = data.draw(st.lists(st.tuples(*kinds), min_size=1, max_size=30))
    headers = [f"c{i}" for i in range(len(kinds))]
    assert table(rows, headers, max_width=width) == reference_table(rows, headers, width)


@settings(max_examples=25, deadline=None)
@given(data=st.data(), width=st.sampled_from([None, 8]))
def test_a_long_table_that_repeats_its_cells_prints_the_table_the_rules_give(data, width):
    # Long enough to be measured on its distinct values and written in several slices.
    kinds = data.draw(st.lists(_column_values, min_size=1, max_size=3))
    pool = data.draw(st.lists(st.tuples(*kinds), min_size=1, max_size=6))
    rows = [pool[i % len(pool)] for i in range(2 * _output._SAMPLE + 1)]
    headers = [f"c{i}" for i in range(len(kinds))]
    assert table(rows, headers, max_width=width) == reference_table(rows, headers, width)


def test_a_long_column_of_mostly_distinct_text_prints_the_table_the_rules_give():
    rows = [(i, f"at  {i}" if i % 3 else None, "" if i % 5 == 0 else f"note {i % 7}")
            for i in range(3 * _output._SAMPLE)]
    headers = ["id", "when", "note"]
    assert table(rows, headers, max_width=8) == reference_table(rows, headers, 8)


def test_a_table_longer_than_one_write_keeps_every_line_in_order():
    rows = [(i,) for i in range(3 * _output._LINES_PER_WRITE + 5)]
    assert table(rows, ["n"]) == ["    N"] + [f"{i:5d}" for i in range(len(rows))]


def test_collection_is_off_inside_bulk_and_as_it_was_after():
    assert gc.isenabled()
    with _output.bulk():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with _output.bulk():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


_measurements = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**9, 10**9))


@settings(max_examples=200, deadline=None)
@given(values=st.lists(_measurements, min_size=1, max_size=30), places=st.integers(0, 4))
def test_a_column_given_decimals_is_each_number_formatted_so_and_right_aligned(values, places):
    lines = table([(v,) for v in values], ["ms"], decimals={"ms": places})
    texts = ["-" if v is None else f"{v:.{places}f}" for v in values]
    width = max(map(len, texts + ["MS"]))
    assert lines == [t.rjust(width) for t in ["MS"] + texts]


# --- --json: what json.dumps(indent=2) writes, whatever the data ----------------------

_json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text()),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.tuples(inner, inner),
                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(data=_json_values)
def test_json_output_is_what_json_dumps_indented_gives(data):
    out = io.StringIO()
    print_json(data, file=out)
    assert out.getvalue() == json.dumps(data, indent=2) + "\n"


def test_json_output_of_objects_and_odd_keys_goes_through_json_dumps():
    class Score:
        def to_dict(self):
            return {"r_proact": 0.05}

    out = io.StringIO()
    print_json({"scores": [Score()], 3: None, "when": {None: 1.5}}, file=out)
    assert json.loads(out.getvalue()) == {"scores": [{"r_proact": 0.05}], "3": None, "when": {"null": 1.5}}


def test_wrapped_text_keeps_its_own_line_breaks_and_blank_lines():
    out = io.StringIO()
    print_wrapped("first line\n\n- an item\n- another", indent=2, width=40, file=out)
    assert out.getvalue() == "  first line\n\n  - an item\n  - another\n"


def test_wrapped_text_does_not_break_a_long_word():
    url = "https://example.com/" + "a" * 80
    out = io.StringIO()
    print_wrapped(f"see {url} for more", width=40, file=out)
    assert url in out.getvalue().split()


def test_wrapped_text_that_is_missing_prints_a_dash():
    out = io.StringIO()
    print_wrapped(None, indent=2, file=out)
    assert out.getvalue() == "  -\n"
