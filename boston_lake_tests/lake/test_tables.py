import pytest

from boston_lake.lake.tables import LEGACY_REQUESTS, NEW_SYSTEM_REQUESTS, HeaderMismatch

V1 = (
    "case_enquiry_id,open_dt,target_dt,closed_dt,ontime,case_status,closure_reason,case_title,subject,reason,type,"
    "queue,department,submittedphoto,closedphoto,location,fire_district,pwd_district,city_council_district,"
    "police_district,neighborhood,neighborhood_services_district,ward,precinct,location_street_name,"
    "location_zipcode,latitude,longitude,source"
).split(",")
V2 = (
    "case_enquiry_id,open_dt,sla_target_dt,closed_dt,on_time,case_status,closure_reason,case_title,subject,reason,"
    "type,queue,department,submitted_photo,closed_photo,location,fire_district,pwd_district,city_council_district,"
    "police_district,neighborhood,neighborhood_services_district,ward,precinct,location_street_name,"
    "location_zipcode,latitude,longitude,geom_4326,source"
).split(",")
NEW_FULL = (
    "case_id,open_date,case_topic,service_name,assigned_department,assigned_team,case_status,closure_reason,"
    "closure_comments,close_date,target_close_date,on_time,report_source,full_address,street_number,street_name,"
    "zip_code,neighborhood,public_works_district,city_council_district,fire_district,police_district,ward,"
    "precinct,submitted_photo,closed_photo,longitude,latitude"
).split(",")


def test_each_published_header_matches_its_generation():
    assert LEGACY_REQUESTS.match_generation(V1).name == "legacy_v1"
    assert LEGACY_REQUESTS.match_generation(V2).name == "legacy_v2"
    assert LEGACY_REQUESTS.match_generation(["_id", *V2]).name == "legacy_v2"  # datastore dump
    assert NEW_SYSTEM_REQUESTS.match_generation(NEW_FULL).name == "new_system"
    api_extract = [c for c in NEW_FULL if c not in ("submitted_photo", "closed_photo")]
    assert NEW_SYSTEM_REQUESTS.match_generation(list(reversed(api_extract))).name == "new_system"


def test_an_unknown_header_lists_unexpected_and_missing_columns():
    header = [c for c in V2 if c != "geom_4326"] + ["geometry"]
    with pytest.raises(
        HeaderMismatch,
        match=r"closest is legacy_v2: unexpected columns \['geometry'\], missing columns \['geom_4326'\]",
    ):
        LEGACY_REQUESTS.match_generation(header)


def test_duplicate_columns_are_refused():
    with pytest.raises(HeaderMismatch, match="duplicate columns \\['ward'\\]"):
        LEGACY_REQUESTS.match_generation([*V1, "ward"])


def test_codes_stay_strings_and_ids_follow_the_source():
    types = LEGACY_REQUESTS.generations[0].types
    assert types["location_zipcode"] == types["ward"] == types["precinct"] == "VARCHAR"
    assert types["case_enquiry_id"] == "BIGINT" and types["latitude"] == "DOUBLE"
    new = NEW_SYSTEM_REQUESTS.generations[0].types
    assert new["case_id"] == "VARCHAR" and new["open_date"] == "TIMESTAMPTZ" and new["zip_code"] == "VARCHAR"


@pytest.mark.parametrize(
    "name,year",
    [
        ("311 SERVICE REQUESTS - 2022", "2022"),
        ("311 Service Requests - 2023", "2023"),
        ("311 service requests - 2011", "2011"),
    ],
)
def test_yearly_resource_names_resolve_case_insensitively(name, year):
    assert LEGACY_REQUESTS.resource_pattern.match(name)["year"] == year


def test_new_system_name_does_not_match_its_data_dictionary():
    assert NEW_SYSTEM_REQUESTS.resource_pattern.match("311 Service Requests - NEW SYSTEM")
    assert not NEW_SYSTEM_REQUESTS.resource_pattern.match("311 Service Requests Data Dictionary - NEW SYSTEM")
    assert not LEGACY_REQUESTS.resource_pattern.match("311 Service Requests - NEW SYSTEM")
