"""Regular expressions in conditions: RE2, compiled once, refused when too costly to run."""

from pathlib import Path

import cel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alert_engine.conditions.expressions import (
    Activation,
    EvaluationError,
    ExpressionError,
    compile_condition,
    functions_for,
)
from alert_engine.evaluate import Evaluator
from alert_engine.events import Stream
from alert_engine.rules.load import RulesetError, load_ruleset
from tests.factories import encode, rating

CATASTROPHIC = "(?:a?){3000}a{3000}"


def decide(source: str, **fields: object) -> bool:
    condition = compile_condition(source)
    return condition.evaluate(Activation(fields, functions_for([condition])))


def test_the_catastrophic_pattern_is_refused_at_load_with_its_line(tmp_path: Path) -> None:
    # It cost 172 ms per event and more (1.5 s on a comment of 3,000 `a`), every event.
    file = tmp_path / "neg.yaml"
    file.write_text(
        f"name: neg\nsource: ratings\ncondition: rating <= 2 || comment.matches('{CATASTROPHIC}')\n"
    )
    with pytest.raises(RulesetError) as caught:
        load_ruleset(tmp_path)
    assert [str(problem) for problem in caught.value.problems] == [
        f"{file}:3:12: condition does not compile: invalid regular expression "
        f"'{CATASTROPHIC}': invalid repetition size: {{3000}}"
    ]


@pytest.mark.parametrize(
    "pattern",
    [
        "(?:a?){700}a{700}",  # within RE2's repetition limit, 2,104 instructions
        "(ab|cd){500}",  # 3,004
        r"\pL{2,30}",  # every letter in UTF-8, thirty times
    ],
)
def test_a_pattern_too_large_to_run_on_every_event_is_refused(pattern: str) -> None:
    with pytest.raises(ExpressionError, match=r"too large: [\d,]+ RE2 instructions, at most 2,000"):
        compile_condition(f"comment.matches(r'{pattern}')")


def test_a_rule_with_a_pattern_alerts_through_the_evaluator(tmp_path: Path) -> None:
    (tmp_path / "refund.yaml").write_text(
        "name: refund\nsource: ratings\ncondition: comment.matches('(?i)\\\\brefund')\n"
    )
    evaluator = Evaluator(load_ruleset(tmp_path), max_event_bytes=65536)
    alerts = evaluator.evaluate(Stream.RATINGS, encode(rating(comment="I want a REFUND now")))
    assert [alert.rule for alert in alerts] == ["refund"]
    assert not evaluator.evaluate(Stream.RATINGS, encode(rating(comment="prefund, not a re-fund")))


def test_a_pattern_read_from_the_event_is_bounded_when_it_is_used() -> None:
    condition = "comment.matches(channel)"
    assert decide(condition, comment="I want a refund", channel="(?i)REFUND")
    with pytest.raises(EvaluationError, match=r"matches.*too large"):
        decide(condition, comment="a" * 3000, channel=CATASTROPHIC.replace("3000", "700"))
    with pytest.raises(EvaluationError, match="invalid repetition size"):
        decide(condition, comment="a" * 3000, channel=CATASTROPHIC)


@pytest.mark.parametrize(
    ("source", "comment", "expected"),
    [
        ("matches(comment, '^re')", "refund", True),  # the function form
        ("comment.matches(r'\\d{3}')", "order 123", True),  # a raw string
        ("comment.matches('''(?i)ref''')", "REFUND", True),
        ("['x', comment].exists(c, c.matches('^vip'))", "vip customer", True),
        ("comment.matches('matches[(]') && comment != 're2Matches('", "matches(", True),
        ("comment.contains('.matches(') && comment.matches('x$')", "a.matches(x", True),
        ("comment.matches('^a') // not matches('(')", "b", False),
    ],
)
def test_matches_in_every_form_runs_on_re2(source: str, comment: str, expected: bool) -> None:
    assert decide(source, comment=comment) is expected


def test_a_syntax_error_points_into_the_text_as_written() -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_condition("comment.matches('x') &&")
    assert "re2Matches" not in str(caught.value)
    assert "comment.matches('x') &&" in str(caught.value)


def test_a_non_string_pattern_is_an_error_of_that_event() -> None:
    with pytest.raises(EvaluationError, match="matches takes a string and a string pattern"):
        decide("comment.matches(rating)", comment="x", rating=1)
    with pytest.raises(ExpressionError, match="matches takes a string pattern"):
        compile_condition("comment.matches(b'x')")


# Ordinary patterns: what rule authors write. `\d`, `\w`, `\s` and `\b` are ASCII in RE2 (as CEL
# specifies) and Unicode in the Rust engine used before; they are compared on ASCII text.
LETTERS = list("abcxyzABCXYZ019 .-_\n")
# Kelvin sign and long s fold to k and s under (?i) in both engines.
OTHER_LETTERS = ["é", "ß", "\u212a", "\u017f", "İ", "日", "\u00a0"]
SHORTHANDS = [r"\d", r"\w", r"\s", r"\D", r"\W", r"\S", r"\b"]
atoms = st.sampled_from(
    [
        *"abcxyzAZ019 _-",
        *(r"\.", ".", "[a-c]", "[^xy]", "[0-9]", "[A-Za-z]", "^", "$", "é", "ß"),
        *SHORTHANDS,
    ]
)
quantifiers = st.sampled_from(["", "", "*", "+", "?", "{1,3}", "{2}", "*?", "+?"])


@st.composite
def patterns(draw: st.DrawFn, depth: int = 0) -> str:
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        if depth < 2 and draw(st.integers(0, 4)) == 0:
            inner = draw(patterns(depth + 1))
            alternative = draw(patterns(depth + 1)) if draw(st.booleans()) else None
            body = f"{inner}|{alternative}" if alternative is not None else inner
            part = f"({body})" if draw(st.booleans()) else f"(?:{body})"
        else:
            part = draw(atoms)
        if part not in ("^", "$", r"\b"):
            part += draw(quantifiers)
        parts.append(part)
    return ("(?i)" if depth == 0 and draw(st.booleans()) else "") + "".join(parts)


@settings(max_examples=400, deadline=None)
@given(pattern=patterns(), data=st.data())
def test_ordinary_patterns_match_as_they_did_before(pattern: str, data: st.DataObject) -> None:
    shorthand = any(code in pattern for code in SHORTHANDS)
    alphabet = LETTERS if shorthand else LETTERS + OTHER_LETTERS
    comment = data.draw(st.text(alphabet=st.sampled_from(alphabet), max_size=30))
    literal = "'" + pattern.replace("\\", "\\\\").replace("\n", "\\n") + "'"
    source = f"comment.matches({literal})"
    # Before: cel-rust's own `matches`, on Rust's regex engine.
    before = cel.compile(source).execute(cel.Context({"comment": comment}, {}))
    assert decide(source, comment=comment) is before


@pytest.mark.parametrize("pattern", ["[a-z&&[^aeiou]]", r"[\\w--\\d]", "[a[bc]]"])
def test_rust_class_syntax_that_re2_would_read_differently_is_refused(pattern: str) -> None:
    # RE2 reads `[a-z&&[^aeiou]]` as a class of letters, `&` and `[`, then `]`: not what it says.
    with pytest.raises(ExpressionError, match="not RE2 syntax"):
        compile_condition(f"comment.matches('{pattern}')")


@pytest.mark.parametrize(
    ("pattern", "comment"),
    [("[[:alpha:]]+", "abc"), ("[]a]", "]"), (r"[\\[\\]]", "["), ("[a-]", "-"), ("a--b", "a--b")],
)
def test_ordinary_classes_with_brackets_and_dashes_still_load(pattern: str, comment: str) -> None:
    assert decide(f"comment.matches('{pattern}')", comment=comment)
