"""Constants shared by the meter_bridge tests (a uniquely named module: test folders share
sys.path)."""

from meter_bridge import RetryPolicy

# Retries fast enough for tests, still exponential.
FAST_RETRY = RetryPolicy(attempts=3, backoff_s=0.02, backoff_max_s=0.08)
TIMEOUT_S = 0.3
