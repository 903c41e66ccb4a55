"""What a command says when it refuses: one line on stderr naming what is wrong, and the exit
code documented for it (1 problems found, 2 usage or settings, 3 something it needs is
unreachable or not configured), never a traceback."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from alert_engine.cli.main import main

RULE = "name: slow\nsource: ratings\ncondition: rating <= 2\n"


def refusal(arguments: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, arguments, env=env)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output + result.stderr
    return result.exit_code, result.stderr


def test_a_rule_that_is_not_in_the_rules_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "slow.yaml").write_text(RULE)
    events = tmp_path / "events.jsonl"
    events.write_text("")
    arguments = ["rules", "test", "fast", "--rules", str(tmp_path), "--events", str(events)]
    assert refusal(arguments) == (1, f"no rule named 'fast' in {tmp_path}\n")


def test_a_rule_file_that_does_not_load_is_a_problem_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "slow.yaml").write_text(RULE.replace("rating <= 2", "rating <="))
    events = tmp_path / "events.jsonl"
    events.write_text("")
    code, stderr = refusal(["replay", str(tmp_path), "--events", str(events)])
    assert code == 1
    assert stderr.startswith(f"{tmp_path / 'slow.yaml'}:3:")
    assert stderr.endswith("1 problem(s); the rules were not loaded\n")


def test_a_members_file_that_does_not_load_is_a_usage_error(tmp_path: Path) -> None:
    members = tmp_path / "members.yaml"
    members.write_text("members: 3\n")
    code, stderr = refusal(["members", "check", str(members)])
    assert code == 2
    assert stderr.count("\n") == 1 and str(members) in stderr


@pytest.mark.parametrize("command", [["history", "migrate"], ["history", "rebuild"]])
def test_the_history_commands_without_a_database_say_which_setting_is_missing(
    command: list[str],
) -> None:
    assert refusal(command, env={"ALERT_ENGINE_DATABASE_URL": ""}) == (
        3,
        "error: set ALERT_ENGINE_DATABASE_URL to the history's PostgreSQL\n",
    )


@pytest.mark.parametrize("command", [["history", "migrate"], ["history", "rebuild"]])
def test_the_history_commands_with_the_database_down_say_so_and_exit_3(
    command: list[str],
) -> None:
    from devstack.ports import free_ports

    url = f"postgresql://alert@127.0.0.1:{free_ports(1)[0]}/history"
    code, stderr = refusal(command, env={"ALERT_ENGINE_DATABASE_URL": url})
    assert code == 3
    assert stderr.startswith(f"cannot reach PostgreSQL at {url} (")
    assert stderr.endswith("; set ALERT_ENGINE_DATABASE_URL\n") and stderr.count("\n") == 1
