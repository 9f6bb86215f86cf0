"""README's fault table is the register of this suite, and every test here declares its scenario."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import boston_lake_tests.faults as package
from boston_lake_tests.faults.scenario import TABLE_END, TABLE_START, markdown_table, registered

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_fault_table_is_the_suites_register() -> None:
    readme = README.read_text()
    assert TABLE_START in readme and TABLE_END in readme, "README lacks the fault table markers"
    shown = readme[readme.index(TABLE_START) : readme.index(TABLE_END) + len(TABLE_END)]
    assert shown == markdown_table(registered()), (
        "README's fault table differs from the suite: regenerate it with python -m boston_lake_tests.faults.scenario"
    )


def test_every_fault_test_declares_its_scenario() -> None:
    undeclared = []
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("test_") and info.name != Path(__file__).stem:
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            undeclared += [
                f"{info.name}.{name}"
                for name, item in vars(module).items()
                if name.startswith("test_") and callable(item) and not hasattr(item, "fault")
            ]
    assert undeclared == []
