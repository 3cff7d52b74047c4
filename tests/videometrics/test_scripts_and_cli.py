"""Script parsing (every accepted shape) and the command-line front end."""

from __future__ import annotations

import json

import pytest

from videometrics import VideoMetricsError, load_script
from videometrics.cli import format_table, main
from videometrics.ocr import TextChecker
from videometrics.scripts import Scene, parse_script, place_scenes


def test_renderer_shaped_script_is_accepted(tmp_path) -> None:
    path = tmp_path / "script.json"
    path.write_text(
        json.dumps(
            {
                "title": "Solar",
                "scenes": [
                    {"text": "Solar", "kind": "title", "start_s": 0.0, "end_s": 2.0},
                    {"text": "Panels", "kind": "point", "start_s": 2.0, "end_s": 4.5},
                ],
            }
        )
    )
    assert load_script(path) == [
        {"text": "Solar", "start_s": 0.0, "end_s": 2.0},
        {"text": "Panels", "start_s": 2.0, "end_s": 4.5},
    ]


def test_list_of_strings_and_txt_files_are_untimed(tmp_path) -> None:
    as_json = tmp_path / "lines.json"
    as_json.write_text(json.dumps(["one", "two"]))
    as_txt = tmp_path / "lines.txt"
    as_txt.write_text("one\n\n  two  \n")
    expected = [
        {"text": "one", "start_s": None, "end_s": None},
        {"text": "two", "start_s": None, "end_s": None},
    ]
    assert load_script(as_json) == expected == load_script(as_txt)
    placed = place_scenes(parse_script(["a", "b", "c", "d"]), 8.0)
    assert [(s.start_s, s.end_s) for s in placed] == [(0, 2), (2, 4), (4, 6), (6, 8)]


def test_duration_may_stand_in_for_end() -> None:
    assert parse_script([{"text": "x", "start_s": 1.0, "duration_s": 2.0}]) == [
        Scene("x", 1.0, 3.0)
    ]


@pytest.mark.parametrize(
    "bad",
    [
        {"title": "no scenes"},
        "just a string",
        [{"text": "x", "start_s": 1.0}],
        [{"text": "x", "start_s": 2.0, "end_s": 1.0}],
        [{"text": "x", "start_s": "soon", "end_s": 1.0}],
        [{"text": 5}],
        [{"text": "a", "start_s": 0.0, "end_s": 1.0}, "b"],
        [3],
    ],
)
def test_malformed_scripts_raise_one_line_errors(bad) -> None:
    with pytest.raises(VideoMetricsError) as info:
        parse_script(bad)
    assert "\n" not in str(info.value)


def test_unreadable_script_files(tmp_path) -> None:
    with pytest.raises(VideoMetricsError, match="no such script file"):
        load_script(tmp_path / "nope.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(VideoMetricsError, match="not valid JSON"):
        load_script(broken)


def test_ocr_sampling_plan_is_one_or_two_frames_per_scene() -> None:
    checker = TextChecker(
        parse_script(
            [
                {"text": "long", "start_s": 0.0, "end_s": 4.0},
                {"text": "short", "start_s": 4.0, "end_s": 4.5},
            ]
        ),
        duration_hint=4.5,
    )
    assert checker._targets == pytest.approx([1.4, 2.6, 4.25])
    untimed = TextChecker(parse_script(["a", "b"]), duration_hint=10.0)
    assert untimed._targets == pytest.approx([1.75, 3.25, 6.75, 8.25])
    no_duration = TextChecker(parse_script(["a", "b"]), duration_hint=None)
    assert no_duration.wants(0.0)  # falls back to one OCR per second


def test_cli_json_prints_exactly_one_object(clips, tmp_path, capsys) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps(clips.script))
    assert main([str(clips.path("clean")), "--script-file", str(script), "--json"]) == 0
    out, _ = capsys.readouterr()
    lines = out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["frames"] == 60
    assert result["text_cer"] is not None and result["factual_accuracy"] is not None


def test_cli_table_without_script_shows_null_text_metrics(clips, capsys) -> None:
    assert main([str(clips.path("clean"))]) == 0
    out, _ = capsys.readouterr()
    assert "visual_quality" in out and "temporal_coherence" in out
    assert "text_cer" in out and "—" in out  # null rendered as a dash
    table = format_table({"frames": 3, "flicker": None}).splitlines()
    assert table[0] == "[video]" and table[1].split() == ["frames", "3"]
    assert table[2] == "[temporal]" and table[3].split()[:2] == ["flicker", "—"]


def test_cli_rejects_a_bad_script_file(clips, tmp_path, capsys) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"scenes": 3}')
    assert main([str(clips.path("clean")), "--script-file", str(bad)]) == 1
    assert "script" in capsys.readouterr().err
