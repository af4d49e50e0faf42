"""The web application of `git exp ui` (Starlette): its routes, who may ask, and what every answer carries.

Routes: the runs page (/), a run's page (/run/RUN_ID, an address a teammate who pulled the run can
open too), the static files (/static/: ui.js, ui.css, and plotly.min.js from the installed plotly
package), and the JSON API under /api/ (docs/ui.md lists it). Every route only reads.

Who may ask: a server bound to a loopback address answers only requests whose Host is a loopback
name (so a web page of another site cannot reach it through a DNS name it points at 127.0.0.1);
one given a token (always, when bound to any other address) answers only requests that carry it:
?token=... in the URL (which then sets a cookie, as Jupyter does), that cookie, or an
`Authorization: token ...` header; anything else gets 403.

Every answer carries a Content-Security-Policy allowing scripts, styles and requests of this origin
only (Plotly's inline styles aside), nosniff, no-referrer and no framing; artifacts are sent as
downloads (Content-Disposition: attachment, application/octet-stream, a sandboxing CSP).
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gitexp.errors import GitexpError, RunNotFoundError
from gitexp.ui import comparison, curves, pages, runpage, tableapi
from gitexp.ui.catalog import Catalog
from gitexp.ui.hosts import host_name, is_loopback

CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
DOWNLOAD_CSP = "default-src 'none'; sandbox"
TOKEN_COOKIE = "gitexp-ui-token"
STATIC_FILES = {"ui.js": "text/javascript; charset=utf-8", "ui.css": "text/css; charset=utf-8"}


def plotly_js() -> Path:
    """plotly.min.js of the installed plotly package (gitexp's dependency): the charts' one script."""
    spec_root = resources.files("plotly")
    path = Path(str(spec_root)) / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise GitexpError(f"the installed plotly package has no {path}; reinstall it: pip install --force-reinstall "
                          "plotly")
    return path


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, allow_nan=False, separators=(",", ":")).encode()


def create_app(repo: Any = None, token: str | None = None, loopback: bool = True) -> Starlette:
    """The application serving the runs of *repo* (default: the repository here).

    *token*: required of every request when given. *loopback*: the server listens on a loopback
    address only, so requests must name a loopback host."""
    catalog = Catalog(repo)
    reading = threading.Lock()  # one library read at a time: the git objects are shared by the threads
    plotly_path = plotly_js()
    static_dir = Path(str(resources.files("gitexp.ui"))) / "static"

    def api(handler: Callable[[Request], Any]) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            try:
                with reading:
                    return JSON(handler(request))
            except RunNotFoundError as exc:
                return JSON({"error": str(exc)}, status_code=404)
            except GitexpError as exc:
                return JSON({"error": str(exc)}, status_code=400)
        return endpoint

    def selected(request: Request) -> list[Any]:
        ids = [i for i in request.query_params.get("runs", "").split(",") if i]
        return catalog.snapshot().runs(ids)

    def runs_api(request: Request) -> Any:
        q = request.query_params
        query = tableapi.Query(q.get("experiment"), q.get("where"), q.get("sort"), q.get("columns"),
                               q.get("only_changed") == "1")
        return tableapi.table(catalog.snapshot(), query, _int(q.get("offset"), 0), _int(q.get("limit"),
                                                                                           tableapi.PAGE_SIZE))

    def columns_api(request: Request) -> Any:
        return tableapi.available_columns(catalog.snapshot(), request.query_params.get("experiment") or None)

    def curves_api(request: Request) -> Any:
        q = request.query_params
        metrics = [m for m in q.get("metrics", "").split(",") if m] or None
        smooth = _int(q.get("smooth"), 0) or None
        return curves.curves(selected(request), metrics, q.get("x", "step"), smooth,
                             _int(q.get("points"), 0) or None)

    def compare_api(request: Request) -> Any:
        return comparison.compare(selected(request))

    def fields_api(request: Request) -> Any:
        q = request.query_params
        records = selected(request) if q.get("runs") else \
            catalog.snapshot().select(q.get("experiment") or None, q.get("where"))
        return comparison.field_values(records, q.get("fields", ""))

    def log_api(request: Request) -> Any:
        record = catalog.snapshot().run(request.path_params["run_id"])
        return runpage.log_chunk(record, _int(request.query_params.get("offset"), -1))

    def status_api(request: Request) -> Any:
        record = catalog.snapshot().run(request.path_params["run_id"])
        return {"id": record.id, "status": record.status, "running": record.status == "RUNNING"}

    def index(request: Request) -> Response:
        return HTMLResponse(pages.runs_page())

    def run_page(request: Request) -> Response:
        try:
            with reading:
                snapshot = catalog.snapshot()
                return HTMLResponse(runpage.render(snapshot, snapshot.run(request.path_params["run_id"])))
        except RunNotFoundError as exc:
            return HTMLResponse(pages.message_page("no such run", str(exc)), status_code=404)

    def artifact(request: Request) -> Response:
        run_id, path = request.path_params["run_id"], request.path_params["path"]
        with reading:
            try:
                record = catalog.snapshot().run(run_id)
            except RunNotFoundError as exc:
                return PlainTextResponse(str(exc), status_code=404)
            # Only a path the run lists is served: nothing else of the repository or the disk can be named.
            found = next((a for a in record.artifacts if a.path == path and not a.problem), None)
            if found is None:
                return PlainTextResponse(f"run {run_id} has no artifact {path!r}", status_code=404)
            headers = {"Content-Disposition": _attachment(path), "Content-Security-Policy": DOWNLOAD_CSP}
            if not found.lfs:
                return Response(record.repo.read_blob(found.blob), media_type="application/octet-stream",
                                headers=headers)
            if not found.present:
                return PlainTextResponse(f"artifact {path!r} of run {run_id} is in Git LFS and not fetched here; "
                                         f"`git exp get {run_id} {path}` fetches it", status_code=404)
            from gitexp.git.lfs import Store

            return FileResponse(Store(record.repo).path(found.sha256), media_type="application/octet-stream",
                                headers=headers)

    def static(request: Request) -> Response:
        name = request.path_params["name"]
        cache = {"Cache-Control": "max-age=86400"}
        if name == "plotly.min.js":
            return FileResponse(plotly_path, media_type="text/javascript; charset=utf-8", headers=cache)
        if name not in STATIC_FILES:
            return PlainTextResponse("not found", status_code=404)
        return FileResponse(static_dir / name, media_type=STATIC_FILES[name], headers=cache)

    routes = [
        Route("/", index), Route("/run/{run_id}", run_page), Route("/static/{name}", static),
        Route("/api/runs", api(runs_api)), Route("/api/columns", api(columns_api)),
        Route("/api/curves", api(curves_api)), Route("/api/compare", api(compare_api)),
        Route("/api/fields", api(fields_api)), Route("/api/run/{run_id}/log", api(log_api)),
        Route("/api/run/{run_id}/status", api(status_api)),
        Route("/api/run/{run_id}/artifact/{path:path}", artifact),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(Guard, token=token, loopback=loopback)
    return app


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text not in (None, "") else default
    except ValueError:
        return default


def _attachment(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    ascii_name = "".join(c if c.isascii() and c.isprintable() and c not in '"\\;' else "_" for c in name)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


class Guard:
    """ASGI middleware: the Host and token checks, and the security headers of every answer."""

    def __init__(self, app: ASGIApp, token: str | None, loopback: bool) -> None:
        self.app, self.token, self.loopback = app, token, loopback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if self.loopback and not is_loopback(host_name(request.headers.get("host", ""))):
            await _refuse("this server answers only http://127.0.0.1 and http://localhost", scope, receive, send)
            return
        set_cookie = False
        if self.token is not None:
            given = request.query_params.get("token")
            header = request.headers.get("authorization", "")
            cookie = request.cookies.get(TOKEN_COOKIE, "")
            ok = any(secrets.compare_digest(t.encode(), self.token.encode())
                     for t in (given or "", header.removeprefix("token ").strip(), cookie) if t)
            if not ok:
                await _refuse("this git exp ui needs its token: open the URL it printed (…?token=…)", scope,
                              receive, send)
                return
            set_cookie = given is not None

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                present = {k.lower() for k, _ in headers}
                extra = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                         (b"x-frame-options", b"DENY"), (b"content-security-policy", CSP.encode()),
                         (b"cache-control", b"no-store")]
                headers.extend((k, v) for k, v in extra if k not in present)
                if set_cookie and self.token is not None:
                    headers.append((b"set-cookie", f"{TOKEN_COOKIE}={self.token}; Path=/; HttpOnly; "
                                                   f"SameSite=Strict".encode()))
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _refuse(message: str, scope: Scope, receive: Receive, send: Send) -> None:
    response = PlainTextResponse(f"403 forbidden: {message}\n", status_code=403,
                                 headers={"X-Content-Type-Options": "nosniff"})
    await response(scope, receive, send)

