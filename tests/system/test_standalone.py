"""A user's clone stands alone: nothing in the repository reads a path beside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).parents[2]
# A path that climbs out of the checkout to a sibling folder, or names the development machine's.
OUTSIDE = re.compile(r"\.\./shared|parent\s*/\s*[\"']shared[\"']|/work/(?:main|shared)\b")


def tracked_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    return [ROOT / name for name in listed.decode().split("\0") if name]


def test_no_tracked_file_reads_a_path_outside_the_repository() -> None:
    this = Path(__file__).resolve()
    offenders = []
    for path in tracked_files():
        if path.resolve() == this or not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_the_check_finds_a_path_outside_the_repository() -> None:
    assert OUTSIDE.search('SPEC = ROOT.parent / "shared" / "specs" / "x.json"')
    assert OUTSIDE.search("cat ../shared/specs/sendgrid-v3.json")
    assert not OUTSIDE.search("Silences live in Redis, shared by all workers.")


def test_sendgrids_contract_ships_with_its_licence() -> None:
    contract = ROOT / "standins" / "sendgrid"
    assert "/mail/send" in (contract / "sendgrid-v3-mail-send.json").read_text()
    assert (
        "MIT" in (contract / "LICENSE").read_text()
        or "Permission is hereby granted" in (contract / "LICENSE").read_text()
    )
