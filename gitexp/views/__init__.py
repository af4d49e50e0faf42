"""Views: what a user reads, as text tables, plots and the HTML report.

The run table of `git exp ls` (table, plaintable), one run (show), two or more side by side (diff,
compare), metric plots and charts (plots, charts), the static report (report) and lineage output
(lineage). Views read runs through the run store and the operations below them and never change a
repository. Nothing outside views and the CLI imports them (gitexp.plot reaches plots lazily).
"""
