"""Gold: the answer tables, a year per partition, kept current by automation conditions."""

from boston_lake.defs.gold.assets import GOLD_ASSETS, GOLD_AUTOMATION, GOLD_JOB, gold_key

__all__ = ["GOLD_ASSETS", "GOLD_AUTOMATION", "GOLD_JOB", "gold_key"]
