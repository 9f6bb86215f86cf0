import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from boston_lake.lake.stores import STAGING_DIR, LocalObjectStore, ObjectNotFound, StoreError
from boston_lake_tests.support.killed_run import workspace_holder


@pytest.fixture
def store(tmp_path):
    return LocalObjectStore(tmp_path / "zone")


def test_put_get_list_delete(store):
    store.put_bytes("a/b/one.txt", b"1")
    store.put_bytes("a/two.txt", b"22")
    assert store.get_bytes("a/b/one.txt") == b"1"
    assert [(o.key, o.size) for o in store.list("a/")] == [("a/two.txt", 2), ("a/b/one.txt", 1)]
    store.delete("a/two.txt")
    assert not store.exists("a/two.txt")
    with pytest.raises(ObjectNotFound, match="a/two.txt"):
        store.get_bytes("a/two.txt")


def test_staging_is_invisible_to_listings(store):
    with store.scratch_file() as scratch:
        scratch.write_bytes(b"half written")
        assert list(store.list("")) == []
        assert scratch.parent.name == STAGING_DIR


def test_writing_publishes_only_when_the_block_finishes(store):
    store.put_bytes("k.bin", b"old")
    with pytest.raises(RuntimeError):
        with store.writing("k.bin") as staged:
            staged.write_bytes(b"new but broken")
            raise RuntimeError("writer died")
    assert store.get_bytes("k.bin") == b"old"
    assert os.listdir(store.root / STAGING_DIR) == []


def test_publish_replaces_atomically_and_copy_keeps_the_source(store, tmp_path):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"v2")
    store.put_bytes("x/v.bin", b"v1")
    store.copy("x/v.bin", "x/_history/v.bin")
    store.publish(outside, "x/v.bin")
    assert store.get_bytes("x/v.bin") == b"v2" and store.get_bytes("x/_history/v.bin") == b"v1"


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", ".."])
def test_malformed_keys_are_refused(store, key):
    with pytest.raises(StoreError, match="malformed"):
        store.path(key)


def test_arrow_filesystem_opens_objects(store):
    with store.writing("t/part.parquet") as staged:
        pq.write_table(pa.table({"x": [1, 2, 3]}), staged)
    filesystem, base = store.arrow_filesystem()
    assert pq.ParquetFile(filesystem.open_input_file(f"{base}/t/part.parquet")).metadata.num_rows == 3


def test_listing_matches_key_prefixes_as_s3_does(store):
    store.put_bytes("raw/t/a.csv", b"1")
    store.put_bytes("raw/tt/b.csv", b"2")
    store.put_bytes("raw/u.csv", b"3")
    assert [o.key for o in store.list("raw/t")] == ["raw/t/a.csv", "raw/tt/b.csv"]
    assert [o.key for o in store.list("raw/t/")] == ["raw/t/a.csv"]
    assert [o.key for o in store.list("raw/u")] == ["raw/u.csv"]
    assert [o.key for o in store.list("nothing/")] == []


def test_a_workspace_whose_holder_was_killed_is_reported_until_the_next_claim(store):
    name = "bronze.legacy_requests.2022"
    with workspace_holder(store.root, name) as holder:
        assert store.leftovers() == ()  # a live run's staging is not debris
        holder.kill()
        holder.wait(timeout=60)
        (leftover,) = store.leftovers()
    assert leftover.location == str(store.root / STAGING_DIR / name)
    assert f"left by a killed run (pid {holder.pid} since " in leftover.description
    assert "1 staged files; the next run of bronze.legacy_requests.2022 removes them" in leftover.description
    with store.workspace(name) as work:
        assert work.swept == [f"{name}/staged.parquet"]
    assert store.leftovers() == ()
