"""The run store: the on-disk format of runs (docs/format.md), writing them and reading them back.

It owns a run's content in memory (state), its encoding as a commit (codec, yamltext) and the types
its documents must have (schema), writing that commit and moving the run's ref (writer), the crash
journal, the background flush thread, notes on code commits, artifact content (artifacts, ingest,
hashcache), and every way of reading runs: the record of one run, load_runs with its listing cache
(runs, runcache), metric histories (histories), and the query language of `--where`/`--sort`
(fields, query, evaluation, search). The caches under the git directory share cachefile; long
reads of JSON numbers and summaries share fastjson (msgspec, where it is installed). It may
import the git layer and the shared modules at the top of the package (errors, warn, text), never
the logging API above it.
"""
