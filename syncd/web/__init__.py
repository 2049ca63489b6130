"""The HTTP side of syncd: health, metrics, status, OpenAPI, and (later) vendor intake."""
