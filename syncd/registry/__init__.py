"""The app device registry: POST /v2/device, GET /api/base/configs, and device bans."""
