"""The settings resource: what the UI's resource page shows is what the runs parse (the UI side: test_ui.py)."""

from dataclasses import replace

from dagster import EnvVar

from boston_lake.defs.resources import settings_resource
from boston_lake.lake.settings import Settings


def test_settings_given_by_the_caller_show_as_values_and_parse_back_to_the_same_settings(tmp_path):
    given = {"BOSTON_LAKE_HOME": str(tmp_path), "BOSTON_LAKE_DUCKDB_MEMORY_LIMIT": "256MB"}
    settings = Settings.from_env(given)
    resource = settings_resource(settings, environ={})  # the demo's way: nothing read from the process
    assert resource.boston_lake_home == str(tmp_path)
    assert resource.boston_lake_target == "local"  # the default in force
    assert resource.boston_lake_raw_bucket is None
    assert replace(resource.settings(), given=()) == replace(settings, given=())


def test_settings_read_from_the_environment_are_shown_as_their_variables(tmp_path):
    environ = {"BOSTON_LAKE_HOME": str(tmp_path), "BOSTON_LAKE_PORTAL_URL": "http://127.0.0.1:9"}
    resource = settings_resource(Settings.from_env(environ), environ)
    assert resource.boston_lake_home == EnvVar("BOSTON_LAKE_HOME")
    assert isinstance(resource.boston_lake_portal_url, EnvVar)
    assert not isinstance(resource.boston_lake_target, EnvVar)
