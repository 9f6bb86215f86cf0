"""The silver zone: every 311 case once, in one conformed model, built by one SQL text on DuckDB or Spark."""
