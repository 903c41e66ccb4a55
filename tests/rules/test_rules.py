from pathlib import Path
from typing import Any

import pytest

from alert_engine.events import Stream
from alert_engine.rules.load import RulesetError, load_ruleset
from alert_engine.rules.spec import Severity

GOOD = """\
name: negative-rating
source: ratings
condition: rating <= 2
severity: high
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


def problems_of(directory: Path, **kwargs: Any) -> list[str]:
    with pytest.raises(RulesetError) as caught:
        load_ruleset(directory, **kwargs)
    return [str(problem) for problem in caught.value.problems]


def test_the_shipped_rules_load() -> None:
    ruleset = load_ruleset(Path(__file__).parents[2] / "rules")
    assert ruleset.get("negative-rating") is not None


def test_a_rule_file_loads_into_a_versioned_ruleset(tmp_path: Path) -> None:
    write(tmp_path, "neg.yaml", GOOD)
    ruleset = load_ruleset(tmp_path)
    rule = ruleset.get("negative-rating")
    assert rule is not None
    assert rule.spec.severity is Severity.HIGH
    assert ruleset.by_stream[Stream.RATINGS] == (rule,)
    assert ruleset.by_stream[Stream.INTERACTIONS] == ()
    # The version names the content: the same rules give the same version, a change a new one.
    assert load_ruleset(tmp_path).version == ruleset.version
    write(tmp_path, "neg.yaml", GOOD.replace("<= 2", "<= 1"))
    assert load_ruleset(tmp_path).version != ruleset.version


def test_several_rules_in_one_file(tmp_path: Path) -> None:
    write(
        tmp_path,
        "many.yml",
        "rules:\n  - " + GOOD.replace("\n", "\n    ").rstrip() + "\n"
        "  - name: long-wait\n    source: interactions\n    condition: wait_seconds > 20.0\n",
    )
    assert [rule.name for rule in load_ruleset(tmp_path).rules] == ["long-wait", "negative-rating"]


def test_an_unknown_key_is_reported_with_its_line_and_column(tmp_path: Path) -> None:
    file = write(tmp_path, "neg.yaml", GOOD + "  \nseverty: low\n")
    assert problems_of(tmp_path) == [
        f"{file}:6:1: unknown key 'severty' (did you mean 'severity'? allowed: name, "
        "description, source, condition, severity, route, enabled, labels, followup, "
        "escalate_after, where, group_by, window, aggregates, min_sample, throttle, join)"
    ]


def test_a_condition_that_does_not_compile_points_at_the_condition(tmp_path: Path) -> None:
    file = write(tmp_path, "neg.yaml", GOOD.replace("rating <= 2", "rating <= "))
    [problem] = problems_of(tmp_path)
    assert problem.startswith(f"{file}:3:12: condition does not compile: syntax error at 1:10")


def test_a_condition_reading_an_unknown_field_is_rejected(tmp_path: Path) -> None:
    write(tmp_path, "neg.yaml", GOOD.replace("rating <= 2", "ratng <= 2"))
    [problem] = problems_of(tmp_path)
    assert "unknown field(s) ratng of stream ratings" in problem


def test_comprehension_variables_are_not_mistaken_for_fields(tmp_path: Path) -> None:
    write(tmp_path, "neg.yaml", GOOD.replace("rating <= 2", "'[1, 2].exists(x, x == rating)'"))
    assert load_ruleset(tmp_path).get("negative-rating") is not None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            GOOD.replace("ratings", "tweets"),
            "2:9: source: Input should be 'ratings' or 'interactions'",
        ),
        (GOOD.replace("high", "urgent"), "4:11: severity: Input should be"),
        (GOOD.replace("negative-rating", "Negative Rating"), "1:7: name: String should match"),
        ("source: ratings\ncondition: rating < 2\n", "1:1: missing required key 'name'"),
        ("- just\n- a list\n", "1:1: a rule file must be a mapping"),
        ("name: [unclosed\n", "invalid YAML"),
        (GOOD + "name: again\n", "5:1: invalid YAML: duplicate key 'name'"),
    ],
)
def test_bad_rule_files_are_rejected_with_file_line_and_message(
    tmp_path: Path, text: str, expected: str
) -> None:
    file = write(tmp_path, "bad.yaml", text)
    [problem] = problems_of(tmp_path)
    assert problem.startswith(str(file))
    assert expected in problem


def test_every_problem_in_every_file_is_reported_at_once(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD.replace("high", "urgent"))
    write(tmp_path, "b.yaml", GOOD.replace("rating <= 2", "rating <"))
    write(tmp_path, "c.yaml", GOOD)
    problems = problems_of(tmp_path)
    assert len(problems) == 2
    assert "a.yaml:4" in problems[0]
    assert "b.yaml:3" in problems[1]


def test_duplicate_rule_names_are_rejected(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", GOOD)
    write(tmp_path, "b.yaml", GOOD)
    [problem] = problems_of(tmp_path)
    assert f"duplicate rule name 'negative-rating' (first defined at {first}:1:1)" in problem


def test_a_missing_rules_directory_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    assert "rules directory not found" in problems_of(tmp_path / "nope")[0]


def test_a_rule_may_carry_its_follow_up_policy(tmp_path: Path) -> None:
    from datetime import timedelta

    write(tmp_path, "neg.yaml", GOOD + "followup:\n  delay: PT2H\n")
    write(tmp_path, "b.yaml", GOOD.replace("negative-rating", "b") + "followup:\n  enabled: no\n")
    ruleset = load_ruleset(tmp_path)
    neg, other = ruleset.get("negative-rating"), ruleset.get("b")
    assert neg is not None and neg.spec.followup is not None
    assert neg.spec.followup.delay == timedelta(hours=2)
    assert other is not None and other.spec.followup is not None
    assert other.spec.followup.enabled is False


def test_a_typo_in_a_follow_up_policy_is_reported_with_its_line(tmp_path: Path) -> None:
    write(tmp_path, "neg.yaml", GOOD + "followup:\n  delai: 3600\n")
    write(tmp_path, "b.yaml", GOOD.replace("negative-rating", "b") + "followup:\n  delay: -5\n")
    [bad_delay, typo] = problems_of(tmp_path)
    assert typo.startswith(f"{tmp_path / 'neg.yaml'}:6:3: unknown key 'followup.delai'")
    assert "(did you mean 'delay'? allowed: enabled, delay)" in typo
    assert bad_delay.startswith(f"{tmp_path / 'b.yaml'}:6:")
    assert "followup.delay" in bad_delay


def test_the_committed_json_schema_is_up_to_date() -> None:
    import json

    from alert_engine.rules.spec import rule_file_schema

    committed = json.loads((Path(__file__).parents[2] / "rules.schema.json").read_text())
    assert committed == rule_file_schema(), "run `alert-engine rules schema` and commit it"


def test_the_shipped_rules_validate_against_the_json_schema_structure() -> None:
    from alert_engine.rules.spec import rule_file_schema

    # The schema names every key a rule may have, with the rule's own required keys.
    rule = rule_file_schema()["$defs"]["Rule"]
    assert set(rule["required"]) == {"name", "source", "condition"}
    assert rule["additionalProperties"] is False
    assert "window" in rule["properties"] and "aggregates" in rule["properties"]


def test_defaults_apply_to_every_rule_and_a_rule_overrides_them(tmp_path: Path) -> None:
    write(
        tmp_path,
        "_defaults.yaml",
        "severity: low\nroute: outbox\nlabels: {program: recovery, tier: all}\n"
        "throttle: {period: 1h}\ngrace: 5m\nmin_sample: 3\n",
    )
    write(tmp_path, "plain.yaml", "name: plain\nsource: ratings\ncondition: rating <= 2\n")
    write(
        tmp_path,
        "own.yaml",
        "name: own\nsource: ratings\ncondition: rating <= 1\nseverity: critical\n"
        "labels: {tier: gold}\nthrottle: null\n",
    )
    write(
        tmp_path,
        "windowed.yaml",
        "name: windowed\nsource: ratings\ngroup_by: team\nwindow: {size: 1h}\n"
        "aggregates: {n: count()}\ncondition: n > 1\n",
    )
    ruleset = load_ruleset(tmp_path)
    plain, own, windowed = (ruleset.get(name) for name in ("plain", "own", "windowed"))
    assert plain is not None and own is not None and windowed is not None
    assert plain.spec.severity is Severity.LOW
    assert plain.spec.route == "outbox"
    assert plain.spec.throttle is not None and plain.spec.throttle.period == 3600
    assert plain.spec.window is None  # grace and min_sample only reach windowed rules
    assert own.spec.severity is Severity.CRITICAL
    assert own.spec.labels == {"program": "recovery", "tier": "gold"}
    assert own.spec.throttle is None
    assert windowed.spec.window is not None and windowed.spec.window.grace == 300
    assert windowed.spec.min_sample == 3
    assert len(ruleset.rules) == 3  # the defaults file is not a rule


def test_a_bad_defaults_file_is_reported_with_its_own_line(tmp_path: Path) -> None:
    defaults = write(tmp_path, "_defaults.yaml", "severity: high\nsevertiy: low\ngrace: 0s\n")
    write(tmp_path, "neg.yaml", GOOD)
    problems = sorted(problems_of(tmp_path))
    assert problems[0].startswith(f"{defaults}:2:1: unknown key 'severtiy' in defaults")
    assert problems[1] == f"{defaults}:3:8: grace: a duration must be greater than zero"


def test_an_invalid_regular_expression_is_an_error_at_load_not_at_run_time(tmp_path: Path) -> None:
    file = write(tmp_path, "neg.yaml", GOOD.replace("rating <= 2", "comment.matches('(refund')"))
    [problem] = problems_of(tmp_path)
    assert problem.startswith(f"{file}:3:12: condition does not compile: invalid regular")
    assert problem.endswith("missing ): (refund")


def test_a_rule_file_beyond_the_limits_is_a_problem_naming_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alert_engine.settings import EngineSettings
    from tests.rules.test_yamlsource import billion_laughs

    laughs = write(tmp_path, "laughs.yaml", billion_laughs(9))
    # 50 MB was accepted (15.6 s of parsing); anything beyond 1 MiB is now refused unread.
    big_rule = GOOD.replace("negative-rating", "big") + "description: '" + "x" * 2**20 + "'\n"
    big = write(tmp_path, "big.yaml", big_rule)
    write(tmp_path, "neg.yaml", GOOD)
    assert sorted(problems_of(tmp_path)) == [
        f"{big}:1:1: file too large: more than 1,048,576 bytes (not read); "
        "the limit is ALERT_ENGINE_RULES_MAX_FILE_BYTES",
        f"{laughs}:5:36: aliases expand the document beyond 100,000 nodes (at alias *d); "
        "the limit is ALERT_ENGINE_RULES_MAX_YAML_NODES",
    ]
    monkeypatch.setenv("ALERT_ENGINE_RULES_MAX_FILE_BYTES", str(2 * 1024 * 1024))
    laughs.unlink()
    ruleset = load_ruleset(tmp_path, limits=EngineSettings().rule_file_limits)
    assert [rule.name for rule in ruleset.rules] == ["big", "negative-rating"]


@pytest.mark.parametrize(
    ("written", "seconds"),
    [("30m", 1800), ("1h30m", 5400), ("900", 900), ("PT15M", 900), ("2d", 172800), (45, 45)],
)
def test_escalate_after_and_followup_delay_take_durations_as_written_elsewhere(
    tmp_path: Path, written: str | int, seconds: int
) -> None:
    write(
        tmp_path,
        "neg.yaml",
        GOOD + f"escalate_after: {written}\nfollowup: {{delay: {written}}}\n",
    )
    rule = load_ruleset(tmp_path).get("negative-rating")
    assert rule is not None and rule.spec.escalate_after is not None
    assert rule.spec.escalate_after.total_seconds() == seconds
    assert rule.spec.followup is not None and rule.spec.followup.delay is not None
    assert rule.spec.followup.delay.total_seconds() == seconds


def test_a_duration_that_is_not_one_says_how_to_write_it(tmp_path: Path) -> None:
    write(tmp_path, "neg.yaml", GOOD + "escalate_after: 30 minutes\n")
    [problem] = problems_of(tmp_path)
    assert "neg.yaml:5:" in problem
    assert "write durations as 30s, 5m, 1h30m, 1d, 1w" in problem
