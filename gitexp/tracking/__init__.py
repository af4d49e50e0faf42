"""The logging API: what a training script calls while it runs.

It owns the module-level functions (`start_run`, `log_metric`...) in run.py and `Run` in liverun,
with what a run journals and commits in recorder and commits and what it is configured with in
settings; how a run starts (launch: its code snapshot, environment and first commit); the
environment and GPU capture (env, gpu), system metrics (system), secrets kept out of what is
recorded (redact), dataset inputs (inputs), and running a command as a run (runner). It may import
the run store, the git layer and the shared modules; nothing below it imports it.
"""
