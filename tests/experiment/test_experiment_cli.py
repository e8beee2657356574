"""seqjax.experiment.cli: every config field becomes a typed flag; --quick; clear errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar, Literal, Optional

import pytest

from seqjax.experiment.cli import build_parser, option, parse


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
    for flag in ("--quick", "--out", "--seed", "--no-clip", "--plot"):
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
