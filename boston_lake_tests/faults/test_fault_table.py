"""The fault table of docs/faults.md is the register of this suite, and every test here declares its scenario."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import boston_lake_tests.faults as package
from boston_lake_tests.faults.scenario import TABLE_END, TABLE_START, markdown_table, registered

FAULTS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "faults.md"


def test_docs_fault_table_is_the_suites_register() -> None:
    page = FAULTS_PAGE.read_text()
    assert TABLE_START in page and TABLE_END in page, "docs/faults.md lacks the fault table markers"
    shown = page[page.index(TABLE_START) : page.index(TABLE_END) + len(TABLE_END)]
    assert shown == markdown_table(registered()), (
        "the fault table of docs/faults.md differs from the suite: "
        "regenerate it with python -m boston_lake_tests.faults.scenario"
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
