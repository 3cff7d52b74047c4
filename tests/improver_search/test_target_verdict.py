"""The benchmarks' verdict on issue 10's target: medians over every run, and shown or not."""

from benchmarks.loop_search import CHECKPOINTS, target_verdict


def _run(seed: int, loop: list[float], tpe: list[float] | None = None) -> dict:
    run = {"seed": seed, "loop": dict(zip(CHECKPOINTS, loop, strict=True))}
    if tpe is not None:
        run["tpe"] = dict(zip(CHECKPOINTS, tpe, strict=True))
    return run


def test_the_target_is_met_when_the_median_closes_80_percent_and_leads_tpe_everywhere():
    runs = [_run(s, [0.3, 0.5, 0.8, 0.9], [0.1, 0.3, 0.5, 0.6]) for s in range(10)]

    text, met = target_verdict(runs)

    assert met
    assert "target (issue 10): met" in text
    assert "| loop | 30% | 50% | 80% | 90% |" in text


def test_a_median_below_80_percent_misses_the_target():
    runs = [_run(s, [0.3, 0.5, 0.7, 0.79], [0.1, 0.3, 0.5, 0.6]) for s in range(10)]

    text, met = target_verdict(runs)

    assert not met
    assert "median at 3,000 ratings 79% (needs >= 80%) missed" in text


def test_trailing_tpe_at_one_checkpoint_misses_the_target():
    runs = [_run(s, [0, 0.5, 0.8, 0.9], [0.06, 0.3, 0.5, 0.6]) for s in range(10)]

    text, met = target_verdict(runs)

    assert not met
    assert "ahead of TPE at 500: 0% vs 6% missed" in text
    assert "ahead of TPE at 1,000: 50% vs 30% ok" in text


def test_too_few_seeds_or_no_tpe_baseline_is_not_shown():
    few = [_run(s, [0.9] * 4, [0.1] * 4) for s in range(3)]
    untested = [_run(s, [0.9] * 4) for s in range(10)]

    assert target_verdict(few)[1] is False
    text, met = target_verdict(untested)
    assert not met
    assert "not measured" in text
