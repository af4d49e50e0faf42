"""The web UI of `git exp ui`: a local, read-only window onto the runs, live while they train.

It owns the web application (app: its routes, the token check, security headers), the runs it
shows (catalog: a snapshot of load_runs shared by the requests of one second), the JSON it serves
(tableapi: the runs table; curves: metric histories, downsampled; comparison: runs side by side),
the HTML pages and their script and style (pages, runpage, static/), and serving it (server:
uvicorn on a port, the token; hosts: which addresses are loopback). It reads runs only through the run store
(load_runs and its listing cache, search, histories, live values, artifacts) and shows them with
the views, so the UI, `git exp ls` and `git exp report` say the same things; it never writes to a
repository. It may import every layer below it (store, ops, views and those they import), never
the CLI, which imports it.
"""
