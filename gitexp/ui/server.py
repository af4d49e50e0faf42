"""Serving the UI: a socket on the address asked, uvicorn on it, the URL to open, and a clean stop.

By default the server listens on 127.0.0.1 only. Any other address (--host 0.0.0.0, a LAN address)
makes the runs reachable by others, so the server then requires a random token of every request,
printed in the URL as Jupyter does. The socket is bound here, before uvicorn starts, so that
--port 0 (any free port) is printed as the port it became, and a port in use is an error that says
what to do rather than a traceback.
"""

from __future__ import annotations

import os
import secrets
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

from gitexp.errors import GitexpError
from gitexp.ui.hosts import is_loopback

REQUIREMENTS = "'starlette>=0.40' 'uvicorn>=0.30' 'plotly>=5'"


def missing_requirements() -> str | None:
    """None when the UI's packages import, else what to install (they are gitexp's dependencies; an
    install that skipped them, such as pip's --no-deps, lacks them)."""
    import importlib.util

    missing = [name for name in ("starlette", "uvicorn", "plotly") if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    return (f"git exp ui needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not installed: "
            f"pip install {REQUIREMENTS}")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on *host*:*port* (0: a free port); GitexpError saying what to do when it cannot be."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise GitexpError(f"cannot listen on --host {host!r}: {exc.strerror}; give an address of this machine, "
                          "such as 127.0.0.1 (the default) or 0.0.0.0 (every address)") from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        what = "is in use" if exc.errno in (98, 48) else f"cannot be used ({exc.strerror})"
        raise GitexpError(f"port {port} on {host} {what}; choose another with --port N, or --port 0 for any "
                          "free port") from exc
    return sock


def urls(host: str, port: int, token: str | None) -> list[str]:
    """The URLs to print: the one to open first."""
    query = f"?token={token}" if token else ""
    every = host in ("0.0.0.0", "::")
    names = [socket.gethostname(), "127.0.0.1"] if every else [f"[{host}]" if ":" in host else host]
    return [f"http://{name}:{port}/{query}" for name in names]


def serve(host: str = "127.0.0.1", port: int = 0, open_browser: bool = False, repo: Any = None,
          require_token: bool | None = None, announce: Callable[[str], None] | None = None) -> int:
    """Serve the runs of *repo* until interrupted (Ctrl-C); returns 0. *require_token*: None means
    whenever *host* is not a loopback address."""
    problem = missing_requirements()
    if problem:
        raise GitexpError(problem)
    import uvicorn

    from gitexp.ui.app import create_app

    loopback = is_loopback(host)
    token = secrets.token_urlsafe(24) if (require_token if require_token is not None else not loopback) else None
    app = create_app(repo, token=token, loopback=loopback)
    sock = bind(host, port)
    bound = sock.getsockname()[1]
    shown = urls(host, bound, token)
    say = announce or (lambda text: print(text, flush=True))
    say(f"git exp ui: serving the runs of {os.getcwd() if repo is None else repo} (read-only); Ctrl-C stops it")
    for url in shown:
        say(f"    {url}")
    if not loopback:
        say("    reachable from other machines: the token in the URL is required of every request")
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    if open_browser:
        import webbrowser

        threading.Timer(0.5, webbrowser.open, args=(shown[-1],)).start()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn stopped cleanly on Ctrl-C, then raised it again for us: done
        pass
    finally:
        sock.close()
    print("git exp ui: stopped", file=sys.stderr)
    return 0
