"""Real bronze Parquet made from the bundled portal samples by the real converter, for crawler and query tests.

The samples are converted once per session; each test gets its own lake folder to publish them into.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from boston_lake.lake import layout
from boston_lake.lake.catalog.local import LocalCatalog
from boston_lake.lake.stores import LocalObjectStore
from boston_lake.lake.tables import LEGACY_REQUESTS, NEW_SYSTEM_REQUESTS
from boston_lake.lake.zones.bronze import convert_csv
from boston_lake.sample_portal.server import DATA_DIR


@dataclass(frozen=True)
class BronzeSample:
    table: str
    year: int
    path: Path
    rows: int
    generation: str


@dataclass(frozen=True)
class BronzeSamples:
    legacy_v1_2022: BronzeSample
    legacy_v2_2013: BronzeSample
    legacy_v2_2023: BronzeSample
    new_system_2025: BronzeSample
    new_system_2026: BronzeSample

    @property
    def legacy(self) -> tuple[BronzeSample, ...]:
        return (self.legacy_v2_2013, self.legacy_v1_2022, self.legacy_v2_2023)

    @property
    def new_system(self) -> tuple[BronzeSample, ...]:
        return (self.new_system_2025, self.new_system_2026)


def bronze_publish(store: LocalObjectStore, sample: BronzeSample, file_name: str = layout.BRONZE_FILE) -> str:
    """Put a sample where the bronze zone keeps its year; returns the key."""
    key = layout.bronze_partition_prefix(sample.table, sample.year) + file_name
    store.publish(sample.path, key)
    return key


def listed_twice(sample: BronzeSample, folder: Path, cases: int = 5) -> BronzeSample:
    """The sample with its first `cases` rows listed again at the end of the file, the same but for a new case
    title: copies that tie on every dedupe rule but their row."""
    table = pq.read_table(sample.path)
    again = table.slice(0, cases)
    titles = pa.array([f"listed again {n}" for n in range(cases)])
    again = again.set_column(again.schema.get_field_index("case_title"), "case_title", titles)
    path = folder / f"listed_twice_{sample.table}_{sample.year}.parquet"
    pq.write_table(pa.concat_tables([table, again]), path)
    return BronzeSample(sample.table, sample.year, path, sample.rows + cases, sample.generation)


@pytest.fixture(scope="session")
def bronze_samples(tmp_path_factory: pytest.TempPathFactory) -> BronzeSamples:
    folder = tmp_path_factory.mktemp("bronze_samples")

    def legacy(csv_name: str, year: int) -> BronzeSample:
        path = folder / f"legacy_{year}.parquet"
        conversion = convert_csv(DATA_DIR / csv_name, path, LEGACY_REQUESTS)
        assert not conversion.rejects, conversion.rejects
        return BronzeSample(LEGACY_REQUESTS.name, year, path, conversion.rows, conversion.generation.name)

    whole = folder / "new_system_all.parquet"
    conversion = convert_csv(
        DATA_DIR / "new_system_2025-08_to_2026-02_soham-bhagwat_api_extract.csv", whole, NEW_SYSTEM_REQUESTS
    )
    assert not conversion.rejects, conversion.rejects
    rows = pq.read_table(whole)

    def new_system(year: int) -> BronzeSample:
        """The NEW SYSTEM file split by the year of open_date, as the raw zone splits it."""
        path = folder / f"new_system_{year}.parquet"
        part = rows.filter(pc.equal(pc.year(rows["open_date"]), year))
        pq.write_table(part, path, compression="zstd")
        return BronzeSample(NEW_SYSTEM_REQUESTS.name, year, path, part.num_rows, conversion.generation.name)

    return BronzeSamples(
        legacy_v1_2022=legacy("legacy_v1_2022-01_qsv_boston311-100.csv", 2022),
        legacy_v2_2013=legacy("legacy_v2_2013_bu-spark_filtered_every4th.csv", 2013),
        legacy_v2_2023=legacy("legacy_v2_2023_bu-spark_animal_reports_every5th.csv", 2023),
        new_system_2025=new_system(2025),
        new_system_2026=new_system(2026),
    )


@pytest.fixture
def bronze_store(tmp_path: Path) -> LocalObjectStore:
    """An empty lake zone of its own for each test."""
    return LocalObjectStore(tmp_path / "lake")


@pytest.fixture
def bronze_catalog(tmp_path: Path) -> LocalCatalog:
    return LocalCatalog(tmp_path / "catalog" / "catalog.sqlite")


@pytest.fixture
def bronze_lake(bronze_store: LocalObjectStore, bronze_samples: BronzeSamples) -> LocalObjectStore:
    """Every sample published at its bronze key: legacy 2013 (v2), 2022 (v1), 2023 (v2); NEW SYSTEM 2025, 2026."""
    for sample in bronze_samples.legacy + bronze_samples.new_system:
        bronze_publish(bronze_store, sample)
    return bronze_store
