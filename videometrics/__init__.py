"""Automated quality metrics for generated videos, computed in one streaming decode.

    from videometrics import analyze_video, probe, load_script, VideoMetricsError
    metrics = analyze_video("clip.mp4", script=load_script("script.json"))

Definitions, units, directions and references: docs/metrics.md.
"""

from .analysis import METRICS_VERSION, analyze_video
from .decoding import probe
from .errors import VideoMetricsError
from .scripts import load_script

__all__ = ["METRICS_VERSION", "VideoMetricsError", "analyze_video", "load_script", "probe"]
