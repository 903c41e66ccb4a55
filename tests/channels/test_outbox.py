"""Reading the outbox's tail for its page agrees with reading the whole file, whatever the file
holds (a line still being written, blank lines) and however the reads fall across lines."""

from __future__ import annotations

import tempfile
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from alert_engine.channels import outbox
from alert_engine.channels.outbox import read_outbox, read_outbox_tail

entries = st.lists(
    st.fixed_dictionaries(
        {"destination": st.text(max_size=30), "n": st.integers(-(2**63), 2**63 - 1)}
    ),
    max_size=40,
)


@given(
    entries,
    st.integers(0, 50),
    st.integers(1, 64),
    st.sampled_from([b"", b'{"destination": "half', b"\n"]),
)
def test_the_tail_is_the_end_of_the_whole(
    entries: list[dict[str, object]], limit: int, chunk: int, partial: bytes
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "outbox.jsonl"
        path.write_bytes(b"".join(orjson.dumps(entry) + b"\n" for entry in entries) + partial)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(outbox, "_TAIL_CHUNK", chunk)
            tail = read_outbox_tail(path, limit)
        assert tail == (read_outbox(path)[-limit:] if limit else [])


def test_a_missing_outbox_has_no_tail(tmp_path: Path) -> None:
    assert read_outbox_tail(tmp_path / "none.jsonl", 200) == []


def test_a_line_that_is_not_json_is_passed_over(tmp_path: Path) -> None:
    path = tmp_path / "outbox.jsonl"
    path.write_bytes(b'{"n": 1}\nnot json\n{"n": 2}\n')
    assert read_outbox_tail(path, 200) == [{"n": 1}, {"n": 2}]
