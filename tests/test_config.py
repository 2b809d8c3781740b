import dataclasses
from pathlib import Path

import pytest

from sanitizer.config import SECTIONS, config, load_params
from sanitizer.errors import SanitizerError

REPO = Path(__file__).resolve().parents[1]


def test_defaults_build_frozen_dataclass():
    cfg = config("train", {})
    assert dataclasses.is_dataclass(cfg)
    assert cfg.epochs is None and cfg.batch_size is None  # null: the model's recipe decides
    from sanitizer.models import RECIPES

    assert cfg.resolved(RECIPES["small_cnn"]).epochs == 3 and cfg.resolved(RECIPES["small_cnn"]).batch_size == 128
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 7


def test_values_override_defaults():
    cfg = config("attack", {"attack": {"name": "blend", "rate": 0.1, "target": 3}})
    assert (cfg.name, cfg.rate, cfg.target) == ("blend", 0.1, 3)
    assert cfg.mode == "all-to-one"


def test_unknown_key_named():
    with pytest.raises(SanitizerError, match="bogus_key"):
        config("train", {"train": {"bogus_key": 1}})


def test_wrong_type_named():
    with pytest.raises(SanitizerError, match=r"\[train\]\.epochs"):
        config("train", {"train": {"epochs": "three"}})
    with pytest.raises(SanitizerError, match=r"\.lr"):
        config("train", {"train": {"lr": "fast"}})


def test_int_accepted_for_float():
    cfg = config("train", {"train": {"lr": 1}})
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)


def test_bool_rejected_for_int_and_float():
    with pytest.raises(SanitizerError, match="epochs"):
        config("train", {"train": {"epochs": True}})
    with pytest.raises(SanitizerError, match="lr"):
        config("train", {"train": {"lr": True}})


def test_float_rejected_for_int():
    with pytest.raises(SanitizerError, match="batch_size"):
        config("train", {"train": {"batch_size": 2.5}})


@pytest.mark.parametrize(
    "section,key,value",
    [
        ("attack", "rate", 1.5),
        ("attack", "rate", -0.1),
        ("attack", "alpha", 2.0),
        ("attack", "trigger_size", 0),
        ("train", "epochs", 0),
        ("data", "test_fraction", 0.95),
        ("score", "eps", 1.5),
        ("partition", "rate", 0.0),
        ("enhance", "rate", 0.6),
        ("relabel", "min_confidence", 1.1),
        ("relabel", "evidence", -0.5),
    ],
)
def test_out_of_range_named(section, key, value):
    with pytest.raises(SanitizerError, match=key):
        config(section, {section: {key: value}})


def test_range_edges_accepted():
    assert config("attack", {"attack": {"rate": 0.0}}).rate == 0.0
    assert config("attack", {"attack": {"rate": 1}}).rate == 1.0


def test_patch_max_below_patch_min_rejected():
    with pytest.raises(SanitizerError, match="patch_max"):
        config("score", {"score": {"patch_min": 0.5, "patch_max": 0.3}})
    cfg = config("score", {"score": {"patch_min": 0.5, "patch_max": 0.5}})
    assert cfg.patch_min == cfg.patch_max == 0.5


def test_literal_checked():
    assert config("attack", {"attack": {"mode": "all-to-all"}}).mode == "all-to-all"
    with pytest.raises(SanitizerError, match="mode"):
        config("attack", {"attack": {"mode": "some-to-one"}})
    with pytest.raises(SanitizerError, match="position"):
        config("attack", {"attack": {"position": "middle"}})


def test_optional_accepts_none_and_checks_type():
    assert config("data", {"data": {"path": None}}).path is None
    assert config("data", {"data": {"path": "x/y"}}).path == "x/y"
    with pytest.raises(SanitizerError, match="path"):
        config("data", {"data": {"path": 3}})


def test_none_section_gives_defaults():
    assert config("evaluate", {"evaluate": None}).batch_size == 1024


def test_load_params_unknown_section(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("train:\n  epochs: 2\nmystery:\n  a: 1\n")
    with pytest.raises(SanitizerError, match="mystery"):
        load_params(p)


def test_load_params_missing_and_invalid(tmp_path):
    with pytest.raises(SanitizerError):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(SanitizerError):
        load_params(bad)


def test_load_params_empty_file(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("")
    assert load_params(p) == {}


def test_repo_params_load_and_build():
    params = load_params(REPO / "params.yaml")
    assert set(params) <= set(SECTIONS)
    assert params  # not empty
    for name in params:
        cfg = config(name, params)
        assert type(cfg) is SECTIONS[name]
        for key, value in (params[name] or {}).items():
            got = getattr(cfg, key)
            assert got == value or (isinstance(value, list) and tuple(value) == got)


def test_code_defaults_are_the_measured_params():
    """A params.yaml that leaves a key out gets the value the README's figures were measured
    with. The attack section is the exception: by default nothing is poisoned (real data)."""
    params = load_params(REPO / "params.yaml")
    for name in set(params) - {"attack"}:
        measured = dataclasses.asdict(config(name, params))
        default = dataclasses.asdict(config(name, {}))
        assert default.keys() == measured.keys(), name
        for key, value in measured.items():
            # eps: 16/255 in code vs 0.0627 in params.yaml
            expected = pytest.approx(value, rel=1e-3) if isinstance(value, float) else value
            assert default[key] == expected, f"{name}.{key}"


def test_name_choices_are_the_registries():
    import typing

    from sanitizer.attacks import ATTACKS
    from sanitizer.config import AttackConfig, DataConfig, ModelConfig
    from sanitizer.datasets import SOURCES
    from sanitizer.models import MODELS

    choices = lambda cls, key: sorted(typing.get_args(typing.get_type_hints(cls)[key]))  # noqa: E731
    assert choices(DataConfig, "source") == SOURCES.names()
    assert choices(AttackConfig, "name") == ATTACKS.names()
    assert choices(ModelConfig, "arch") == sorted(["auto", *MODELS.names()])


def test_partition_by_robustness_needs_the_score_stage_to_compute_it(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("partition:\n  by: both\n")
    with pytest.raises(SanitizerError, match=r"\[partition\]\.by 'both' ranks by Eq. 3's R.*\[score\]\.robustness: true"):
        load_params(path)
    path.write_text("partition:\n  by: both\nscore:\n  robustness: true\n")
    assert load_params(path)["score"]["robustness"] is True


@pytest.mark.parametrize(
    "section,values,message",
    [
        ("train", 5, r"\[train\] must be a mapping"),
        ("train", [1, 2], r"\[train\] must be a mapping"),
        ("train", {"lr": float("nan")}, r"\[train\]\.lr must be a finite number"),
        ("train", {"lr": float("inf")}, r"\[train\]\.lr must be a finite number"),
        ("train", {"lr": 0}, r"\[train\]\.lr must be in \(0.0, 10.0\]"),
        ("train", {"lr": -0.1}, r"\[train\]\.lr"),
        ("train", {"batch_size": 0}, r"\[train\]\.batch_size"),
        ("train", {"momentum": 1.0}, r"\[train\]\.momentum"),
        ("train", {"seed": -1}, r"\[train\]\.seed"),
        ("evaluate", {"batch_size": -5}, r"\[evaluate\]\.batch_size"),
        ("relabel", {"lr": 0.0}, r"\[relabel\]\.lr"),
        ("relabel", {"epochs": 0}, r"\[relabel\]\.epochs"),
        ("enhance", {"flood": 0.0}, r"\[enhance\]\.flood"),
        ("enhance", {"lr": "nan"}, r"\[enhance\]\.lr must be a number"),
        ("identify", {"threshold": float("-inf")}, r"\[identify\]\.threshold"),
        ("purify", {"eps": 0.0}, r"\[purify\]\.eps"),
        ("score", {"batch_size": 1.5}, r"\[score\]\.batch_size must be a whole number"),
        ("attack", {"patch_alphas": [0.5, 2.0]}, r"\[attack\]\.patch_alphas\[1\]"),
        ("attack", {"warp_s": 0}, r"\[attack\]\.warp_s"),
        ("attack", {"name": "badnet"}, r"\[attack\]\.name must be one of"),
        ("model", {"arch": "resnet50"}, r"\[model\]\.arch must be one of"),
        ("data", {"source": "imagenet"}, r"\[data\]\.source must be one of"),
    ],
)
def test_bad_values_are_named(section, values, message):
    with pytest.raises(SanitizerError, match=message):
        config(section, {section: values})


def test_exponent_without_a_dot_is_a_number():
    # YAML 1.1 (PyYAML) reads 1e-3 as the string "1e-3".
    import yaml

    params = yaml.safe_load("train:\n  lr: 1e-3\n  weight_decay: 5E-4\n")
    assert params["train"]["lr"] == "1e-3"
    cfg = config("train", params)
    assert cfg.lr == 0.001 and cfg.weight_decay == 0.0005


def test_params_file_that_is_not_a_mapping(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("- data\n- train\n")
    with pytest.raises(SanitizerError, match="must be a mapping of sections"):
        load_params(p)
    p.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(SanitizerError, match="not a text file"):
        load_params(p)
