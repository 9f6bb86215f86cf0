"""Shared fixtures live in `support/`, one module per subject, all loaded as plugins."""

from pathlib import Path

pytest_plugins = sorted(
    f"boston_lake_tests.support.{module.stem}"
    for module in (Path(__file__).parent / "support").glob("*.py")
    if module.stem != "__init__"
)
