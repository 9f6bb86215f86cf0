"""Every public exception of the core derives from LakeError, the one thing the CLI and the Dagster wiring catch."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import boston_lake.lake
from boston_lake.lake.errors import LakeError


def _public_exceptions() -> list[type[BaseException]]:
    """The exception classes defined in the core's modules, except private ones (a leading underscore: control
    flow that never leaves its module)."""
    found = []
    for module_info in pkgutil.walk_packages(boston_lake.lake.__path__, "boston_lake.lake."):
        module = importlib.import_module(module_info.name)
        found += [
            value
            for name, value in vars(module).items()
            if inspect.isclass(value)
            and issubclass(value, BaseException)
            and value.__module__ == module.__name__
            and not name.startswith("_")
        ]
    return found


PUBLIC_EXCEPTIONS = _public_exceptions()


def test_the_walk_finds_the_cores_errors():
    names = {error.__name__ for error in PUBLIC_EXCEPTIONS}
    assert {"LakeError", "SettingsError", "BronzeError", "PortalError", "WaitTimedOut", "HeaderMismatch"} <= names


@pytest.mark.parametrize("error", PUBLIC_EXCEPTIONS, ids=lambda error: f"{error.__module__}.{error.__name__}")
def test_every_public_exception_of_the_core_is_a_lake_error(error):
    assert issubclass(error, LakeError), (
        f"{error.__module__}.{error.__name__} does not derive from boston_lake.lake.errors.LakeError; "
        "add it as the first base (keep a built-in base its callers catch, e.g. (LakeError, RuntimeError))"
    )


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        ("boston_lake.lake.settings.SettingsError", ValueError),
        ("boston_lake.lake.tables.HeaderMismatch", ValueError),
        ("boston_lake.lake.source.csvscan.CsvFormatError", ValueError),
        ("boston_lake.lake.aws.session.WaitTimedOut", TimeoutError),
        ("boston_lake.lake.zones.bronze.BronzeError", RuntimeError),
        ("boston_lake.lake.stores.StoreError", RuntimeError),
    ],
)
def test_errors_keep_the_builtin_base_their_callers_catch(error, builtin):
    module, _, name = error.rpartition(".")
    assert issubclass(getattr(importlib.import_module(module), name), builtin)
