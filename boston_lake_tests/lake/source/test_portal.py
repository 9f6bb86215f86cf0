import logging

import pytest

from boston_lake.lake.source.portal import CkanPortal, PortalError, Validators
from boston_lake_tests.support.portal import LEGACY_2022_ID, html_page, status, truncated


def client(portal, **kwargs) -> CkanPortal:
    return CkanPortal(portal.url, backoff_seconds=0.01, log=logging.getLogger("test"), **kwargs)


def resource_2022(portal_client):
    return next(r for r in portal_client.resources() if r.id == LEGACY_2022_ID)


def test_package_show_lists_resources_with_names_even_when_ckan_gives_null(portal):
    resources = client(portal).resources()
    names = {r.name for r in resources}
    assert "311 SERVICE REQUESTS - 2022" in names and "311 Service Requests - NEW SYSTEM" in names
    assert "311 Service Requests Data Dictionary - NEW SYSTEM" in names  # from name_translated
    assert resource_2022(client(portal)).file_name == "legacy_v1_2022-01_qsv_boston311-100.csv"


def test_download_streams_the_exact_bytes_with_hash_and_validators(portal, tmp_path):
    portal_client = client(portal)
    resource = resource_2022(portal_client)
    download = portal_client.download(resource.url, tmp_path / "f.csv")
    expected = portal.file_for(LEGACY_2022_ID).read_bytes()
    assert (tmp_path / "f.csv").read_bytes() == expected
    assert download.bytes == len(expected) and len(download.sha256) == 64
    assert download.etag and download.last_modified


def test_conditional_request_gets_304_and_writes_nothing(portal, tmp_path):
    portal_client = client(portal)
    resource = resource_2022(portal_client)
    first = portal_client.download(resource.url, tmp_path / "a.csv")
    second = portal_client.download(resource.url, tmp_path / "b.csv", Validators(first.etag, first.last_modified))
    assert second.not_modified and not (tmp_path / "b.csv").exists()
    assert portal.downloads()[-1].headers["If-None-Match"] == first.etag


def test_503_then_success_is_retried(portal, tmp_path):
    portal.faults.extend([status(503), status(429, retry_after="0")])
    download = client(portal).download(resource_2022(client(portal)).url, tmp_path / "f.csv")
    assert download.bytes == portal.file_for(LEGACY_2022_ID).stat().st_size
    assert len(portal.downloads()) == 3


def test_truncated_body_is_retried_then_fails_with_a_clear_message(portal, tmp_path):
    portal.faults.extend([truncated(1000)] * 3)
    with pytest.raises(PortalError, match=r"failed 3 times.*(connection broke|Content-Length)"):
        client(portal, max_attempts=3).download(resource_2022(client(portal)).url, tmp_path / "f.csv")


def test_truncated_once_then_whole(portal, tmp_path):
    portal.faults.append(truncated(500))
    download = client(portal).download(resource_2022(client(portal)).url, tmp_path / "f.csv")
    assert (tmp_path / "f.csv").read_bytes() == portal.file_for(LEGACY_2022_ID).read_bytes()
    assert download.sha256


def test_html_page_with_status_200_is_an_error_not_data(portal, tmp_path):
    portal.faults.append(html_page())
    with pytest.raises(PortalError, match="HTML page.*where a CSV file was expected"):
        client(portal).download(resource_2022(client(portal)).url, tmp_path / "f.csv")
    assert len(portal.downloads()) == 1  # not retried: it is an answer, not a glitch


def test_not_found_is_not_retried(portal, tmp_path):
    with pytest.raises(PortalError, match="404"):
        client(portal).download(f"{portal.url}/dataset/x/resource/nope/download/x.csv", tmp_path / "f.csv")
    assert len(portal.downloads()) == 1


def test_unreachable_portal_fails_after_retries_naming_the_url():
    unreachable = CkanPortal("http://127.0.0.1:9", backoff_seconds=0.01, max_attempts=2)
    with pytest.raises(PortalError, match=r"127.0.0.1:9/api/3/action/package_show failed 2 times"):
        unreachable.resources()


def test_long_downloads_log_progress(portal, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    client(portal, progress_interval_seconds=0).download(resource_2022(client(portal)).url, tmp_path / "f.csv")
    assert any("MB/s" in message for message in caplog.messages)
