"""Malformed and adversarial documents: whatever a target serves, a json mapping scrape ends with
a valid exposition (linted by promtool in every test) and never an exception."""

from __future__ import annotations

import json

import pytest

from jsonmap_support import dropped, module_from, serve_and_scrape, series, value

EVERYTHING = """
modules:
  test:
    metrics:
    - name: top_value
      path: '{.value}'
    - name: deep_values
      path: '{..v}'
    - name: item
      type: object
      path: '{.items[*]}'
      labels:
        id: '{.id}'
        label: '{.label}'
      values:
        v: '{.v}'
    - name: keyed
      type: object
      path: '{.map}'
      key_label: key
      values:
        n: '{.n}'
    - name: filtered
      type: object
      path: '{.items[?(@.state == "ok")]}'
      labels:
        id: '{.id}'
      values:
        v: '{.v}'
    - name: cel_count
      engine: cel
      path: 'size(.items.filter(i, has(i.state) && i.state == "ok"))'
    - name: cel_sum
      engine: cel
      path: '.value + 1'
"""


def deep(levels: int, leaf: str = '{"v": 1}') -> str:
    return '{"a": ' * levels + leaf + "}" * levels


@pytest.mark.parametrize(
    "name, body",
    [
        ("a string document", '"just text"'),
        ("a number document", "42"),
        ("null", "null"),
        ("an empty array", "[]"),
        ("an array of scalars", "[1, 2, 3]"),
        ("wrong shapes everywhere", json.dumps({"value": {"x": 1}, "items": "not a list", "map": [1, 2], "v": []})),
        ("items of every type", json.dumps({"items": [1, "x", None, True, [], {}, {"v": "abc"}, {"v": {"deep": 1}}, {"v": [1, 2]}, {"id": 5, "v": 5, "state": "ok"}]})),
        ("map values of every type", json.dumps({"map": {"a": 1, "b": "x", "c": None, "d": {"n": "NaN"}, "e": {"n": {"x": 1}}, "f": {"n": 3}}})),
        ("special numbers", '{"value": NaN, "items": [{"id": "i", "v": Infinity}, {"id": "j", "v": -Infinity}, {"id": "k", "v": 1e400}, {"id": "l", "v": -0.0}]}'),
        ("an integer too large for a float", '{"value": 1' + "0" * 400 + "}"),
        ("hostile label text", json.dumps({"items": [{"id": 'quote " backslash \\ newline \n tab \t', "label": "ünïcødé ✓ \u2028", "v": 1}, {"id": "x" * 10000, "v": 2}]})),
        ("deep nesting the decoder accepts", deep(400)),
        ("cel on the wrong types", json.dumps({"value": "text", "items": {"state": "ok"}})),
        ("duplicate keys", '{"value": 1, "value": 2}'),
    ],
)
def test_any_document_gives_a_valid_exposition(loopback_server, name, body):
    outcome, text = serve_and_scrape(loopback_server, module_from(EVERYTHING), body)
    assert outcome.success, outcome.detail  # the document decoded: the mapping copes with the rest
    assert value(text, "pharos_scrape_success") == 1
    assert value(text, "pharos_module_scrape_series", module="test") is not None


def test_what_is_usable_in_a_mixed_document_is_kept(loopback_server):
    document = {
        "value": 7,
        "items": [{"id": "a", "v": 1, "state": "ok"}, {"id": "b", "v": "NaN?"}, {"id": "c", "v": {"x": 1}}, {"id": "d", "v": "12.5"}],
        "map": {"x": {"n": 1}, "y": {"n": "many"}, "z": 3},
    }
    outcome, text = serve_and_scrape(loopback_server, module_from(EVERYTHING), document)
    assert value(text, "top_value") == 7
    assert value(text, "item_v", id="a", label="") == 1
    assert value(text, "item_v", id="d", label="") == 12.5
    assert value(text, "keyed_n", key="x") == 1
    assert value(text, "filtered_v", id="a") == 1
    assert value(text, "cel_count") == 1
    assert value(text, "cel_sum") == 8
    assert dropped(text, "test", "not_a_number") == 4  # item b, item c, map y, and {..v}: four values
    assert dropped(text, "test", "missing") >= 1  # map z has no .n


def test_special_numbers_are_exported_as_prometheus_spells_them(loopback_server):
    body = '{"items": [{"id": "i", "v": Infinity}, {"id": "j", "v": -Infinity}, {"id": "k", "v": 1e400}, {"id": "n", "v": NaN}]}'
    outcome, text = serve_and_scrape(loopback_server, module_from(EVERYTHING), body)
    assert value(text, "item_v", id="i", label="") == float("inf")
    assert value(text, "item_v", id="j", label="") == float("-inf")
    assert value(text, "item_v", id="k", label="") == float("inf")
    assert value(text, "item_v", id="n", label="") != value(text, "item_v", id="n", label="")  # NaN
    assert 'item_v{id="i",label=""} +Inf' in text


def test_hostile_label_text_is_escaped(loopback_server):
    document = {"items": [{"id": 'say "hi"\\\n', "v": 1}]}
    outcome, text = serve_and_scrape(loopback_server, module_from(EVERYTHING), document)
    assert 'id="say \\"hi\\"\\\\\\n"' in text
    assert value(text, "item_v", id='say "hi"\\\n', label="") == 1


def test_recursive_descent_through_deep_nesting(loopback_server):
    outcome, text = serve_and_scrape(loopback_server, module_from(EVERYTHING), deep(400))
    assert value(text, "deep_values") == 1


def test_nesting_too_deep_to_decode_fails_the_scrape_cleanly(loopback_server):
    outcome, text = serve_and_scrape(loopback_server, module_from(EVERYTHING), deep(100_000))
    assert not outcome.success
    assert outcome.reason in ("invalid_document", "not_json")
    assert value(text, "pharos_scrape_success") == 0


def test_a_huge_array_is_capped_by_max_series(loopback_server):
    items = ",".join(f'{{"id":{index},"v":{index}}}' for index in range(120_000))
    outcome, text = serve_and_scrape(loopback_server, module_from(EVERYTHING), '{"items":[' + items + "]}")
    assert outcome.success
    assert len(series(text, "item_v")) == 50_000  # the default max_series
    assert dropped(text, "test", "limit") == 70_000 + 1  # the cap is per module: cel_count came after


def test_a_path_matching_many_values_where_one_is_expected_is_not_a_number(loopback_server):
    module = module_from("""
modules:
  test:
    metrics:
    - name: one_of_many
      path: '{.xs[*]}'
""")
    outcome, text = serve_and_scrape(loopback_server, module, {"xs": list(range(100_000))})
    assert value(text, "one_of_many") is None
    assert dropped(text, "test", "not_a_number") == 1


def test_cel_errors_are_counted_not_raised(loopback_server):
    outcome, text = serve_and_scrape(loopback_server, module_from(EVERYTHING), {"value": "text", "items": {"state": "ok"}})
    assert outcome.success
    assert dropped(text, "test", "expression_error") == 2  # "text" + 1, and filter over a map's keys
    assert value(text, "cel_sum") is None
