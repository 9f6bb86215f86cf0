"""Silver: the conformed table of every case, built on DuckDB or as a Glue job, its checks and the sensor that
rebuilds the years a bronze change reaches."""

from boston_lake.defs.silver.assets import SILVER_ASSETS
from boston_lake.defs.silver.sensors import SILVER_JOBS, SILVER_SENSORS

__all__ = ["SILVER_ASSETS", "SILVER_JOBS", "SILVER_SENSORS"]
