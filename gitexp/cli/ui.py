"""`git exp ui`: the live local web UI over the runs (the work lives in gitexp/ui/)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

AddCommand = Callable[[str, str], argparse.ArgumentParser]


def cmd_ui(port: int, host: str, open_browser: bool) -> int:
    from gitexp.ui.server import serve

    return serve(host=host, port=port, open_browser=open_browser)


def register(add: AddCommand) -> None:
    p = add("ui", "Serve a live, read-only web UI of the runs: table, filters, curves, comparisons, run pages.")
    p.add_argument("--port", type=int, default=5080,
                   help="the port to listen on (default 5080; 0: any free port, printed)")
    p.add_argument("--host", default="127.0.0.1",
                   help="the address to listen on (default 127.0.0.1, this machine only); any other address "
                        "requires the random token printed in the URL of every request")
    p.add_argument("--open", dest="open_browser", action="store_true", help="open the URL in a web browser")
    p.set_defaults(func=lambda a: cmd_ui(a.port, a.host, a.open_browser))
