"""CLI tables: every cell on one line and cut, numbers right-aligned, however many rows."""

import io

from ppp_otel.cli._output import print_table


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


def test_a_table_without_rows_is_its_header():
    assert table([], ["id", "spec"]) == ["ID  SPEC"]
