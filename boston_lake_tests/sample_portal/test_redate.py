import csv
import json

from boston_lake.lake.tables import LEGACY_REQUESTS, LEGACY_V2
from boston_lake.sample_portal.redate import build_redated_years, redate
from boston_lake.sample_portal.server import DATA_DIR, SamplePortal, copy_sample_data

SOURCE = (
    "case_enquiry_id,open_dt,sla_target_dt,closed_dt,closure_reason\n"
    "101000729509,2013-12-31 22:00:00,2014-01-02 06:32:33,2014-01-01 13:14:40,"
    "Case Closed. Closed date : 2014-01-01 18:14:40.467 Case Resolved\n"
)


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(text.splitlines()))


def test_every_date_moves_by_the_same_years_and_the_case_id_moves_out_of_the_real_range():
    (row,) = rows(redate(SOURCE, 2013, 2016))
    assert row["open_dt"] == "2016-12-31 22:00:00" and row["sla_target_dt"] == "2017-01-02 06:32:33"
    assert row["closed_dt"] == "2017-01-01 13:14:40"
    assert row["closure_reason"] == "Case Closed. Closed date : 2017-01-01 18:14:40.467 Case Resolved"
    assert row["case_enquiry_id"] == "101030729509"


def test_the_bundled_files_are_what_the_builder_makes(tmp_path):
    copy = copy_sample_data(tmp_path / "data")
    for path in copy.glob("*_redated_from_*.csv"):
        path.unlink()
    files = build_redated_years(copy)
    assert files == json.loads((DATA_DIR / "portal.json").read_text())["files_by_resource_id"]
    for name in files.values():
        assert (copy / name).read_bytes() == (DATA_DIR / name).read_bytes(), name


def test_the_portal_offers_every_legacy_year_in_legacy_v2_with_unique_case_ids():
    portal = SamplePortal()
    offered = {}
    for resource in portal.package_show()["result"]["resources"]:
        match = LEGACY_REQUESTS.resource_pattern.match(resource.get("name") or "")
        if match:
            offered[int(match["year"])] = portal.file_for(resource["id"])
    assert sorted(offered) == list(range(2011, 2027))
    ids: set[str] = set()
    for year, path in offered.items():
        found = rows(path.read_text(encoding="utf-8"))
        if year != 2022:  # the real legacy v1 extract
            assert LEGACY_REQUESTS.match_generation(list(found[0])) == LEGACY_V2
        assert {row["open_dt"][:4] for row in found} == {str(year)}, path.name
        year_ids = {row["case_enquiry_id"] for row in found}
        assert len(year_ids) == len(found) and not year_ids & ids, path.name
        ids |= year_ids
