"""Turn a frozen dataclass config into a command-line interface, with ``--quick`` and ``--resume``.

Every field of the config becomes a flag named after it (``train_steps`` -> ``--train-steps``),
typed from its annotation, so an experiment's knobs are declared once, in the dataclass, and the
CLI, ``--help``, ``config.json`` and the tests all read the same declaration. Supported field
types: ``int``, ``float``, ``str``, ``bool`` (``--flag`` / ``--no-flag``), ``Literal[...]``
(choices), ``X | None`` (the word ``none`` gives ``None``) and tuples (``tuple[X, ...]`` or a
fixed ``tuple[X, Y]``) given as a comma list, space-separated values, or both
(``--radii 0.5,1.0 2.0``).

Conventions a config class follows:

* it is a frozen dataclass with a default for every field, and an ``int`` field ``seed``
  (randomness is explicit: ``--seed`` is that field's flag);
* a field's help text is ``metadata["help"]``, most simply written with :func:`option`;
* ``QUICK: ClassVar[dict]`` lists the overrides that ``--quick`` applies (a run fast enough for
  the tests); explicit flags win over them;
* optionally ``PRESETS: ClassVar[dict[str, dict]]`` with a field ``preset``: named sets of
  overrides, under ``--quick`` and explicit flags (flags > ``--quick`` > preset > defaults);
* a field ``checkpoint_every`` (how often a resumable run saves) is one of :data:`RUN_FIELDS`:
  fields that say how a run is carried out, not what it computes, which a resumed run may change;
* validation lives in ``__post_init__`` and raises ``ValueError``; the CLI reports it as a usage
  error naming the flag's value, instead of a traceback.

Three flags are added to the fields: ``--quick``, ``--out`` (the run directory; default
``runs/<name>/<UTC timestamp>/``, see :mod:`seqjax.experiment.run_dir`) and ``--resume RUN_DIR``
(continue that run: its saved ``config.json`` is the config; a flag given with it must agree with
the saved value, except :data:`RUN_FIELDS`, or the CLI refuses, naming every field that differs).

Example::

    >>> import dataclasses, typing
    >>> from seqjax.experiment.cli import option, parse
    >>> @dataclasses.dataclass(frozen=True)
    ... class Config:
    ...     QUICK: typing.ClassVar[dict] = {"steps": 10}
    ...     steps: int = option(1000, "training steps")
    ...     radii: tuple[float, ...] = option((0.5, 1.0), "spectral radii to sweep")
    ...     seed: int = option(0, "base random seed")
    >>> args = parse(Config, ["--quick", "--radii", "0.5,2"])
    >>> args.config
    Config(steps=10, radii=(0.5, 2.0), seed=0)
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Callable, Literal, NamedTuple, Sequence

from seqjax.experiment.run_dir import RunDir

# Flags every experiment has besides its fields; a field may not take these names.
RESERVED = ("quick", "out", "resume", "help")
# Config fields that say how a run is carried out, not what it computes: a resumed run may
# change them (and config.json then records the new value).
RUN_FIELDS = ("checkpoint_every",)


def option(default: Any, help: str) -> Any:
    """A dataclass field with a default and the help text shown by ``--help``."""
    return dataclasses.field(default=default, metadata={"help": help})


class Args(NamedTuple):
    """What :func:`parse` returns: the config, the run directory asked for (``--out``), whether
    the run is (or, resumed, was started as) a ``--quick`` one, and the run to resume."""

    config: Any
    out: Path | None
    quick: bool
    resume: Path | None = None


def parse(
    config_cls: type,
    argv: Sequence[str] | None = None,
    *,
    prog: str | None = None,
    description: str | None = None,
) -> Args:
    """Parse ``argv`` (default ``sys.argv[1:]``) into an instance of ``config_cls``.

    Precedence: explicit flags > ``--quick`` overrides > the chosen preset > the dataclass
    defaults. With ``--resume RUN_DIR`` the config is the one in ``RUN_DIR/config.json``; the
    fields set by flags, ``--quick`` or ``--preset`` must equal the saved values (except
    :data:`RUN_FIELDS`, which take the new value). A bad value, a config that fails its
    ``__post_init__`` validation, or a resume whose config differs exits with status 2 and a
    message naming the flags, as argparse does for its own errors.
    """
    parser = build_parser(config_cls, prog=prog, description=description)
    ns = vars(parser.parse_args(argv))
    quick, out, resume = ns.pop("quick"), ns.pop("out"), ns.pop("resume")
    # Fields use default=SUPPRESS, so ``ns`` now holds exactly the flags the user gave; that is
    # what lets explicit flags override --quick (and presets) without comparing against defaults.
    quick_overrides = _quick_overrides(config_cls) if quick else {}
    presets = _presets(config_cls)
    preset = dict(presets[ns.get("preset", _default(_field(config_cls, "preset")))]) if presets else {}
    if resume is None:
        try:
            config = config_cls(**(preset | quick_overrides | ns))
        except (TypeError, ValueError) as err:
            parser.error(f"invalid configuration: {err}")
        return Args(config, None if out is None else Path(out), quick)

    if out is not None:
        parser.error("--out and --resume exclude each other: a resumed run continues in its own directory.")
    # What the command line sets: a preset counts only when --preset is given.
    given = (preset if "preset" in ns else {}) | quick_overrides | ns
    try:
        run = RunDir.open(resume)
        saved = config_from_json(config_cls, run.read_config())
        saved_quick = bool(run.read_run_info().get("quick", False))
    except (OSError, TypeError, ValueError) as err:
        parser.error(f"--resume {resume}: {err}")
    differ = [
        f"--{name.replace('_', '-')} (saved {_show(getattr(saved, name))}, given {_show(value)})"
        for name, value in given.items()
        if name not in RUN_FIELDS and value != getattr(saved, name)
    ]
    if differ:
        parser.error(
            f"--resume {resume}: the run was saved with a different config: {'; '.join(differ)}. "
            "Resume without those flags to continue the run as it was started, or start a new run."
        )
    try:
        config = dataclasses.replace(saved, **{k: v for k, v in given.items() if k in RUN_FIELDS})
    except (TypeError, ValueError) as err:
        parser.error(f"invalid configuration: {err}")
    return Args(config, None, saved_quick, Path(resume))


def config_from_json(config_cls: type, data: dict[str, Any]) -> Any:
    """A ``config_cls`` from the contents of a ``config.json`` (lists become tuples again).

    ``ValueError`` naming the fields if ``data`` lacks some or has others (a config written by
    another experiment, or another version of this one), or if the values fail validation.
    """
    names = [f.name for f in dataclasses.fields(config_cls)]
    missing = [n for n in names if n not in data]
    unknown = [k for k in data if k not in names]
    if missing or unknown:
        raise ValueError(
            f"config.json does not match {config_cls.__name__}: "
            + "; ".join(
                part for part in (
                    f"missing fields {missing}" if missing else "",
                    f"unknown fields {unknown}" if unknown else "",
                ) if part
            )
            + " (a run of another experiment, or of another version of this one?)"
        )
    return config_cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def build_parser(
    config_cls: type, *, prog: str | None = None, description: str | None = None
) -> argparse.ArgumentParser:
    """The :class:`argparse.ArgumentParser` for ``config_cls`` (see the module docstring)."""
    if not (dataclasses.is_dataclass(config_cls) and isinstance(config_cls, type)):
        raise TypeError(f"config_cls must be a dataclass type; got {config_cls!r}.")
    fields = dataclasses.fields(config_cls)
    names = {f.name for f in fields}
    clash = names & set(RESERVED)
    if clash:
        raise TypeError(f"{config_cls.__name__} may not have fields named {sorted(clash)}.")
    if "seed" not in names:
        raise TypeError(f"{config_cls.__name__} needs an int field `seed` (randomness is explicit).")
    quick = _quick_overrides(config_cls)
    unknown = set(quick) - names
    if unknown:
        raise TypeError(f"{config_cls.__name__}.QUICK names unknown fields {sorted(unknown)}.")
    presets = _presets(config_cls)
    if presets:
        if "preset" not in names:
            raise TypeError(f"{config_cls.__name__} has PRESETS but no field `preset` to choose one.")
        unknown = {k for overrides in presets.values() for k in overrides} - names
        if unknown:
            raise TypeError(f"{config_cls.__name__}.PRESETS name unknown fields {sorted(unknown)}.")

    if description is None:
        description = (config_cls.__doc__ or "").strip().split("\n\n")[0] or None
    epilog = None
    if quick:
        epilog = "--quick sets: " + ", ".join(f"{k}={_show(v)}" for k, v in quick.items())
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    hints = typing.get_type_hints(config_cls)
    for f in fields:
        _add_field(parser, f, hints[f.name], quick)
    parser.add_argument(
        "--quick", action="store_true", help="small, fast run (used by the tests); see below"
    )
    parser.add_argument(
        "--out", default=None, metavar="DIR",
        help="run directory (default: runs/<name>/<UTC timestamp>/)",
    )
    parser.add_argument(
        "--resume", default=None, metavar="RUN_DIR",
        help="continue the run in RUN_DIR from its latest checkpoint, with its saved config "
        "(flags given with it must agree with that config, except "
        + ", ".join("--" + f.replace("_", "-") for f in RUN_FIELDS) + ")",
    )
    return parser


def _quick_overrides(config_cls: type) -> dict[str, Any]:
    return dict(getattr(config_cls, "QUICK", {}) or {})


def _presets(config_cls: type) -> dict[str, dict[str, Any]]:
    return dict(getattr(config_cls, "PRESETS", {}) or {})


def _field(config_cls: type, name: str) -> dataclasses.Field:
    return next(f for f in dataclasses.fields(config_cls) if f.name == name)


def _add_field(parser, f: dataclasses.Field, tp: Any, quick: dict) -> None:
    flag = "--" + f.name.replace("_", "-")
    default = _default(f)
    text = f.metadata.get("help", "")
    text = f"{text} (default: {_show(default)}" + (
        f"; --quick: {_show(quick[f.name])})" if f.name in quick else ")"
    )
    # argparse %-formats help strings: escape a literal % (e.g. "10% held out").
    text = text.replace("%", "%%")
    # SUPPRESS: only flags actually given appear in the namespace (see parse()).
    common = dict(dest=f.name, default=argparse.SUPPRESS, help=text)
    if tp is bool:
        parser.add_argument(flag, action=argparse.BooleanOptionalAction, **common)
        return
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is tuple:
        item_types = args[:1] if len(args) == 2 and args[1] is Ellipsis else args
        fixed = None if len(args) == 2 and args[1] is Ellipsis else len(args)
        parser.add_argument(
            flag, nargs="+", type=str, metavar=_metavar(item_types[0]) + ",...",
            action=_tuple_action(f.name, item_types, fixed), **common,
        )
        return
    parser.add_argument(flag, type=_converter(f.name, tp), metavar=_metavar(tp), **common)


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise TypeError(f"config field {f.name!r} needs a default so that every flag is optional.")


def _converter(name: str, tp: Any) -> Callable[[str], Any]:
    """A function str -> value of type ``tp`` that raises ``ArgumentTypeError`` with a clear message."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        inner = _converter(name, rest[0] if len(rest) == 1 else typing.Union[tuple(rest)])
        return lambda s: None if s.strip().lower() == "none" else inner(s)
    if origin is Literal:
        allowed = args

        def choice(s: str) -> Any:
            for a in allowed:
                if str(a) == s:
                    return a
            raise argparse.ArgumentTypeError(
                f"{s!r} is not one of {', '.join(map(str, allowed))}"
            )

        return choice
    if tp is bool:
        return _parse_bool
    if tp in (int, float, str):

        def convert(s: str) -> Any:
            try:
                return tp(s)
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"expected {tp.__name__} for --{name.replace('_', '-')}, got {s!r}"
                ) from None

        return convert
    raise TypeError(f"config field {name!r} has unsupported type {tp!r} for the CLI.")


def _parse_bool(s: str) -> bool:
    low = s.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false), got {s!r}")


def _tuple_action(name: str, item_types: tuple, fixed: int | None) -> type[argparse.Action]:
    converters = [_converter(name, t) for t in item_types]

    class TupleAction(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            # Accept "a,b c" as well as "a b c" and "a,b,c"; an empty string gives ().
            items = [v.strip() for value in values for v in value.split(",") if v.strip()]
            if fixed is not None and len(items) != fixed:
                parser.error(f"{option_string} takes exactly {fixed} values; got {len(items)}: {items}")
            try:
                if fixed is None:
                    result = tuple(converters[0](v) for v in items)
                else:
                    result = tuple(c(v) for c, v in zip(converters, items))
            except argparse.ArgumentTypeError as err:
                parser.error(f"argument {option_string}: {err}")
            setattr(namespace, self.dest, result)

    return TupleAction


def _metavar(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return "{" + ",".join(map(str, args)) + "}"
    return getattr(tp, "__name__", "VALUE").upper()


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value)) if value else "(empty)"
    return str(value)
