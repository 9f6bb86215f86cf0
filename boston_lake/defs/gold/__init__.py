"""Gold: the answer tables, a year per partition, kept current by automation conditions, and a gold run that
failed or was canceled requested again."""

from boston_lake.defs.gold.assets import GOLD_ASSETS, GOLD_AUTOMATION, GOLD_JOB, gold_key
from boston_lake.defs.gold.sensors import retry_undone_gold

GOLD_SENSORS = [GOLD_AUTOMATION, retry_undone_gold]

__all__ = ["GOLD_ASSETS", "GOLD_JOB", "GOLD_SENSORS", "gold_key"]
