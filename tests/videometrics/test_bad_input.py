"""Unusable input fails with one VideoMetricsError whose message is one line, everywhere."""

from __future__ import annotations

import pytest

from videometrics import VideoMetricsError, analyze_video, probe
from videometrics.cli import main

CASES = {
    "missing": "no such file",
    "directory": "not a regular file",
    "empty": "empty file",
    "text_as_mp4": "not a readable media file",
    "truncated": "not a readable media file",
    "zero_frames": "no decodable video frame",
    "truncated_mkv": "truncated video",
    "audio_only": "no video stream",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_analyze_video_rejects_with_a_one_line_reason(bad_files, case: str) -> None:
    with pytest.raises(VideoMetricsError) as info:
        analyze_video(bad_files[case], ocr=False)
    message = str(info.value)
    assert CASES[case] in message
    assert "\n" not in message and len(message) < 300


@pytest.mark.parametrize("case", sorted(set(CASES) - {"truncated_mkv"}))
def test_probe_rejects_the_same_files(bad_files, case: str) -> None:
    # probe decodes only the first frame, so a file truncated after it still passes probe.
    with pytest.raises(VideoMetricsError):
        probe(bad_files[case])


def test_probe_describes_a_good_clip_cheaply(clips) -> None:
    info = probe(clips.path("clean"))
    assert info == {
        "frames": 60,
        "fps": 24.0,
        "duration_s": pytest.approx(2.5, abs=0.05),
        "width": 320,
        "height": 192,
        "codec": "h264",
    }


@pytest.mark.parametrize("case", ["missing", "text_as_mp4", "zero_frames", "audio_only"])
def test_cli_exits_non_zero_with_one_line_on_stderr(bad_files, case: str, capsys) -> None:
    assert main([str(bad_files[case]), "--json"]) != 0
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert CASES[case] in err
