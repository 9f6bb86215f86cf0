from pathlib import Path

import pytest

from boston_lake.lake.settings import DEFAULT_PORTAL_URL, Settings, SettingsError


def test_defaults_are_the_embedded_target_and_the_real_portal(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({})
    assert settings.target == "local"
    assert settings.portal_url == DEFAULT_PORTAL_URL
    assert settings.home == (tmp_path / ".boston_lake").resolve()


def test_empty_variables_mean_defaults():
    settings = Settings.from_env({"BOSTON_LAKE_TARGET": "", "BOSTON_LAKE_PORTAL_URL": "  "})
    assert settings.target == "local" and settings.portal_url == DEFAULT_PORTAL_URL


def test_values_are_read_and_normalized(tmp_path):
    settings = Settings.from_env(
        {"BOSTON_LAKE_HOME": str(tmp_path / "lake"), "BOSTON_LAKE_PORTAL_URL": "http://127.0.0.1:8311/"}
    )
    assert settings.home == Path(tmp_path / "lake").resolve()
    assert settings.portal_url == "http://127.0.0.1:8311"


def test_unknown_target_names_the_variable():
    with pytest.raises(SettingsError, match="BOSTON_LAKE_TARGET='gcp'.*local, aws"):
        Settings.from_env({"BOSTON_LAKE_TARGET": "gcp"})


@pytest.mark.parametrize("url", ["data.boston.gov", "ftp://data.boston.gov", "http://"])
def test_malformed_portal_url_names_the_variable(url):
    with pytest.raises(SettingsError, match="BOSTON_LAKE_PORTAL_URL"):
        Settings.from_env({"BOSTON_LAKE_PORTAL_URL": url})
