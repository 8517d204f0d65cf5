"""The JSONPath compiler: Kubernetes' syntax as json_exporter uses it, compiled once."""

from __future__ import annotations

import pytest

from pharos_monitoring.exporter.jsonmap.jsonpath import MISSING, PathSyntaxError, compile_template

DOCUMENT = {
    "counter": 1234,
    "location": "mars",
    "values": [
        {"id": "id-A", "count": 1, "ratio": 0.5, "on": True, "state": "ACTIVE", "tags": {"team": "a"}},
        {"id": "id-B", "count": 2, "ratio": 1.5, "on": True, "state": "INACTIVE"},
        {"id": "id-C", "count": 3, "ratio": 2.5, "on": False, "state": "ACTIVE", "tags": {"team": "c"}},
    ],
    "a.b": "dotted",
    "java.lang:name=G1 Young Generation,type=GarbageCollector": {"CollectionCount": 25},
    "nested": {"a.b": {"c": 7}},
}


@pytest.mark.parametrize(
    "path, expected",
    [
        ("{.counter}", [1234]),
        ("{ .counter }", [1234]),
        ("{$.counter}", [1234]),
        ("{@.counter}", [1234]),
        ("{.values[0].id}", ["id-A"]),
        ("{.values[-1].id}", ["id-C"]),
        ("{.values[*].id}", ["id-A", "id-B", "id-C"]),
        ("{.values[1:].id}", ["id-B", "id-C"]),
        ("{.values[:2].id}", ["id-A", "id-B"]),
        ("{.values[::2].id}", ["id-A", "id-C"]),
        ("{.values[0,2].id}", ["id-A", "id-C"]),
        ("{.values[7].id}", []),
        ('{.values[?(@.state == "ACTIVE")].id}', ["id-A", "id-C"]),
        ("{.values[?(@.state != 'ACTIVE')].id}", ["id-B"]),
        ("{.values[?(@.count > 1)].id}", ["id-B", "id-C"]),  # numbers compare as numbers
        ("{.values[?(@.count >= 2.0)].id}", ["id-B", "id-C"]),
        ("{.values[?(@.ratio < 2)].id}", ["id-A", "id-B"]),
        ("{.values[?(@.count <= 1)].id}", ["id-A"]),
        ("{.values[?(@.on == true)].id}", ["id-A", "id-B"]),
        ("{.values[?(@.tags)].id}", ["id-A", "id-C"]),  # exists
        ("{.values[?(@.tags.team == 'c')].id}", ["id-C"]),  # a nested field in a filter
        ("{.values[?(@.count == '1')].id}", []),  # a number is not the text '1'
        ("{..team}", ["a", "c"]),  # recursive descent
        ("{.values[0].tags.*}", ["a"]),
        ("{['a.b']}", ["dotted"]),  # a quoted key is one key
        ('{["a.b"]}', ["dotted"]),
        ("{.a\\.b}", ["dotted"]),  # Kubernetes' escaped dot
        ("{.nested['a.b'].c}", [7]),
        ("{['java.lang:name=G1 Young Generation,type=GarbageCollector'].CollectionCount}", [25]),
        ("{.nested[*]}", [{"c": 7}]),  # [*] on an object: its values
        ("{.location.length}", []),  # fields of a string: nothing
        ("{.values.id}", []),  # a field of an array: nothing (as Kubernetes)
    ],
)
def test_paths_select_what_kubernetes_jsonpath_selects(path, expected):
    assert compile_template(path).items(DOCUMENT) == expected


def test_the_whole_document():
    for path in ("{$}", "{@}", "{}"):
        assert compile_template(path).items(DOCUMENT) == [DOCUMENT]


@pytest.mark.parametrize(
    "template, expected",
    [
        ("planet-{.location}", "planet-mars"),
        ("{.values[*].id}", "id-A id-B id-C"),  # several results: separated by spaces
        ('{.values[0].id}{"/"}{.values[1].id}', "id-A/id-B"),
        ("{.values[0].on}", "true"),
        ("{.values[0].ratio}", "0.5"),
        ("{.values[0].tags}", '{"team":"a"}'),
        ("static", "static"),
        ("{.nope}", None),  # selects nothing
        ("x-{.nope}", None),
    ],
)
def test_templates_print_as_json_exporter_prints_them(template, expected):
    assert compile_template(template).text(DOCUMENT) == expected


def test_simple_paths_get_a_fast_getter_that_never_raises():
    getter = compile_template("{.values[1].count}").get
    assert getter is not None
    assert getter(DOCUMENT) == 2
    assert getter({"values": "text"}) is MISSING
    assert getter({"values": []}) is MISSING
    assert getter(None) is MISSING
    assert compile_template('{.values[?(@.on)]}').get is None  # filters can select several


@pytest.mark.parametrize(
    "path, problem",
    [
        ("{.a", "unclosed action"),
        ("{.a[0}", "missing ']'"),
        ("{.a[x]}", "array index 'x' is not a number"),
        ("{a}", "a field needs a leading dot"),
        ("{range .items[*]}{.id}{end}", "'range' templates are not supported"),
        ("{.a[?(@.x = 1)]}", "use '=='"),
        ("{.a[?(@.x === 1)]}", "unknown filter operator '==='"),
        ("{.a[?(@.x == )]}", "needs a value on both sides"),
        ("{.a[?(@.x == 1]}", "unterminated filter"),
        ("{.a[::0]}", "step must be greater than 0"),
        ("{.a['x]}", "unterminated quoted string"),
        ("{.}", "must be followed by a field name"),
        ("{....a}", "'..' twice"),
        ("{.a\n}", "line break"),
        ("{.a #}", "unexpected character '#'"),
    ],
)
def test_syntax_errors_name_the_problem_and_column(path, problem):
    with pytest.raises(PathSyntaxError) as caught:
        compile_template(path)
    assert problem in str(caught.value)
    assert "at column" in str(caught.value)


def test_a_braced_text_without_a_closing_brace_is_an_error_but_a_lone_closing_brace_is_text():
    assert compile_template("a}b").text({}) == "a}b"
    with pytest.raises(PathSyntaxError):
        compile_template("a{b")


def test_recursive_descent_walks_deep_documents_without_recursion():
    document: dict = {"v": 0}
    for level in range(1, 5000):  # far deeper than Python's recursion limit
        document = {"child": document, "v": level}
    assert len(compile_template("{..v}").items(document)) == 5000
