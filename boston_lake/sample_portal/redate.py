"""Build the sample portal's legacy years that have no real extract from real rows of the same generation.

Every legacy year the assets declare must be downloadable so the demo lake is whole, yet real rows exist only
for 2013, 2022 and 2023. The city republished every year in legacy v2 (see lake/tables.py), so a missing year
gets every `EVERY_NTH` row of the nearest real v2 extract, re-dated: every date (the date columns and the
`Closed date : …` text the CRM writes into `closure_reason`) moves by the same number of calendar years, and
case ids move by `ID_STRIDE` per year so that no re-dated case meets a real one or another year's.

`python -m boston_lake.sample_portal.redate` rewrites the files and portal.json; a test checks that the bundled
files are exactly what it builds.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from boston_lake.sample_portal.server import DATA_DIR

# Real legacy v2 extracts by year; a year without one is re-dated from the nearest (the earlier on a tie).
REAL_V2_EXTRACTS = {
    2013: "legacy_v2_2013_bu-spark_filtered_every4th.csv",
    2023: "legacy_v2_2023_bu-spark_animal_reports_every5th.csv",
}
REAL_YEARS = (2013, 2022, 2023)  # 2022 is the real legacy v1 extract
EVERY_NTH = 5  # 140 of an extract's 700 rows: small, and still every kind of case in it
ID_STRIDE = 10_000_000  # wider than any year's id range in the extracts, so re-dated ids never collide
DATE_COLUMNS = ("open_dt", "sla_target_dt", "closed_dt")
_CLOSED_DATE_TEXT = re.compile(r"(Closed date : )(\d{4})(-\d\d-\d\d)")
_PACKAGE_NAME = re.compile(r"^311 service requests - (\d{4})$", re.IGNORECASE)


def nearest_source_year(year: int) -> int:
    return min(REAL_V2_EXTRACTS, key=lambda source: (abs(source - year), source))


def shift_date(value: str, years: int) -> str:
    """`2013-05-02 10:00:00` moved by `years` calendar years; empty stays empty (no extract has a 29 February)."""
    return f"{int(value[:4]) + years:04d}{value[4:]}" if value.strip() else value


def redate(source_csv: str, source_year: int, year: int) -> str:
    """Every `EVERY_NTH` row of `source_csv` moved from `source_year` to `year`, written as pandas wrote them."""
    years = year - source_year
    reader = csv.DictReader(io.StringIO(source_csv, newline=""))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(reader.fieldnames or []), lineterminator="\n")
    writer.writeheader()
    for number, row in enumerate(reader):
        if number % EVERY_NTH:
            continue
        row["case_enquiry_id"] = str(int(row["case_enquiry_id"]) + years * ID_STRIDE)
        for column in DATE_COLUMNS:
            row[column] = shift_date(row[column], years)
        row["closure_reason"] = _CLOSED_DATE_TEXT.sub(
            lambda m: f"{m[1]}{int(m[2]) + years:04d}{m[3]}", row["closure_reason"]
        )
        writer.writerow(row)
    return out.getvalue()


def write_redated_year(data_dir: Path, year: int) -> str:
    """Write `year` re-dated from its nearest real v2 extract into `data_dir`; returns the file's name."""
    source_year = nearest_source_year(year)
    name = f"legacy_v2_{year}_redated_from_{source_year}.csv"
    source = (data_dir / REAL_V2_EXTRACTS[source_year]).read_text(encoding="utf-8")
    (data_dir / name).write_text(redate(source, source_year, year), encoding="utf-8", newline="")
    return name


def legacy_resource_ids(package: dict) -> dict[int, str]:
    """The package's legacy yearly CSV resources by year."""
    years = {}
    for resource in package["resources"]:
        match = _PACKAGE_NAME.match(resource.get("name") or "")
        if match and resource.get("format") == "CSV":
            years[int(match[1])] = resource["id"]
    return years


def build_redated_years(data_dir: Path = DATA_DIR) -> dict[str, str]:
    """Write a re-dated file for every legacy year of the package without a real extract; returns
    portal.json's files_by_resource_id for the real and re-dated files together."""
    config = json.loads((data_dir / "portal.json").read_text())
    package = json.loads((data_dir / config["package"]).read_text())["result"]
    files = {
        resource_id: name
        for resource_id, name in config["files_by_resource_id"].items()
        if "_redated_from_" not in name
    }
    for year, resource_id in sorted(legacy_resource_ids(package).items()):
        if year in REAL_YEARS:
            continue
        files[resource_id] = write_redated_year(data_dir, year)
    return files


def main() -> None:
    config_path = DATA_DIR / "portal.json"
    config = json.loads(config_path.read_text())
    config["files_by_resource_id"] = build_redated_years(DATA_DIR)
    config_path.write_text(json.dumps(config, indent=2) + "\n")


if __name__ == "__main__":
    main()
