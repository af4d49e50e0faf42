"""Views: what a user reads, as text tables, plots and the HTML report.

The run table of `git exp ls` (table, plaintable, the listing it keeps between calls: listing, and
--where/--sort answered from that listing: selection),
one run (show), two or more side by side (diff, compare), metric plots and charts (plots, charts),
the static report (report) and lineage output (lineage). Views read runs through the run store and
the operations below them and never change a repository (the kept listing is a cache file under
.git/gitexp/cache/, like the run store's). Nothing outside views and the CLI imports them
(gitexp.plot reaches plots lazily).
"""
