"""`git exp`: a thin command-line skin over the library; the commands live in the other modules of gitexp/cli/."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from gitexp import __version__
from gitexp.errors import GitexpError

if TYPE_CHECKING:
    import argparse

BUG_HINT = "this is a bug in gitexp; please report it with the traceback above"
_program = False  # main() runs as the `git exp` process itself (not called with argv, as tests do)

# Each module has register(add): add(name, help) returns the subparser of a new command.
COMMAND_MODULES = ("core", "compare", "share", "lineage", "imports", "logs", "completion", "ui")
# Which module registers each command, so that `git exp ls` builds the parsers of one module, not
# all forty (tests/test_cli.py checks this against the registrations).
COMMANDS = {
    **dict.fromkeys(("run", "ls", "show", "rm", "recover", "gc"), "core"),
    **dict.fromkeys(("diff", "compare", "best", "plot", "report"), "compare"),
    **dict.fromkeys(("artifacts", "get", "push", "fetch", "pull", "remote"), "share"),
    **dict.fromkeys(("log", "notes", "hooks", "hook", "checkout", "rerun", "verify"), "lineage"),
    "import": "imports",
    "completion": "completion",
    "logs": "logs",
    "ui": "ui",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or only of those registered with *command* when it is one."""
    # Imported here, not at the top: `git exp hook` runs on every commit and needs neither.
    import importlib

    parser = _parser_class()(
        prog="git exp", description="Track machine-learning experiments as git commits.",
        epilog="Runs live under refs/experiments/<experiment>/<run-id>. `git exp COMMAND -h` for details.")
    parser.add_argument("--version", action="version", version=f"gitexp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text)

    module = COMMANDS.get(command or "")
    for name in [module] if module else COMMAND_MODULES:
        importlib.import_module(f"gitexp.cli.{name}").register(add)
    return parser


def _parser_class() -> type[argparse.ArgumentParser]:
    """An ArgumentParser that takes options and positionals in any order, as git does: `git exp plot acc
    -o x.png RUN RUN`. argparse's own parse_args ends a nargs="*" positional at the first option, and
    leaves the words after that option unrecognized.

    Each command's parser parses itself intermixed (subparsers call parse_known_args, which is where
    this hooks in); the top level and the parsers with subcommands or a REMAINDER (`run -- CMD...`,
    whose words after the command are the command's own) parse as argparse does, since
    parse_intermixed_args cannot take those.
    """
    import argparse

    class Parser(argparse.ArgumentParser):
        _intermixing = False  # parse_known_intermixed_args calls parse_known_args (before Python 3.13)

        def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                             namespace: Any = None) -> tuple[Any, list[str]]:
            # After "--" every word is a positional, which the intermixed parse does not keep to.
            if self._intermixing or not _intermixable(self) or "--" in (args or ()):
                return super().parse_known_args(args, namespace)
            self._intermixing = True
            try:
                return self.parse_known_intermixed_args(args, namespace)
            finally:
                self._intermixing = False

    return Parser


def _intermixable(parser: argparse.ArgumentParser) -> bool:
    import argparse

    positionals = [action for action in parser._actions if not action.option_strings]
    grouped = [action for group in parser._mutually_exclusive_groups for action in group._group_actions]
    whole = (argparse.PARSER, argparse.REMAINDER)  # words parse_intermixed_args cannot hand on untouched
    return (any(positionals) and not any(action.nargs in whole for action in positionals)
            and not any(action in positionals for action in grouped))


def exit_now(code: int) -> None:
    """End the `git exp` process at once with *code*, skipping the interpreter's teardown (which
    frees every object one by one: a sixth of the time of listing 10,000 runs, 0.5 s of a first
    listing of 100,000) once what exit does before it is done: the atexit callbacks are run here
    (gitexp's writers finish, and any other's, such as coverage's), as exit would run them. Returns,
    doing nothing, while another thread runs (exit would wait for it), where this Python cannot run
    them, and when main() was called with argv."""
    import atexit
    import os
    import threading

    if not _program:
        return
    cache = sys.modules.get("gitexp.store.cachefile")
    if cache is not None:
        cache.finish()  # the caches it writes behind (one thread, no callback left once they are written)
    run_callbacks = getattr(atexit, "_run_exitfuncs", None)
    if run_callbacks is None or threading.active_count() > 1:
        return
    # (A callback left waiting in the teardown would never run: a .pth file's or a sitecustomize's,
    # registered whatever the command, kept every listing from ending at once.)
    run_callbacks()
    if threading.active_count() > 1:  # (a callback that started a thread: exit would wait for it)
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _one_line_warnings(fallback: Callable[..., None]) -> Callable[..., None]:
    """A warnings.showwarning that prints gitexp's own warnings ("gitexp: ...") as one line on stderr,
    `git exp: warning: ...`, each once, rather than with a line of gitexp's source; others as before."""
    from gitexp.text import printable

    shown: set[str] = set()

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: Any = None, line: str | None = None) -> None:
        text = str(message)
        if not text.startswith("gitexp: "):
            fallback(message, category, filename, lineno, file, line)
            return
        text = printable(text[len("gitexp: "):])
        if text not in shown:
            shown.add(text)
            print(f"git exp: warning: {text}", file=sys.stderr)
    return show


def main(argv: Sequence[str] | None = None) -> int:
    global _program
    _program = argv is None
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["hook"] and len(words) > 1:
        # git runs this on every commit: skip building the whole parser (and importing every command).
        from gitexp.ops.hookentry import run_hook

        return run_hook(words[1], words[2:])
    if _program:  # (its own process, which it ends itself: exit_now waits for these writes)
        from gitexp.store import cachefile

        cachefile.write_behind()
    parser = build_parser(words[0] if words else None)
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    import warnings

    from gitexp.text import printable

    try:
        with warnings.catch_warnings():  # restores the previous showwarning (main may be called in-process)
            warnings.showwarning = _one_line_warnings(warnings.showwarning)
            return args.func(args)
    except GitexpError as exc:
        # Messages quote run data (names, keys), which may come from an untrusted remote.
        print(f"git exp: error: {printable(exc.cli_message or str(exc), keep=chr(10))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0  # `git exp ls | head`
    except Exception:
        import traceback

        traceback.print_exc()
        print(f"git exp: {BUG_HINT}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
