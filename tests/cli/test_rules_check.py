"""`alert-engine rules check` on hostile rule files: file:line problems, never a traceback."""

import subprocess
from pathlib import Path

from click.testing import CliRunner

from alert_engine.cli.main import main
from tests.rules.test_yamlsource import billion_laughs

RULE = "name: {name}\nsource: ratings\ncondition: {condition}\n"


def test_rules_check_reports_every_hostile_file_with_its_line(tmp_path: Path) -> None:
    def rule(name: str, condition: str) -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(RULE.format(name=name, condition=condition))
        return path

    good = rule("good", "rating <= 2")
    laughs = tmp_path / "laughs.yaml"
    laughs.write_text(billion_laughs(9))
    big = rule("big", "rating <= 2")
    big.write_text(big.read_text() + "description: '" + "x" * 2**21 + "'\n")
    itself = tmp_path / "itself.yaml"
    itself.write_text("name: itself\nlabels: &l {a: *l}\n")
    regex = rule("regex", "comment.matches('(?:a?){3000}a{3000}')")
    deep = rule("deep", "'" + "!" * 3986 + "(rating <= 2)'")
    loop = tmp_path / "loop.yaml"
    loop.symlink_to(loop)
    dangling = tmp_path / "gone.yaml"
    dangling.symlink_to(tmp_path / "moved.yaml")

    result = CliRunner().invoke(main, ["rules", "check", str(tmp_path)])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.splitlines()
    assert "Traceback" not in result.output + result.stderr
    expected_starts = [
        f"{dangling}:1:1: symlink to {tmp_path / 'moved.yaml'}, which does not exist",
        f"{loop}:1:1: symlink loop",
        f"{big}:1:1: file too large: more than 1,048,576 bytes",
        f"{deep}:1:1: cannot load rule file: an expression or document is nested too deeply",
        f"{itself}:2:16: alias *l stands inside the node it names",
        f"{laughs}:5:36: aliases expand the document beyond 100,000 nodes",
        f"{regex}:3:12: condition does not compile: invalid regular expression",
    ]
    for start in expected_starts:
        assert any(line.startswith(start) for line in lines), (start, lines)
    assert not any(str(good) in line for line in lines)
    assert lines[-1] == "5 problem(s); the rules were not loaded"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _alert_engine(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os
    import sys

    command = [sys.executable, "-m", "alert_engine.cli.main", *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=120, env={**os.environ, **env}
    )


def test_commands_that_cannot_reach_redis_say_so_in_one_line_and_exit_3() -> None:
    # The silences are the CLI's only Redis state (the report reads the history database).
    url = f"redis://:hunter2@127.0.0.1:{_free_port()}/0"
    for args in (["silence", "list"], ["silence", "expire", "no-such-silence"]):
        result = _alert_engine(*args, ALERT_ENGINE_REDIS_URL=url)
        assert result.returncode == 3, result.stderr
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("cannot reach Redis at redis://:***@127.0.0.1:")
        assert line.endswith("set ALERT_ENGINE_REDIS_URL") and "hunter2" not in line


def test_commands_that_cannot_reach_kafka_say_so_in_one_line_and_exit_3(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text('{"id": "r-1"}\n')
    bootstrap = f"127.0.0.1:{_free_port()}"
    for args in (["deadletter", "list"], ["produce", "ratings", str(events)]):
        result = _alert_engine(*args, ALERT_ENGINE_KAFKA_BOOTSTRAP=bootstrap)
        assert result.returncode == 3, result.stderr
        # One line: no traceback, no "Unclosed AIOKafkaConsumer" from a client left open.
        assert result.stderr.strip().splitlines() == [
            f"cannot reach Kafka at {bootstrap} (KafkaConnectionError); "
            "set ALERT_ENGINE_KAFKA_BOOTSTRAP"
        ]


def test_settings_that_do_not_validate_are_a_usage_error() -> None:
    result = _alert_engine("deadletter", "list", ALERT_ENGINE_KAFKA_PARTITIONS="four")
    assert result.returncode == 2
    assert result.stderr.startswith("setting partitions: ")


def test_rules_check_lists_the_problems_of_a_file_sorted_by_line(tmp_path: Path) -> None:
    (tmp_path / "two.yaml").write_text(
        "rules:\n"
        "  - name: a\n    source: ratings\n    condition: nope <= 2\n"
        "  - name: b\n    source: ratings\n    condition: rating <= 2\n    colour: red\n"
    )
    result = CliRunner().invoke(main, ["rules", "check", str(tmp_path)])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if "two.yaml:" in line]
    numbers = [int(line.split("two.yaml:")[1].split(":")[0]) for line in lines]
    assert len(numbers) == 2 and numbers == sorted(numbers)
