from pathlib import Path

import pytest

from feedbackloop.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "config" / "default_config.yaml"


def test_default_config_loads_with_the_design_settings():
    config = load_config(DEFAULT)
    assert config.default_pipeline == "builtin"
    builtin = config.pipeline()
    assert builtin.slug == "builtin" and builtin.params["model_variant"] == "standard"
    assert builtin.renderer == "pipelines.builtin.renderer:render_video"
    assert builtin.declaration["properties"]["crf"]["maximum"] == 51
    assert config.feedback.min_feedback_for_analysis >= 1
    assert config.feedback.analysis_frequency_minutes >= 1
    assert config.feedback.require_approval is False
    assert 0 < config.feedback.improvement_criteria.canary_share < 1
    assert config.feedback.improvement_criteria.control_history == 40
    assert config.output_dir.name == "output"


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml: \(file\): no such file"):
        load_config(tmp_path / "nope.yaml")


def test_bad_yaml_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("generator: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: \(yaml\): not valid YAML"):
        load_config(path)


def test_a_file_without_pipelines_declares_the_builtin_one_with_the_older_generator_params(
    tmp_path,
):
    path = tmp_path / "conf.yaml"
    path.write_text("generator:\n  params:\n    crf: 18\n")
    config = load_config(path)
    assert [p.slug for p in config.pipelines] == ["builtin"]
    assert config.default_pipeline == "builtin" and config.pipeline().params == {"crf": 18}


PIPELINE = (
    "pipelines:\n  - slug: builtin\n    name: Built-in\n"
    "    declaration: {root}/pipelines/builtin/parameters.json\n"
)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("generator:\n  params:\n    crf: 99\n", "generator.params.crf"),
        ("generator:\n  params:\n    colour: red\n", "generator.params.colour"),
        (PIPELINE + "    params:\n      crf: 99\n", "pipelines[0].params.crf"),
        (PIPELINE + "    colour: red\n", "pipelines[0].colour"),
        (PIPELINE.replace("parameters.json", "missing.json"), "pipelines[0].declaration"),
        ("pipelines: []\n", "pipelines"),
        (PIPELINE + "default_pipeline: other\n", "default_pipeline"),
        ("feedback:\n  min_feedback_for_analysis: 0\n", "feedback.min_feedback_for_analysis"),
        ("feedback:\n  require_approval: maybe\n", "feedback.require_approval"),
        (
            "feedback:\n  improvement_criteria:\n    canary_share: 2\n",
            "feedback.improvement_criteria.canary_share",
        ),
        (
            "feedback:\n  improvement_criteria:\n    control_history: -1\n",
            "feedback.improvement_criteria.control_history",
        ),
        ("feedback:\n  analysis_frequency: 5\n", "feedback.analysis_frequency"),
        ("storage:\n  output_dir: ''\n", "storage.output_dir"),
    ],
)
def test_bad_value_names_the_file_and_the_key(tmp_path, text, key):
    path = tmp_path / "conf.yaml"
    path.write_text(text.format(root=ROOT))
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert str(exc.value).startswith(f"{path}: {key}: ")
