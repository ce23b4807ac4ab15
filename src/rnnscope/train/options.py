"""Every config field as a `--section.key` command-line option, for `train --help` and friends.

The options only collect what the user typed (default=SUPPRESS); load_config then applies them
over the TOML file, with its own key and type checks. An unknown `--section.key` is refused with
the closest valid one.
"""

from __future__ import annotations

import argparse
import difflib
import typing

from rnnscope.train.config import all_keys, closest_hint, iter_fields


class ConfigArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose unknown `--options` get a "did you mean" with the closest key."""

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        for token in extras:
            if token.startswith("--"):
                name = token[2:].partition("=")[0]
                own = [o for a in self._actions for o in a.option_strings if o.startswith("--")]
                match = difflib.get_close_matches(f"--{name}", own, n=1, cutoff=0.6)
                if name in all_keys():  # a real config key, but not one this command takes
                    self.error(f"--{name} is a train option, not one of {self.prog}'s; "
                               f"{self._config_options_taken(own)}see {self.prog} --help")
                if "." in name:  # a config key: the config's own hint knows its aliases
                    hint = closest_hint(name).replace("did you mean ", "did you mean --")
                else:
                    hint = f"did you mean {match[0]}?" if match else f"see {self.prog} --help"
                self.error(f"unknown option {token}; {hint}")
        return namespace, extras

    @staticmethod
    def _config_options_taken(own: list[str]) -> str:
        """'it takes --data.csv; ' or 'it takes the [model] and [data] options; ' or ''."""
        keys = [o for o in own if "." in o]
        if not keys:
            return ""
        if len(keys) <= 3:
            return f"of those it takes {', '.join(keys)}; "
        sections = dict.fromkeys(k[2:].split(".")[0] for k in keys)
        return f"it takes the {', '.join(f'[{s}]' for s in sections)} options; "

    def error(self, message: str):
        """One line, no usage block: the message already says what to do."""
        see = "" if "--help" in message else f" (see {self.prog} --help)"
        self.exit(2, f"{self.prog}: error: {message}{see}\n")


def use_config_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give a subcommand's parser the "did you mean" behaviour of ConfigArgumentParser."""
    parser.__class__ = ConfigArgumentParser  # a subclass that adds no state: safe to swap in
    return parser


def _shown(value) -> str:
    if isinstance(value, list):
        return ",".join(value) if value else "[]"
    if isinstance(value, str):
        return repr(value) if value == "" else value
    return str(value).lower() if isinstance(value, bool) else str(value)


def add_config_options(parser: argparse.ArgumentParser, sections: tuple[str, ...] | None = None) -> None:
    """Add `--section.key` for every field (of the given sections), grouped per section."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for section, name, kind, default, help, choices in iter_fields():
        if sections is not None and section not in sections:
            continue
        if section not in groups:
            groups[section] = parser.add_argument_group(f"[{section}] options")
        is_list = typing.get_origin(kind) is list
        metavar = "{" + ",".join(choices) + "}" if choices else getattr(kind, "__name__", "LIST").upper()
        groups[section].add_argument(
            f"--{section}.{name}", dest=f"{section}.{name}", default=argparse.SUPPRESS,
            nargs="+" if is_list else None, metavar="NAME" if is_list else metavar,
            help=f"{help} (default: {_shown(default)})".replace("%", "%%"),
        )


def overrides_from_args(args: argparse.Namespace) -> list[str]:
    """The `--section.key value` tokens the user gave, for load_config (lists joined by commas)."""
    tokens = []
    for key in all_keys():
        if hasattr(args, key):
            value = getattr(args, key)
            tokens += [f"--{key}", ",".join(value) if isinstance(value, list) else value]
    return tokens
