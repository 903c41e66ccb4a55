"""Shared condition fragments: `$name` in a rule's expressions, defined in `_defaults.yaml`."""

from pathlib import Path

import pytest

from alert_engine.evaluate import Evaluator
from alert_engine.events import Stream
from alert_engine.rules.fragments import FragmentError, expand
from alert_engine.rules.load import RulesetError, load_ruleset
from alert_engine.windows.store import MemoryWindowStore
from tests.factories import encode, rating

FRAGMENTS = {"vip": "customer.tier in ['gold', 'platinum']", "low": "rating <= 2"}


@pytest.mark.parametrize(
    ("source", "expanded"),
    [
        ("$low && $vip", "(rating <= 2) && (customer.tier in ['gold', 'platinum'])"),
        ("!$vip", "!(customer.tier in ['gold', 'platinum'])"),
        ("comment == '$vip'", "comment == '$vip'"),
        ('comment == "it costs $low"', 'comment == "it costs $low"'),
        ("comment == 'it\\'s $low' && $low", "comment == 'it\\'s $low' && (rating <= 2)"),
        ("comment == '''a ' $vip''' || $low", "comment == '''a ' $vip''' || (rating <= 2)"),
        ("comment == r'\\' || $low", "comment == r'\\' || (rating <= 2)"),
        ("rating <= 2", "rating <= 2"),
    ],
)
def test_fragments_are_expanded_outside_string_literals(source: str, expanded: str) -> None:
    assert expand(source, FRAGMENTS) == expanded


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("rating <= 2 && $vipp", r"unknown fragment \$vipp \(fragments in _defaults.yaml: \$low"),
        ("rating <= 2 && $", "must be followed by a fragment name"),
        ("$ vip", "must be followed by a fragment name"),
    ],
)
def test_an_unknown_or_unnamed_fragment_is_an_error(source: str, message: str) -> None:
    with pytest.raises(FragmentError, match=message):
        expand(source, FRAGMENTS)


def write_rules(directory: Path, defaults: str, rules: str) -> Path:
    directory.mkdir(exist_ok=True)
    (directory / "_defaults.yaml").write_text(defaults)
    (directory / "rules.yaml").write_text(rules)
    return directory


DEFAULTS = """\
fragments:
  vip: customer.tier in ['gold', 'platinum']
  unhappy: rating <= 2
"""


def test_rules_use_fragments_in_conditions_and_in_windowed_expressions(tmp_path: Path) -> None:
    rules = write_rules(
        tmp_path / "rules",
        DEFAULTS,
        """\
rules:
  - name: unhappy-vip
    source: ratings
    condition: $unhappy && $vip
  - name: vip-burst
    source: ratings
    where: $vip
    group_by: team
    window: {size: 1h}
    aggregates: {unhappy: count_if($unhappy)}
    condition: unhappy >= 2
""",
    )
    ruleset = load_ruleset(rules)
    evaluator = Evaluator(ruleset, max_event_bytes=65536)
    store = MemoryWindowStore(ruleset.windows())

    def fired(**fields: object) -> list[str]:
        raw = encode(rating(**fields))
        return [alert.rule for alert in evaluator.evaluate_all(Stream.RATINGS, raw, store)]

    gold = {"id": "c-1", "tier": "gold"}
    bronze = {"id": "c-2", "tier": "bronze"}
    assert fired(id="r-1", rating=1, customer=bronze) == []
    assert fired(id="r-2", rating=5, customer=gold) == []
    assert fired(id="r-3", rating=1, customer=gold) == ["unhappy-vip"]
    # The second unhappy VIP rating in the team's hour: the windowed rule fires too.
    assert sorted(fired(id="r-4", rating=2, customer=gold)) == ["unhappy-vip", "vip-burst"]


def test_an_unknown_fragment_is_reported_at_the_rule_line(tmp_path: Path) -> None:
    rules = write_rules(
        tmp_path / "rules",
        DEFAULTS,
        "name: typo\nsource: ratings\ncondition: rating <= 2 && $vp\n",
    )
    with pytest.raises(RulesetError) as caught:
        load_ruleset(rules)
    [problem] = [str(problem) for problem in caught.value.problems]
    assert problem.startswith(f"{rules / 'rules.yaml'}:3:")
    assert "unknown fragment $vp" in problem
    assert "$unhappy, $vip" in problem


def test_a_fragment_that_does_not_compile_is_reported_in_the_defaults_file(tmp_path: Path) -> None:
    rules = write_rules(
        tmp_path / "rules",
        "fragments:\n  vip: customer.tier in ['gold'\n  nested: $vip && rating < 3\n",
        "name: r\nsource: ratings\ncondition: rating <= 2\n",
    )
    with pytest.raises(RulesetError) as caught:
        load_ruleset(rules)
    problems = [str(problem) for problem in caught.value.problems]
    defaults = rules / "_defaults.yaml"
    assert any(
        p.startswith(f"{defaults}:2:") and "fragment 'vip' does not compile" in p for p in problems
    )
    assert any(
        p.startswith(f"{defaults}:3:") and "a fragment cannot use another" in p for p in problems
    )
