"""`mmbus send-csv`: rows become commands with ids derived from the row; bad rows are explained."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from services.campaign_csv import CsvError, read_commands
from services.demo import DEMO_CSV

HEADER = "waba_id,phone_number_id,to,template,language,category,tracking_token,params\n"
ROW = "102290129340398,106540352242922,+44 7911 123456,spring_sale,en_US,marketing,tok,Ana|20%\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "campaign.csv"
    path.write_text(text)
    return path


def test_a_row_becomes_a_command_with_an_id_derived_from_the_row(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + ROW + ROW)  # the same row twice is one command
    (command,), errors = read_commands(path, campaign="spring")
    again, _ = read_commands(path, campaign="spring")
    other, _ = read_commands(path, campaign="autumn")
    assert errors == []
    d = command.data
    assert (d.to, d.template.category, d.campaign_id, d.labels) == (
        "447911123456",
        "MARKETING",
        "spring",
        {"tracking_token": "tok"},
    )
    assert d.template.components[0]["parameters"][1]["text"] == "20%"
    assert again[0].data.command_id == d.command_id, "re-reading the file gives the same id"
    assert other[0].data.command_id != d.command_id, "another campaign is another command"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("to,template\n", "the header lacks waba_id, phone_number_id, language"),
        (HEADER.replace("params", "colour") + ROW, "unknown column(s) colour"),
    ],
)
def test_a_bad_header_says_what_to_fix(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(CsvError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_commands(write(tmp_path, text), campaign="c")


def test_bad_rows_are_listed_with_their_line_and_the_good_ones_kept(tmp_path: Path) -> None:
    bad_phone = ROW.replace("+44 7911 123456", "+44 12")
    bad_language = ROW.replace("en_US", "english")
    commands, errors = read_commands(
        write(tmp_path, HEADER + ROW + bad_phone + "\n" + bad_language), campaign="c"
    )
    assert len(commands) == 1
    assert [e.line for e in errors] == [3, 5]
    assert "to:" in errors[0].message
    assert "language" in errors[1].message


GOOD = {
    "waba_id": "102290129340398",
    "phone_number_id": "106540352242922",
    "to": "+44 7911 123456",
    "template": "spring_sale",
    "language": "en_US",
    "not_after": "2026-12-01T00:00:00Z",
    "activity_sharing": "true",
    "category": "marketing",
}


@pytest.mark.parametrize(
    ("changes", "campaign", "columns"),
    [
        (
            {"to": "+44 12", "template": "Spring Sale!", "not_after": "tomorrow"},
            "c",
            ["to", "template", "not_after"],
        ),
        (
            {"activity_sharing": "maybe", "language": "english"},
            "c",
            ["activity_sharing", "language"],
        ),
        ({"category": "promo", "waba_id": "acme"}, None, ["campaign_id", "waba_id", "category"]),
        ({"activity_sharing": "maybe"}, None, ["campaign_id", "activity_sharing"]),
    ],
)
def test_every_problem_of_a_row_is_listed_under_its_column(
    tmp_path: Path, changes: dict[str, str], campaign: str | None, columns: list[str]
) -> None:
    header = ",".join(GOOD)
    row = ",".join({**GOOD, **changes}.values())
    commands, errors = read_commands(write(tmp_path, f"{header}\n{row}\n"), campaign=campaign)
    assert commands == []
    (error,) = errors
    assert error.line == 2
    assert [p.split(":")[0] for p in error.problems] == columns
    assert str(error) == f"line 2: {'; '.join(error.problems)}"


def test_the_demo_campaign_is_valid() -> None:
    commands, errors = read_commands(DEMO_CSV, campaign="demo")
    assert errors == []
    assert len(commands) == 67


def test_the_cli_publishes_nothing_when_a_row_is_invalid(tmp_path: Path) -> None:
    bad = (
        ROW.replace("+44 7911 123456", "+44 12")
        .replace("spring_sale", "Spring")
        .replace("en_US", "x")
    )
    path = write(tmp_path, HEADER + ROW + bad)
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "send-csv", str(path), "--campaign", "c"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "MMBUS_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"},
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert [line.split(": ")[1:3] for line in done.stderr.splitlines()] == [
        ["line 3", "to"],
        ["line 3", "template"],
        ["line 3", "language"],
        ["1 invalid row(s); fix them or pass --skip-invalid. Nothing was published."],
    ]
