"""seqjax.experiment.cli: every config field becomes a typed flag; --quick, presets, --resume; clear errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar, Literal, Optional

import pytest

from seqjax.experiment.cli import RUN_FIELDS, Args, build_parser, config_from_json, option, parse
from seqjax.experiment.run_dir import RunDir


@dataclasses.dataclass(frozen=True)
class Config:
    """A toy experiment config."""

    QUICK: ClassVar[dict] = {"steps": 5, "radii": (1.0,)}

    steps: int = option(1000, "training steps")
    learning_rate: float = option(1e-3, "Adam learning rate")
    name: str = option("elman", "model name")
    radii: tuple[float, ...] = option((0.5, 1.0), "spectral radii")
    models: tuple[str, ...] = option(("elman", "lstm"), "models")
    shape: tuple[int, int] = option((2, 3), "a fixed pair")
    clip: bool = option(True, "clip gradients")
    plot: bool = option(False, "draw figures")
    mode: Literal["fast", "slow"] = option("fast", "speed")
    limit: Optional[int] = option(None, "optional cap")
    seed: int = option(0, "base seed")

    def __post_init__(self):
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0; got {self.steps}")


def test_defaults_without_flags():
    args = parse(Config, [])
    assert args.config == Config()
    assert args.out is None and args.quick is False


def test_every_field_is_a_flag_listed_in_help():
    text = build_parser(Config).format_help()
    for f in dataclasses.fields(Config):
        assert "--" + f.name.replace("_", "-") in text, f.name
    for flag in ("--quick", "--out", "--resume", "--seed", "--no-clip", "--plot"):
        assert flag in text
    assert "training steps (default: 1000; --quick: 5)" in " ".join(text.split())
    assert "--quick sets: steps=5, radii=1.0" in text


def test_types_are_parsed():
    argv = [
        "--steps", "7", "--learning-rate", "0.5", "--name", "gru",
        "--radii", "0.5,1.2", "2", "--models", "lstm", "--shape", "4,5",
        "--no-clip", "--plot", "--mode", "slow", "--limit", "3", "--seed", "42",
    ]
    c = parse(Config, argv).config
    assert c == Config(
        steps=7, learning_rate=0.5, name="gru", radii=(0.5, 1.2, 2.0), models=("lstm",),
        shape=(4, 5), clip=False, plot=True, mode="slow", limit=3, seed=42,
    )
    assert isinstance(c.steps, int) and all(isinstance(r, float) for r in c.radii)
    assert parse(Config, ["--limit", "none"]).config.limit is None
    assert parse(Config, ["--radii", "-0.5", "1"]).config.radii == (-0.5, 1.0)


def test_quick_applies_overrides_and_explicit_flags_win(tmp_path):
    args = parse(Config, ["--quick", "--out", str(tmp_path)])
    assert args.quick and args.out == Path(tmp_path)
    assert args.config.steps == 5 and args.config.radii == (1.0,)
    assert args.config.learning_rate == 1e-3  # untouched by QUICK
    # Order on the command line does not matter: an explicit flag beats --quick.
    assert parse(Config, ["--steps", "9", "--quick"]).config.steps == 9


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--steps", "ten"], "expected int for --steps, got 'ten'"),
        (["--radii", "0.5,abc"], "argument --radii: expected float for --radii, got 'abc'"),
        (["--shape", "1,2,3"], "--shape takes exactly 2 values; got 3"),
        (["--mode", "medium"], "'medium' is not one of fast, slow"),
        (["--steps", "-1"], "invalid configuration: steps must be >= 0; got -1"),
        (["--stepz", "3"], "unrecognized arguments: --stepz"),
    ],
)
def test_bad_values_give_a_clear_usage_error(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        parse(Config, argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_config_classes_are_checked():
    @dataclasses.dataclass(frozen=True)
    class NoSeed:
        steps: int = 1

    @dataclasses.dataclass(frozen=True)
    class Clash:
        out: str = "x"
        seed: int = 0

    @dataclasses.dataclass(frozen=True)
    class BadQuick:
        QUICK: ClassVar[dict] = {"nope": 1}
        seed: int = 0

    with pytest.raises(TypeError, match="needs an int field `seed`"):
        build_parser(NoSeed)
    with pytest.raises(TypeError, match=r"may not have fields named \['out'\]"):
        build_parser(Clash)
    with pytest.raises(TypeError, match=r"QUICK names unknown fields \['nope'\]"):
        build_parser(BadQuick)
    with pytest.raises(TypeError, match="must be a dataclass type"):
        build_parser(dict)


# --- --resume ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Resumable:
    """A toy resumable config with presets."""

    PRESETS: ClassVar[dict] = {"none": {}, "small": {"steps": 50, "radii": (2.0,)}}
    QUICK: ClassVar[dict] = {"steps": 5}

    preset: Literal["none", "small"] = option("none", "a preset")
    steps: int = option(1000, "training steps")
    radii: tuple[float, ...] = option((0.5, 1.0), "spectral radii")
    seed: int = option(0, "base seed")
    checkpoint_every: int = option(100, "checkpoint interval")


def _saved_run(path, config, quick=False):
    run = RunDir.create("toy", out=path)
    run.write_config(config)
    run.write_run_info(experiment="toy", quick=quick)
    return path


def test_presets_sit_under_quick_and_flags():
    assert parse(Resumable, ["--preset", "small"]).config == Resumable(preset="small", steps=50, radii=(2.0,))
    assert parse(Resumable, ["--preset", "small", "--quick"]).config.steps == 5
    assert parse(Resumable, ["--preset", "small", "--quick", "--steps", "7"]).config.steps == 7
    assert parse(Resumable, ["--quick"]).config == Resumable(steps=5)

    @dataclasses.dataclass(frozen=True)
    class NoPresetField:
        PRESETS: ClassVar[dict] = {"a": {}}
        seed: int = 0

    @dataclasses.dataclass(frozen=True)
    class BadPreset:
        PRESETS: ClassVar[dict] = {"a": {"nope": 1}}
        preset: str = "a"
        seed: int = 0

    with pytest.raises(TypeError, match="has PRESETS but no field `preset`"):
        build_parser(NoPresetField)
    with pytest.raises(TypeError, match=r"PRESETS name unknown fields \['nope'\]"):
        build_parser(BadPreset)


def test_resume_takes_the_saved_config_and_its_quick(tmp_path):
    saved = Resumable(steps=5, radii=(3.0,), seed=4)
    run = _saved_run(tmp_path / "run", saved, quick=True)
    args = parse(Resumable, ["--resume", str(run)])
    assert args == Args(saved, None, True, run)
    # Flags that agree with the saved config are accepted; checkpoint_every may change.
    args = parse(Resumable, ["--resume", str(run), "--seed", "4", "--quick", "--checkpoint-every", "7"])
    assert args.config == dataclasses.replace(saved, checkpoint_every=7)
    assert RUN_FIELDS == ("checkpoint_every",)
    assert "--resume RUN_DIR" in " ".join(build_parser(Resumable).format_help().split())


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--steps", "6", "--radii", "3", "--seed", "9"],
         "the run was saved with a different config: --steps (saved 5, given 6); --seed (saved 4, given 9)"),
        # A preset given with --resume counts with the fields it sets.
        (["--preset", "small"], "--steps (saved 5, given 50); --radii (saved 3.0, given 2.0); "
                                "--preset (saved none, given small)"),
        (["--out", "elsewhere"], "--out and --resume exclude each other"),
    ],
)
def test_resume_refuses_flags_that_disagree(tmp_path, capsys, extra, message):
    run = _saved_run(tmp_path / "run", Resumable(steps=5, radii=(3.0,), seed=4))
    with pytest.raises(SystemExit) as exc:
        parse(Resumable, ["--resume", str(run), *extra])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_resume_of_something_that_is_not_a_run_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse(Resumable, ["--resume", str(tmp_path / "missing")])
    assert "is not a run directory: it has no config.json" in capsys.readouterr().err
    (tmp_path / "config.json").write_text('{"steps": 5, "other": 1}')
    with pytest.raises(SystemExit):
        parse(Resumable, ["--resume", str(tmp_path)])
    err = capsys.readouterr().err
    assert "config.json does not match Resumable: missing fields ['preset', 'radii', 'seed', " in err
    assert "unknown fields ['other']" in err


def test_config_from_json_turns_lists_back_into_tuples():
    data = {"preset": "none", "steps": 3, "radii": [0.5], "seed": 1, "checkpoint_every": 2}
    assert config_from_json(Resumable, data) == Resumable(steps=3, radii=(0.5,), seed=1, checkpoint_every=2)
    with pytest.raises(ValueError, match=r"missing fields \['checkpoint_every'\]"):
        config_from_json(Resumable, {k: v for k, v in data.items() if k != "checkpoint_every"})
