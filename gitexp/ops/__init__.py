"""Operations on a repository's runs as a whole, each one a `git exp` command's library half.

Sharing runs with a remote (remote), restoring artifacts from Git LFS (restore), checking a run's
code out into the work tree (checkout), linking runs to code commits and the post-commit hook
(link, hooks, hookentry), removing runs and pruning what they left (trash, prune), checking a
repository's runs (verify), and reading a run's output as it grows (logs). It may import the logging
API, the run store, the git layer and the shared modules; never the views or the CLI.
"""
