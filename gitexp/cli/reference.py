"""The `git exp` command reference, built from the argparse parsers, for docs/cli.md and the man page.

Both files are hand-written prose around generated blocks: the text between a
`BEGIN generated: NAME` marker and the next `END generated` marker (an HTML comment in Markdown,
a roff comment in the man page) is the synopsis and option list of command NAME ("git exp ls",
"git exp" for the top-level options, "synopsis" for every command's usage, in the order the file
documents them). Only those blocks are rewritten, so the prose stays as written and the option
lists cannot drift from the parsers. `python -m gitexp.cli.reference` rewrites them; `--check`
only says whether they are current, as tests/test_docs.py does.

The text is made from the parsers' actions, never from argparse's formatted help, which wraps at
the terminal's width: the same parsers give the same files on every machine.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from gitexp.errors import GitexpError

REGENERATE = "python -m gitexp.cli.reference"
PROG = "git exp"
WIDTH = 100  # synopsis lines of docs/cli.md wrap here, so that they read without scrolling
# Where the generator looks for the files: the docs/ folder of the source tree this module is in.
DOCS = Path(__file__).resolve().parents[2] / "docs"
FILES = ("cli.md", "git-exp.1")
SYNOPSIS = "synopsis"


class ReferenceDocsError(GitexpError):
    """A reference file whose generated blocks cannot be written: a marker missing, unknown or unclosed."""


@dataclass(frozen=True)
class Entry:
    """One option or positional argument of a command, as the option lists show it."""

    flags: tuple[str, ...]  # the option strings in the order they were registered; () for a positional
    value: str  # what follows the option ("NAME", "table|csv|json|md"); a positional's name
    literal: bool  # the value is a word to type as is (a positional's only choice), not a placeholder
    help: str


@dataclass(frozen=True)
class Command:
    """A command or subcommand: its words after `git exp`, usage, arguments, options and subcommands."""

    words: tuple[str, ...]  # ("hooks", "install"); () for `git exp` itself
    summary: str
    tokens: tuple[str, ...]  # the usage after the words: "[--name NAME]", "[RUN...]"
    entries: tuple[Entry, ...]
    subcommands: tuple[Command, ...]

    @property
    def name(self) -> str:
        return " ".join((PROG, *self.words))

    def usages(self) -> list[tuple[str, tuple[str, ...]]]:
        """(command, usage tokens) of each way to call it: itself, or each of its subcommands."""
        if not self.subcommands:
            return [(self.name, self.tokens)]
        return [usage for sub in self.subcommands for usage in sub.usages()]


# -- from the parsers -----------------------------------------------------------------------------


def command_tree(parser: argparse.ArgumentParser | None = None) -> Command:
    """`git exp` with every command under it, from *parser* (default: the CLI's own)."""
    if parser is None:
        from gitexp.cli.main import build_parser

        parser = build_parser()
    return _command((), parser, parser.description or "")


def _command(words: tuple[str, ...], parser: argparse.ArgumentParser, summary: str) -> Command:
    groups = {id(action): group for group in parser._mutually_exclusive_groups for action in group._group_actions}
    tokens: list[str] = []
    entries: list[Entry] = []
    subcommands: list[Command] = []
    shown_groups: set[int] = set()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue  # every command has -h; the prose says so once
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            subcommands += [_command((*words, name), sub, helps.get(name) or sub.description or "")
                            for name, sub in action.choices.items()]
            tokens.append(f"{action.metavar or 'COMMAND'} [ARGS...]")
            continue
        entries.append(_entry(words, action, parser.prog))
        group = groups.get(id(action))
        if group is None:
            tokens.append(_usage(action))
        elif id(group) not in shown_groups:
            shown_groups.add(id(group))
            either = " | ".join(_usage(member, alone=True) for member in group._group_actions)
            tokens.append(f"({either})" if group.required else f"[{either}]")
    return Command(words, summary, tuple(tokens), tuple(entries), tuple(subcommands))


def _name(action: argparse.Action) -> str:
    """The placeholder of one value: the metavar, the choices, or the destination in capitals."""
    if isinstance(action.metavar, str):
        return action.metavar
    if action.choices is not None and not isinstance(action.choices, dict):
        return "|".join(str(choice) for choice in action.choices)
    return action.dest.upper()


def _value(action: argparse.Action) -> str:
    """What follows an option in the usage ("KEY=VALUE", "PARAM METRIC", "FIELD..."), or a positional."""
    nargs = action.nargs
    if nargs == 0:
        return ""
    if isinstance(action.metavar, tuple):
        return " ".join(action.metavar)
    name = _name(action)
    if not action.option_strings and ("[" in name or "..." in name):
        return name  # a metavar written as its own usage, such as "[REMOTE] [RUN...]"
    if nargs is None:
        return name
    if nargs == argparse.OPTIONAL:
        return f"[{name}]"
    if nargs == argparse.REMAINDER and isinstance(action.metavar, str):
        return f"{name} [ARGS...]"  # "-- COMMAND [ARGS...]": the metavar names what starts the rest
    if nargs in (argparse.ZERO_OR_MORE, argparse.REMAINDER):
        return f"[{name}...]"
    if nargs == argparse.ONE_OR_MORE:
        return f"{name}..."
    if isinstance(nargs, int):
        return " ".join([name] * nargs)
    raise ReferenceDocsError(f"the reference cannot show nargs={nargs!r} of {action.dest}: "
                             f"teach gitexp/cli/reference.py's _value() to write it")


def _usage(action: argparse.Action, alone: bool = False) -> str:
    """The action as the synopsis shows it: "[--name NAME]", "[-p KEY=VALUE]...", "-o FILE", "RUN"."""
    if not action.option_strings:
        return _value(action)
    value = _value(action)
    text = f"{action.option_strings[0]} {value}" if value else action.option_strings[0]
    if alone:
        return text
    text = text if action.required else f"[{text}]"
    return f"{text}..." if isinstance(action, argparse._AppendAction) else text


def _entry(words: tuple[str, ...], action: argparse.Action, prog: str) -> Entry:
    where = " ".join((PROG, *words))
    what = "/".join(action.option_strings) or action.metavar or action.dest
    if not action.help or action.help == argparse.SUPPRESS:
        raise ReferenceDocsError(f"{what} of `{where}` has no help text, so the reference would list it "
                                 f"unexplained: give its add_argument() a help= string")
    text = action.help
    if "%" in text:  # argparse's help formatting: "%(default)s" and the like
        params = {k: v for k, v in vars(action).items() if v is not argparse.SUPPRESS}
        if params.get("choices") is not None:
            params["choices"] = ", ".join(str(c) for c in params["choices"])
        text = text % dict(params, prog=prog)
    default = action.default
    if (action.nargs != 0 and default not in (None, False, True, "", argparse.SUPPRESS) and default != []
            and "default" not in text):
        text = f"{text} (default: {default})"
    if action.option_strings:
        return Entry(tuple(action.option_strings), _value(action), False, text)
    return Entry((), _name(action), action.choices is not None and action.metavar is None, text)


# -- Markdown -------------------------------------------------------------------------------------


_MD_SPECIAL = re.compile(r"([\\*])|<(?=[A-Za-z/!?])")


def _md(text: str) -> str:
    """Help text as Markdown: its `code` spans kept, characters that would turn into markup escaped."""
    return _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), text)


def _wrap(prefix: str, tokens: Sequence[str]) -> list[str]:
    """The usage as lines of at most WIDTH characters (a longer token alone on its line), continued
    under the first token; a token such as "[--format table|csv]" is never split."""
    lines: list[str] = []
    line = prefix
    indent = " " * (len(prefix) + 1)
    for token in tokens:
        if len(line) + 1 + len(token) > WIDTH and line != prefix:
            lines.append(line)
            line = indent + token
        else:
            line = f"{line} {token}"
    lines.append(line)
    return lines


def _md_entry(entry: Entry) -> str:
    if not entry.flags:
        return f"`{entry.value}`: {_md(entry.help)}"
    first = f"{entry.flags[0]} {entry.value}".strip()
    names = ", ".join(f"`{flag}`" for flag in (first, *entry.flags[1:]))
    return f"{names}: {_md(entry.help)}"


def _md_entries(command: Command, depth: int) -> list[str]:
    indent = "  " * depth
    lines = [f"{indent}- {_md_entry(entry)}" for entry in command.entries]
    for sub in command.subcommands:
        lines.append(f"{indent}- `{sub.words[-1]}`: {_md(sub.summary)}")
        lines += _md_entries(sub, depth + 1)
    return lines


def markdown_block(command: Command) -> str:
    """The synopsis of *command* as a code block, then its arguments and options as a list."""
    usages = [(command.name, command.tokens)] if not command.words else command.usages()
    lines = ["```", *(line for name, tokens in usages for line in _wrap(name, tokens)), "```"]
    entries = _md_entries(command if command.words else replace(command, subcommands=()), 0)
    return "\n".join([*lines, *(["", *entries] if entries else [])]) + "\n"


# -- roff -----------------------------------------------------------------------------------------


_CODE_SPAN = re.compile(r"`([^`]+)`")
_CODE_WORD = re.compile(r"(?<!\S)(?=\S*[./_=|$])")  # a word such as -metrics.acc,duration or KEY=VALUE


def _escape(text: str) -> str:
    """*text* as roff prints it literally: backslashes and hyphens (else typeset as dashes) escaped."""
    return text.replace("\\", "\\e").replace("-", "\\-")


def _roff(text: str) -> str:
    """Help text as a roff text line: escaped, `code` spans in bold, and words that are code (with a
    dot, slash, underscore...) never hyphenated when the line is filled."""
    escaped = _CODE_WORD.sub(r"\\%", _CODE_SPAN.sub(r"\\fB\1\\fR", _escape(text)))
    return "\\&" + escaped if escaped.startswith((".", "'")) else escaped


def _roff_tag(entry: Entry) -> str:
    if not entry.flags:
        return f"\\f{'B' if entry.literal else 'I'}\\%{_escape(entry.value)}\\fR"
    value = f" \\fI\\%{_escape(entry.value)}\\fR" if entry.value else ""
    return ", ".join([f"\\fB{_escape(entry.flags[0])}\\fR{value}", *(f"\\fB{_escape(f)}\\fR" for f in entry.flags[1:])])


def _roff_entries(command: Command) -> list[str]:
    lines = [line for entry in command.entries for line in (".TP", _roff_tag(entry), _roff(entry.help))]
    for sub in command.subcommands:
        lines += [".TP", f"\\fB{_escape(sub.words[-1])}\\fR", _roff(sub.summary)]
        inner = _roff_entries(sub)
        lines += [".RS", *inner, ".RE"] if inner else []
    return lines


def _roff_usage(name: str, tokens: Sequence[str]) -> str:
    # A token ("[--format table|json]") is never hyphenated, nor broken at its inner spaces.
    words = "".join(" \\%" + _escape(token).replace(" ", "\\ ") for token in tokens)
    return f"\\fB{_escape(name)}\\fR{words}"


def roff_block(command: Command) -> str:
    """The arguments and options of *command* (and of its subcommands) as a roff tagged list."""
    lines = _roff_entries(command) if command.words else _roff_entries(replace(command, subcommands=()))
    return "\n".join(lines) + "\n" if lines else ""


def roff_synopsis(tree: Command, order: Sequence[str]) -> str:
    """Every way to call `git exp`, the commands in *order* (their names, "git exp ls"), each usage
    left-aligned with its continuation lines indented under it."""
    commands = {command.name: command for command in tree.subcommands}
    usages = [(tree.name, tree.tokens)] + [usage for name in order for usage in commands[name].usages()]
    lines = [".na", ".in +4n"]
    for name, tokens in usages:
        lines += [".ti -4n", _roff_usage(name, tokens), ".br"]
    return "\n".join([*lines[:-1], ".in -4n", ".ad"]) + "\n"


def markdown_synopsis(tree: Command, order: Sequence[str]) -> str:
    commands = {command.name: command for command in tree.subcommands}
    usages = [usage for name in order for usage in commands[name].usages()]
    return "\n".join(["```", *(line for name, tokens in usages for line in _wrap(name, tokens)), "```"]) + "\n"


# -- the files ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Style:
    """How one kind of file marks its generated blocks and writes them."""

    begin: str  # the begin marker, with {} for the block's name
    end: str
    block: Callable[[Command], str]
    synopsis: Callable[[Command, Sequence[str]], str]


MARKDOWN = Style("<!-- BEGIN generated: {} -->", "<!-- END generated -->", markdown_block, markdown_synopsis)
ROFF = Style('.\\" BEGIN generated: {}', '.\\" END generated', roff_block, roff_synopsis)


def style_of(path: Path) -> Style:
    return MARKDOWN if path.suffix == ".md" else ROFF


def blocks(text: str, style: Style, where: str) -> list[tuple[str, int, int]]:
    """(name, first line, end marker's line) of each generated block of *text*, in order."""
    head, tail = style.begin.split("{}")
    lines = text.split("\n")
    found: list[tuple[str, int, int]] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith(head) and line.endswith(tail):
            name = line[len(head): len(line) - len(tail)]
            end = next((i for i in range(index + 1, len(lines)) if lines[i] == style.end or
                        lines[i].startswith(head)), None)
            if end is None or lines[end] != style.end:
                raise ReferenceDocsError(f"{where}:{index + 1}: the generated block {name!r} has no "
                                         f"`{style.end}` line before the next block or the end of the file; add it")
            found.append((name, index + 1, end))
            index = end
        elif line == style.end:
            raise ReferenceDocsError(f"{where}:{index + 1}: `{style.end}` without a `{style.begin.format('NAME')}` "
                                     f"line before it; remove it or add the begin marker")
        index += 1
    return found


def render(text: str, style: Style, tree: Command, where: str) -> str:
    """*text* with every generated block written anew from *tree*."""
    commands = {command.name: command for command in [tree, *tree.subcommands]}
    found = blocks(text, style, where)
    names = [name for name, _, _ in found]
    unknown = sorted(set(names) - set(commands) - {SYNOPSIS})
    if unknown:
        raise ReferenceDocsError(f"{where}: generated block(s) for {', '.join(map(repr, unknown))}, which "
                                 f"{PROG} does not have; blocks are named {SYNOPSIS!r}, {PROG!r} or "
                                 f"'{PROG} COMMAND'. Rename or remove them, then run `{REGENERATE}`")
    twice = sorted({name for name in names if names.count(name) > 1})
    missing = [name for name in commands if name not in names]
    if twice or missing:
        problems = ([f"no block for {', '.join(missing)}"] if missing else []) + (
            [f"two blocks for {', '.join(twice)}"] if twice else [])
        example = style.begin.format(missing[0] if missing else "git exp COMMAND")
        raise ReferenceDocsError(f"{where}: {'; '.join(problems)}. Each command needs exactly one: add the "
                                 f"lines `{example}` and `{style.end}` where its options belong, then run "
                                 f"`{REGENERATE}`")
    order = [name for name in names if name not in (SYNOPSIS, tree.name)]
    lines = text.split("\n")
    out: list[str] = []
    done = 0
    for name, first, end in found:
        body = style.synopsis(tree, order) if name == SYNOPSIS else style.block(commands[name])
        out += lines[done:first]
        out += body.split("\n")[:-1]
        done = end
    out += lines[done:]
    return "\n".join(out)


def regenerate(docs: Path = DOCS, tree: Command | None = None) -> dict[Path, str]:
    """{path: the text it should have} for docs/cli.md and docs/git-exp.1 under *docs*."""
    tree = tree or command_tree()
    out = {}
    for name in FILES:
        path = docs / name
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ReferenceDocsError(f"{path} does not exist: the reference is written into the docs/ folder of "
                                     f"the gitexp sources; run `{REGENERATE}` from a checkout of them") from None
        out[path] = render(text, style_of(path), tree, str(path))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=REGENERATE, description="Rewrite the generated blocks of docs/cli.md "
                                     "and docs/git-exp.1 from the parsers of `git exp`.")
    parser.add_argument("--check", action="store_true", help="only say which files are out of date (exit 1)")
    parser.add_argument("--docs", type=Path, default=DOCS, help=f"the docs folder (default: {DOCS})")
    args = parser.parse_args(argv)
    try:
        wanted = regenerate(args.docs)
    except GitexpError as exc:
        print(f"{REGENERATE}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    stale = [path for path, text in wanted.items() if path.read_text(encoding="utf-8") != text]
    for path in stale:
        if args.check:
            print(f"{path} is out of date with the parsers: run `{REGENERATE}`", file=sys.stderr)
        else:
            path.write_text(wanted[path], encoding="utf-8")
            print(f"wrote {path}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
