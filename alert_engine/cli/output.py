"""How the commands tell a user what went wrong: located problems on stderr, and one exit code
per kind of outcome, the same for every command.

    0  done, nothing wrong
    1  problems found (a rule or routing file refused, a rule that does not exist)
    2  usage: a command line click refuses, or settings that do not validate
    3  infrastructure unreachable: Kafka or Redis did not answer
"""

from __future__ import annotations

import click

from alert_engine.problems import ProblemsError

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


def print_problems(exc: ProblemsError, outcome: str = "the rules were not loaded") -> None:
    for problem in exc.problems:
        click.echo(f"{problem}", err=True)
    click.echo(f"{len(exc.problems)} problem(s); {outcome}", err=True)
