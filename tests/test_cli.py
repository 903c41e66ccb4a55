"""`alert-engine rules check` on hostile rule files: file:line problems, never a traceback."""

from pathlib import Path

from click.testing import CliRunner

from alert_engine.cli.main import main
from tests.test_yamlsource import billion_laughs

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
