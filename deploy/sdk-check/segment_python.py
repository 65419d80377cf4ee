"""Segment's Python SDK, as an application would use it, once plain and once
gzipped. Event types carry the run's tag so the check can find them."""
import sys

import segment.analytics as analytics

gateway, key, tag = sys.argv[1:4]
errors = []
analytics.write_key = key
analytics.host = gateway
analytics.on_error = lambda error, batch: errors.append(repr(error))
for gzip in (False, True):
    analytics.gzip = gzip
    name = f"{tag} python {'gzip' if gzip else 'plain'}"
    analytics.track("sdk-user", f"{name} track", {"revenue": 39.95, "nested": {"a": [1, 2]}})
    analytics.page("sdk-user", "Docs", f"{name} page", {"url": "https://example.com/docs"})
    analytics.track(anonymous_id="sdk-anon", event=f"{name} anonymous")
    analytics.flush()
analytics.shutdown()
if errors:
    sys.exit(f"segment-analytics-python: {errors}")
