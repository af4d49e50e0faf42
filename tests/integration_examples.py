"""The examples of docs/integrations.md, for the tests that run them as they stand."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parent.parent / "docs" / "integrations.md"


def example(section: str) -> str:
    """The first python block under the heading `## <section>`."""
    text = DOC.read_text()
    found = re.search(rf"^## {re.escape(section)}\n(.*?)^```python\n(.*?)^```", text, re.M | re.S)
    assert found is not None, f"docs/integrations.md has no python example under '## {section}'"
    return found.group(2)


def run(code: str, section: str) -> dict[str, Any]:
    """Execute *code* as a script would (in the current directory) and return its globals."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(code, f"docs/integrations.md ({section})", "exec"), namespace)
    return namespace


def run_example(section: str) -> dict[str, Any]:
    return run(example(section), section)


def steps_and_values(record: Any, key: str) -> list[tuple[int, float]]:
    history = record.history(key)
    return list(zip(history.steps, history.values, strict=True))
