"""The CEL subset of json_exporter's `engine: cel`, compiled once."""

from __future__ import annotations

import math

import pytest

from pharos_monitoring.exporter.jsonmap.cel import CelEvalError, CelMissing, CelSyntaxError, compile_expression

DOCUMENT = {
    "counter": 1234,
    "location": "mars",
    "values": [
        {"id": "id-A", "count": 1, "state": "ACTIVE"},
        {"id": "id-B", "count": 2, "state": "INACTIVE"},
        {"id": "id-C", "count": 3, "state": "ACTIVE"},
    ],
    "root": "a member named root",
}


@pytest.mark.parametrize(
    "expression, expected",
    [
        (".counter", 1234),
        ("counter", 1234),
        ('"planet-" + .location', "planet-mars"),
        ('.values.filter(v, v.state == "INACTIVE")[0].count', 2),
        ('.values.filter(v, v.state == "ACTIVE").map(v, v.id)', ["id-A", "id-C"]),
        (".values.map(v, v.count > 1, v.id)", ["id-B", "id-C"]),
        ("size(.values)", 3),
        (".values.size()", 3),
        (".values.exists(v, v.count == 3)", True),
        (".values.all(v, v.count > 0)", True),
        (".values.exists_one(v, v.count > 2)", True),
        ("has(.values[0].id)", True),
        ("has(.values[0].missing)", False),
        (".counter > 1000 && .location == 'mars'", True),
        (".counter < 10 || !false", True),
        ('.counter > 1000 ? "big" : "small"', "big"),
        ('"id-B" in .values.map(v, v.id)', True),
        ("(.counter + 6) / 10", 124),
        ("7 % 4", 3),
        ("-.counter", -1234),
        ("double(.counter) / 1000.0", 1.234),
        ("int('42') + 1", 43),
        ("string(.counter)", "1234"),
        ('.location.startsWith("ma") && .location.endsWith("rs") && .location.contains("ar")', True),
        ('.location.matches("^m.r")', True),
        ('.location.upperAscii()', "MARS"),
        ("[1, 2, 3][2]", 3),
        ('{"a": 1}["a"]', 1),
        ("r'\\d'", "\\d"),
        ('"tab\\tnew\\nline \\u00e9"', "tab\tnew\nline é"),
        ("null", None),
        ("root", "a member named root"),  # a member named root shadows the document binding
    ],
)
def test_expressions_evaluate(expression, expected):
    assert compile_expression(expression).evaluate(DOCUMENT) == expected


def test_root_is_the_document_when_no_member_has_that_name():
    document = [{"noun": "lion"}]
    assert compile_expression("root").items(document) == document
    assert compile_expression("root[0].noun").evaluate(document) == "lion"


@pytest.mark.parametrize("expression", [".missing", ".values[9]", ".values[0].nope", '{"a": 1}["b"]'])
def test_references_to_what_the_document_lacks_are_missing(expression):
    with pytest.raises(CelMissing):
        compile_expression(expression).evaluate(DOCUMENT)
    assert compile_expression(expression).results(DOCUMENT) == []


@pytest.mark.parametrize("expression", ['"x" + 1', ".location.size", ".counter / 0", "!.counter", ".values.filter(v, v.count)", ".location < 3"])
def test_other_failures_are_evaluation_errors(expression):
    with pytest.raises(CelEvalError) as caught:
        compile_expression(expression).evaluate(DOCUMENT)
    assert not isinstance(caught.value, CelMissing)


def test_literals_are_static():
    assert compile_expression('"beta"').static == "beta"
    assert compile_expression("1").static == "1"
    assert compile_expression("-2.5").static == "-2.5"
    assert compile_expression(".counter").static is None


def test_numbers_from_json_compare_with_int_literals():
    assert compile_expression(".x == 2").evaluate({"x": 2.0})
    assert math.isclose(compile_expression(".x * 2").evaluate({"x": 1.5}), 3.0)


@pytest.mark.parametrize(
    "expression, problem",
    [
        (".values.filter(v)", "expected ','"),
        ("frobnicate(1)", "function 'frobnicate' is not supported"),
        (".a.frobnicate()", "method 'frobnicate' is not supported"),
        ("has(a)", "has() takes a field selection"),
        ("1 +", "expected a value"),
        ("a b", "unexpected text"),
        ("if", "reserved word"),
        ("'unterminated", "unexpected character"),
        ("size(1, 2)", "takes 1 argument"),
    ],
)
def test_syntax_errors_name_the_problem_and_column(expression, problem):
    with pytest.raises(CelSyntaxError) as caught:
        compile_expression(expression)
    assert problem in str(caught.value)
    assert "at column" in str(caught.value)
