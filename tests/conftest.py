"""Every test module gets the shared fixtures of shared_fixtures.py (a real broker, a real local Spark)."""

pytest_plugins = ["shared_fixtures"]
