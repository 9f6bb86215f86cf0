from pathlib import Path

import pytest

from boston_lake.lake.aws.resources import ProvisionConfig
from boston_lake.lake.settings import DEFAULT_PORTAL_URL, RoleArn, Settings, SettingsError, readme_table
from boston_lake.lake.targets import AwsTarget


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


@pytest.mark.parametrize(
    "url, why",
    [
        ("data.boston.gov", "is not an http"),
        ("ftp://data.boston.gov", "is not an http"),
        ("http://", "is not an http"),
        ("http://:8080", "is not an http"),
        ("http://host:99999", "has a bad port"),
        ("http://host:http", "has a bad port"),
        ("http://host:", "has an empty or zero port"),
        ("http://host:0/", "has an empty or zero port"),
    ],
)
def test_malformed_portal_url_names_the_variable_the_value_and_what_is_wrong(url, why):
    with pytest.raises(SettingsError, match=f"BOSTON_LAKE_PORTAL_URL='{url}' {why}"):
        Settings.from_env({"BOSTON_LAKE_PORTAL_URL": url})


def test_a_portal_url_with_a_port_is_kept():
    assert Settings.from_env({"BOSTON_LAKE_PORTAL_URL": "http://127.0.0.1:8311/"}).portal_url == "http://127.0.0.1:8311"


def test_the_lake_home_is_a_folder_that_exists_or_can_be_created(tmp_path):
    assert Settings.from_env({"BOSTON_LAKE_HOME": str(tmp_path / "new" / "lake")}).home == tmp_path / "new" / "lake"
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(SettingsError, match=f"BOSTON_LAKE_HOME='{tmp_path / 'file'}' is not a folder"):
        Settings.from_env({"BOSTON_LAKE_HOME": str(tmp_path / "file")})
    with pytest.raises(SettingsError, match="does not exist and cannot be created: .*file is not a folder"):
        Settings.from_env({"BOSTON_LAKE_HOME": str(tmp_path / "file" / "lake")})


AWS = {
    "BOSTON_LAKE_TARGET": "aws",
    "AWS_REGION": "us-east-1",
    "BOSTON_LAKE_RAW_BUCKET": "raw-a",
    "BOSTON_LAKE_LAKE_BUCKET": "lake-a",
    "BOSTON_LAKE_CODE_BUCKET": "code-a",
}


def test_a_role_arn_is_kept_whole_with_its_path():
    arn = "arn:aws:iam::123456789012:role/service-role/x"
    aws = Settings.from_env({**AWS, "BOSTON_LAKE_GLUE_ROLE_ARN": arn}).aws
    assert aws and aws.role == RoleArn(arn=arn, name="x", path="/service-role/")
    config = ProvisionConfig.from_settings(aws)
    assert (config.role_name, config.role_path) == ("x", "/service-role/")


def test_the_silver_job_and_its_role_are_named_by_settings():
    named = {"BOSTON_LAKE_SILVER_JOB_NAME": "lake-silver-prod", "BOSTON_LAKE_SILVER_JOB_ROLE_NAME": "lake-silver-role"}
    aws = Settings.from_env({**AWS, **named}).aws
    config = ProvisionConfig.from_settings(aws)
    assert (config.silver_job_name, config.silver_role_name) == ("lake-silver-prod", "lake-silver-role")
    assert AwsTarget(aws).silver_glue_job().job.name == "lake-silver-prod"
    default = Settings.from_env(AWS).aws
    assert (default.silver_job_name, default.silver_role_name) == ("boston-lake-silver", "boston-lake-glue-silver-job")


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"BOSTON_LAKE_SILVER_JOB_NAME": "silver job"}, r"BOSTON_LAKE_SILVER_JOB_NAME='silver job' is not a Glue job"),
        ({"BOSTON_LAKE_SILVER_JOB_ROLE_NAME": "a/b"}, r"BOSTON_LAKE_SILVER_JOB_ROLE_NAME='a/b' is not an IAM role"),
        ({"BOSTON_LAKE_GLUE_ROLE_ARN": "role/x"}, r"BOSTON_LAKE_GLUE_ROLE_ARN='role/x' is not an IAM role ARN"),
        ({"BOSTON_LAKE_RAW_BUCKET": "Raw_A"}, r"BOSTON_LAKE_RAW_BUCKET='Raw_A' is not an S3 bucket name"),
        ({"BOSTON_LAKE_CODE_BUCKET": "lake-a"}, "must name three different buckets"),
        ({"BOSTON_LAKE_CRAWLER": "spark"}, r"BOSTON_LAKE_CRAWLER='spark' is not a crawler mode; use one of direct"),
        ({"BOSTON_LAKE_KMS_KEY_ID": "alias/lake", "BOSTON_LAKE_SSE": "aws:kms"}, "cannot grant on an alias"),
        ({"BOSTON_LAKE_KMS_KEY_ID": "mrk-" + "0" * 32}, "needs BOSTON_LAKE_SSE=aws:kms"),
        ({"BOSTON_LAKE_ATHENA_OUTPUT": "results/"}, r"BOSTON_LAKE_ATHENA_OUTPUT='results/' is not an s3://"),
        ({"AWS_ENDPOINT_URL": "localhost:5000"}, r"AWS_ENDPOINT_URL='localhost:5000' is not an http\(s\) URL"),
        ({"AWS_REGION": " "}, "needs a region"),
        ({"BOSTON_LAKE_LAKE_BUCKET": ""}, "needs BOSTON_LAKE_LAKE_BUCKET"),
    ],
)
def test_a_bad_aws_setting_is_refused_naming_its_variable(variables, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({**AWS, **variables})


def test_region_variables_in_their_order_of_precedence():
    assert Settings.from_env({**AWS, "AWS_REGION": "", "AWS_DEFAULT_REGION": "eu-west-1"}).aws.region == "eu-west-1"
    both = {**AWS, "AWS_DEFAULT_REGION": "eu-west-1", "BOSTON_LAKE_AWS_REGION": "eu-central-1"}
    assert Settings.from_env(both).aws.region == "eu-central-1"


@pytest.mark.parametrize("aws", [False, True], ids=["general", "aws"])
def test_docs_configuration_tables_are_the_declarations(aws):
    page = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert readme_table(aws) in page


def test_one_duckdb_memory_limit_by_default_for_every_build():
    from boston_lake.lake.settings import DUCKDB_MEMORY_LIMIT
    from boston_lake.lake.zones.bronze import ConverterSettings
    from boston_lake.lake.zones.silver.duckdb_build import SilverSettings

    assert Settings.from_env({}).duckdb_memory_limit == DUCKDB_MEMORY_LIMIT == "192MB"
    assert ConverterSettings().memory_limit == SilverSettings().memory_limit == DUCKDB_MEMORY_LIMIT


@pytest.mark.parametrize("text", ["1GB", "256MB", "1.5GB", "512MiB", "2gb", "1MB"])
def test_a_duckdb_memory_limit_is_read_as_written(text):
    assert Settings.from_env({"BOSTON_LAKE_DUCKDB_MEMORY_LIMIT": text}).duckdb_memory_limit == text


@pytest.mark.parametrize(
    "text, why",
    [
        ("1024", "is not a memory size"),
        ("lots", "is not a memory size"),
        ("1 PB", "is not a memory size"),
        ("0MB", "is less than 1MB"),
        ("500KB", "is less than 1MB"),
    ],
)
def test_a_bad_duckdb_memory_limit_names_the_variable(text, why):
    with pytest.raises(SettingsError, match=f"BOSTON_LAKE_DUCKDB_MEMORY_LIMIT='{text}' {why}"):
        Settings.from_env({"BOSTON_LAKE_DUCKDB_MEMORY_LIMIT": text})


def test_the_shrink_limit_is_a_percentage_with_an_override_per_table():
    settings = Settings.from_env({"BOSTON_LAKE_MAX_SHRINK": "5%", "BOSTON_LAKE_MAX_SHRINK_SERVICE_REQUESTS": "0.5%"})
    assert settings.max_shrink_of("legacy_requests") == settings.max_shrink_of("new_system_requests") == 0.05
    assert settings.max_shrink_of("service_requests") == 0.005
    assert Settings.from_env({}).max_shrink_of("legacy_requests") == 0.02
    for text, why in [("2", "is not a percentage such as 2% or 0.5%"), ("150%", "is more than 100%")]:
        with pytest.raises(SettingsError, match=f"BOSTON_LAKE_MAX_SHRINK_LEGACY_REQUESTS='{text}' {why}"):
            Settings.from_env({"BOSTON_LAKE_MAX_SHRINK_LEGACY_REQUESTS": text})
