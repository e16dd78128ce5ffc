"""How ``ablate --help`` reads: typer's help patched to write what click writes.

Typer writes ``{file}`` in a usage line, a ``<path>`` type after an argument's name and
``<bool>`` / ``<list[str]>`` placeholders after options, and reads help texts as rich markup (so a
``[model]`` in a help text would vanish). :class:`HelpGroup`, the app's class, hands out every
command with :func:`plain_help` applied: plain text, click's metavars, and the options of a
command that groups them (``ablate run``) under their groups' titles.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption


class PlainArgument(TyperArgument):
    """An argument in help as click writes it: ``FILE``, ``[NAME]...`` (typer writes ``{file}``
    in the usage line and a ``<path>`` type after the name)."""

    def _usage_display_name(self) -> str:
        if self.metavar is not None:  # written out in full by the command, e.g. "[EXPERIMENT]..."
            return self.metavar
        name = (self.name or "arg").upper()
        return (name if self.required else f"[{name}]") + ("..." if self.nargs != 1 else "")

    def display_type_rich(self, ctx: Any) -> str | None:
        return None


class GroupedCommand(TyperCommand):
    """A command whose help lists its options in the groups they declare (``rich_help_panel``),
    in the order the groups first appear, as rich help would, in click's plain layout; options
    without a group stay under "Options"."""

    def format_options(self, ctx: Any, formatter: Any) -> None:
        args, groups = [], {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                args.append(record)
            elif param.param_type_name == "option":
                groups.setdefault(getattr(param, "rich_help_panel", None) or "Options", []).append(record)
        if args:
            with formatter.section("Arguments"):
                formatter.write_dl(args)
        for title, records in groups.items():
            with formatter.section(title):
                formatter.write_dl(records)


def plain_help(command: Any) -> None:
    """Help without rich markup (a ``[model]`` in a help text is text, not a style tag, so no
    text can vanish from help) and without typer's ``<bool>`` / ``<list[str]>`` placeholders:
    flags show no value, other options an upper-case metavar (TEXT, INTEGER, PATH, ...)."""
    command.rich_markup_mode = None
    if isinstance(command, TyperGroup) and not isinstance(command, HelpGroup):
        command.__class__ = HelpGroup  # sub-apps (ablate export ...) get the same help
    if type(command) is TyperCommand:
        command.__class__ = GroupedCommand
    if command.help:  # "\\[gpu]", written for rich markup, reads "[gpu]" here too
        command.help = command.help.replace("\\[", "[")
    for p in command.params:
        if getattr(p, "help", None):
            p.help = p.help.replace("\\[", "[")
        if type(p) is TyperArgument:
            p.__class__ = PlainArgument
        elif isinstance(p, TyperOption) and p.metavar is None and not p.is_flag:
            label = p.display_type(None).strip("<>")
            label = label[5:-1] if label.startswith("list[") else label
            word = label.split()[0] if label else "value"
            p.metavar = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "path": "PATH"}.get(word, word.upper())


class HelpGroup(TyperGroup):
    """The ablate app: every command it hands out gets :func:`plain_help`."""

    def get_params(self, ctx: Any) -> list[Any]:
        plain_help(self)
        return super().get_params(ctx)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            plain_help(command)
        return command
