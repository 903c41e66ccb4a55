"""Matchers mean what they mean in Alertmanager: its parser (`pkg/labels/parse.go`), its value
escapes, its regex dialect (Go's RE2) and its anchoring (`^(?:RE)$`)."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alert_engine.routing import Matcher, Op
from tests.routing.test_tree import alert

bounded = settings(max_examples=300, deadline=None)


def matches(text: str, **event: Any) -> bool:
    return Matcher.parse(text).matches(alert(**event))


def test_a_regex_with_inline_flags_matches_as_in_alertmanager() -> None:
    # Refused before: "global flags not at the start of the expression".
    assert matches("team =~ (?i)ORDERS", team="Orders")
    # A flag in the middle applies from there to the end of its group, as in Go.
    assert matches("team =~ ord(?i)ERS", team="ordErs")
    assert not matches("team =~ ord(?i)ERS", team="ORDers")
    assert matches("team =~ (?i:ord)ers|billing", team="ORDers")
    # ... past `|` too: Go's flags end with their group, not their branch.
    assert matches("team =~ a(?i)b|c", team="C")
    # `(?s)`: `.` takes a line feed only when asked to.
    assert not matches("comment =~ a.b", comment="a\nb")
    assert matches("comment =~ (?s)a.b", comment="a\nb")


def test_regexes_are_go_re2_not_python_re() -> None:
    # Go's \d and \w are ASCII; Python's match Arabic-Indic digits too.
    assert not matches(r"agent.id =~ \d+", agent={"id": "\u0661\u0662"})
    assert matches(r"agent.id =~ \d+", agent={"id": "12"})
    # Go's `$` is the end of the text; Python's also matches before a final line feed.
    assert not matches("team =~ orders$\n", team="orders\n")
    # What RE2 refuses, Alertmanager refuses: backreferences and lookaround.
    for regex in (r"(a)\1", "a(?=b)", "(?<!x)a", r"\C"):
        with pytest.raises(ValueError, match="invalid regular expression"):
            Matcher.parse(f"team =~ {regex}")


def test_a_regex_is_anchored_by_the_text_alertmanager_compiles() -> None:
    # Alertmanager compiles "^(?:" + value + ")$": a value that closes the group anchors only
    # its first branch at the start and its last at the end.
    assert matches("team =~ a)|(b", team="apples")
    assert matches("team =~ a)|(b", team="club")
    assert not matches("team =~ a)|(b", team="cab!")
    assert not matches("team =~ order", team="orders")


def test_matcher_values_unescape_as_in_alertmanager() -> None:
    assert Matcher.parse(r'comment = "she said \"hi\""').value == 'she said "hi"'
    assert Matcher.parse(r'path = "a\\b"').value == "a\\b"
    assert Matcher.parse(r'comment = "two\nlines"').value == "two\nlines"
    # Any other backslash is itself, also in unquoted values.
    assert Matcher.parse(r"path = a\tb").value == "a\\tb"
    assert Matcher.parse("path = a\\").value == "a\\"
    assert Matcher.parse(r"path = \"x\"").value == '"x"'
    # Single quotes are not quotes: the value holds them (`routes check` warns about it).
    assert Matcher.parse("team = 'orders'").value == "'orders'"
    assert Matcher.parse('team = ""').value == ""
    assert Matcher.parse("team =").value == ""
    assert Matcher.parse('  team  =~  " a b "  ').value == " a b "


@pytest.mark.parametrize(
    "text", ['team = "orders', 'team = or"ders', 'team = "a"b"', 'team = orders"', r'team = "a\"']
)
def test_an_unescaped_double_quote_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="unescaped double quote"):
        Matcher.parse(text)


def test_an_invalid_regex_leaves_nothing_on_stderr_but_the_problem(tmp_path: Path) -> None:
    # RE2 logs parse errors to stderr through absl unless told not to.
    path = tmp_path / "routing.yaml"
    path.write_text(
        "destinations: {outbox: {type: outbox}}\n"
        "route:\n  destinations: [outbox]\n  routes:\n    - matchers: ['team =~ (a']\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "alert_engine.cli.main", "routes", "check", "--file", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"{path}:5:18: matcher 'team =~ (a': invalid regular expression: missing ): (a",
        "1 problem(s); the routing was not loaded",
    ]


field_names = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_.:-]{0,12}\Z")
# Values built from the characters that need care: quotes, backslashes, line feeds, spaces.
values = st.text(st.sampled_from("ab\"\\\n \t'=~,{}é"), max_size=12) | st.text(max_size=12)


def _compiles(value: str) -> bool:
    try:
        Matcher.parse(f'x =~ "{value}"'.replace("\n", "\\n"))
    except ValueError:
        return False
    return True


@bounded
@given(field_names, st.sampled_from([Op.EQ, Op.NE]), values)
def test_a_matcher_printed_parses_back_to_itself(name: str, op: Op, value: str) -> None:
    matcher = Matcher(name, op, value)
    assert Matcher.parse(str(matcher)) == matcher


@bounded
@given(field_names, st.sampled_from([Op.RE, Op.NRE]), values.filter(_compiles))
def test_a_regex_matcher_printed_parses_back_to_itself(name: str, op: Op, value: str) -> None:
    matcher = Matcher.parse(str(Matcher(name, op, value)))
    assert (matcher.field, matcher.op, matcher.value) == (name, op, value)


@bounded
@given(st.text(max_size=30))
def test_any_text_parses_or_is_refused_with_a_value_error(text: str) -> None:
    try:
        Matcher.parse(text)
    except ValueError as exc:
        assert str(exc)


# Regexes in the part of the syntax Python's `re` and RE2 share, with inline flags anywhere. Go
# scopes `(?i)` to the rest of its group; Python refuses flags past the start, and says the same
# with `(?i:rest)`. Both must then accept the same strings, RE2 through `^(?:RE)$`.


@dataclass(frozen=True)
class Node:
    go: str
    python: str


def _atoms() -> st.SearchStrategy[Node]:
    literal = st.sampled_from(["a", "A", "b", "B", "0", r"\n", r"\.", r"\*"]).map(
        lambda c: Node(c, c)
    )
    classes = st.sampled_from([".", "[ab]", "[^a]", "[A-Z]", r"\d", r"\w", r"\s", "[[:alpha:]]"])
    return literal | classes.map(lambda c: Node(c, c.replace("[[:alpha:]]", "[a-zA-Z]")))


def _sequence(items: list[Node | str]) -> Node:
    """Concatenate; a flag marker (`i`, `s`, `-i`) scopes over what follows in this sequence."""
    go, python = "", ""
    for position, item in enumerate(items):
        if isinstance(item, str):
            # In Go a flag holds to the end of its group, past `|`: the group ends it here.
            rest = _sequence(items[position + 1 :])
            return Node(f"(?:{go}(?{item}){rest.go})", f"{python}(?{item}:{rest.python})")
        go, python = go + item.go, python + item.python
    return Node(go, python)


def _extend(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    flags = st.sampled_from(["i", "s", "-i", "is"])
    sequence = st.lists(children | flags, min_size=1, max_size=4).map(_sequence)
    repeated = st.tuples(children, st.sampled_from(["*", "+", "?", "{1,2}", "*?"])).map(
        lambda pair: Node(f"(?:{pair[0].go}){pair[1]}", f"(?:{pair[0].python}){pair[1]}")
    )
    either = (
        st.lists(children, min_size=2, max_size=3)
        .map(_either)
        .map(lambda node: Node(f"(?:{node.go})", f"(?:{node.python})"))
    )
    grouped = st.tuples(st.sampled_from(["(?:", "(", "(?i:", "(?-i:", "(?s:"]), children).map(
        lambda pair: Node(f"{pair[0]}{pair[1].go})", f"{pair[0]}{pair[1].python})")
    )
    return sequence | repeated | either | grouped


def _either(nodes: list[Node]) -> Node:
    return Node("|".join(n.go for n in nodes), "|".join(n.python for n in nodes))


# Branches at the top too: the anchoring must hold them all.
regexes = st.lists(st.recursive(_atoms(), _extend, max_leaves=8), min_size=1, max_size=3).map(
    _either
)
subjects = st.text(st.sampled_from("aAbB0\n.*_é"), max_size=6)


@bounded
@given(regexes, st.lists(subjects, min_size=1, max_size=8))
def test_regexes_with_flags_match_what_pythons_re_matches_with_the_anchored_form(
    regex: Node, texts: list[str]
) -> None:
    matcher = Matcher.parse(f"team =~ {regex.go}")
    python = re.compile(regex.python, re.ASCII)
    for text in texts:
        expected = python.fullmatch(text) is not None
        assert matcher.matches(alert(team=text)) is expected, (regex, text)


def test_one_line_may_hold_several_matchers_as_in_alertmanagers_config() -> None:
    from alert_engine.routing.matchers import parse_matchers

    assert parse_matchers('{team="orders", severity=~"high|critical",}') == [
        Matcher("team", Op.EQ, "orders"),
        Matcher("severity", Op.RE, "high|critical"),
    ]
    assert parse_matchers('comment="a, b" , team=orders') == [
        Matcher("comment", Op.EQ, "a, b"),
        Matcher("team", Op.EQ, "orders"),
    ]
    assert parse_matchers(r'quote="She said: \"Hi, ladies\""') == [
        Matcher("quote", Op.EQ, 'She said: "Hi, ladies"')
    ]
    assert parse_matchers('team =~ "a{1,3}"') == [Matcher("team", Op.RE, "a{1,3}")]
    with pytest.raises(ValueError, match="quote the value"):
        parse_matchers("team =~ a{1,3}")
    with pytest.raises(ValueError, match="is not `field OP value`"):
        parse_matchers("team = a,,severity = b")


def test_a_route_with_several_matchers_on_one_line_needs_them_all(tmp_path: Path) -> None:
    from alert_engine.routing import load_routing
    from alert_engine.rules.spec import Severity
    from tests.routing.test_tree import write

    routing = load_routing(
        write(
            tmp_path,
            "destinations: {outbox: {type: outbox}, o: {type: outbox}}\n"
            "route:\n  destinations: [outbox]\n  routes:\n"
            "    - matchers: ['team = orders, severity = high']\n      destinations: [o]\n",
        )
    )
    assert routing.destinations_for(alert(team="orders")) == ["o"]
    assert routing.destinations_for(alert(Severity.LOW, team="orders")) == ["outbox"]
    assert routing.destinations_for(alert(team="billing")) == ["outbox"]


@bounded
@given(st.lists(st.tuples(field_names, st.sampled_from([Op.EQ, Op.NE]), values), max_size=4))
def test_matchers_printed_on_one_line_parse_back_to_the_same_list(
    parts: list[tuple[str, Op, str]],
) -> None:
    from alert_engine.routing.matchers import parse_matchers

    matchers = [Matcher(name, op, value) for name, op, value in parts]
    assert parse_matchers("{" + ", ".join(str(m) for m in matchers) + "}") == matchers
