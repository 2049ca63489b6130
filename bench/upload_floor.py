"""`python -m bench.upload_floor URL DSN`: the hand-built floor `uploads` measures syncd against.

Fetches every page of NeoLock's uploads listing (1,000 rows, one after another, plain aiohttp),
`json.loads` each, and writes them all in one transaction: one asyncpg COPY into a temp table and
one `INSERT … ON CONFLICT … DO UPDATE … WHERE … IS DISTINCT FROM` into vendor.phone_uploads.
Nothing else: no pacing, no retries, no cursor, no validation. It runs as a process of its own,
so it pays interpreter start-up and its imports (aiohttp, asyncpg) as `syncd sync --once` does;
it imports nothing of syncd. Prints one JSON line: seconds inside the process, rows, rows
written, requests.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
from typing import Any

import aiohttp
import asyncpg

from bench.memsync import SIM_LOGIN, SIM_PASSWORD

PAGE = 1000
COLUMNS = ("provider", "device_uid", "upload_id", "row_id", "imei", "imei2", "serial", "model",
           "upload_status", "status", "raw")
MERGE = f"""
INSERT INTO vendor.phone_uploads AS t ({', '.join(COLUMNS)}, first_seen_at, last_seen_at,
    last_changed_at)
SELECT {', '.join(COLUMNS)}, now(), now(), now() FROM floor_stage
ON CONFLICT (provider, device_uid, upload_id) DO UPDATE SET
    {', '.join(f'{c} = EXCLUDED.{c}' for c in COLUMNS[3:])}, last_seen_at = EXCLUDED.last_seen_at,
    last_changed_at = EXCLUDED.last_changed_at
WHERE ROW({', '.join(f't.{c}' for c in COLUMNS[3:])})
    IS DISTINCT FROM ROW({', '.join(f'EXCLUDED.{c}' for c in COLUMNS[3:])})
"""


async def floor(url: str, dsn: str) -> dict[str, Any]:
    """Fetch every page, one COPY, one merge, one transaction. Seconds, rows, written, requests."""
    began = time.perf_counter()
    basic = base64.b64encode(f"{SIM_LOGIN}:{SIM_PASSWORD}".encode()).decode()
    rows: list[tuple[Any, ...]] = []
    async with aiohttp.ClientSession() as session:
        async with session.get(url + "/clients/token",
                               headers={"Authorization": f"Basic {basic}"}) as resp:
            answer = json.loads(await resp.read())
        token = (answer.get("data") or answer)["access_token"]
        page = 0
        while True:
            async with session.get(url + "/clients/devices/uploads",
                                   params={"pageNum": str(page), "pageSize": str(PAGE)},
                                   headers={"x-knox-apitoken": token}) as resp:
                data = json.loads(await resp.read())["data"]
            rows.extend(("neolock", r["deviceUid"], r.get("uploadID") or "", r.get("id"),
                         r.get("imei"), r.get("imei2"), r.get("serial"), r.get("model"),
                         r.get("uploadStatus"), r.get("status"), r) for r in data)
            if len(data) < PAGE:
                break
            page += 1
    conn = await asyncpg.connect(dsn)
    try:
        await conn.set_type_codec("jsonb", encoder=lambda v: b"\x01" + json.dumps(v).encode(),
                                  decoder=lambda b: json.loads(b[1:]), schema="pg_catalog",
                                  format="binary")
        async with conn.transaction():
            await conn.execute("CREATE TEMP TABLE floor_stage ON COMMIT DROP AS SELECT "
                               f"{', '.join(COLUMNS)} FROM vendor.phone_uploads WITH NO DATA")
            await conn.copy_records_to_table("floor_stage", records=rows, columns=COLUMNS)
            status = await conn.execute(MERGE)
    finally:
        await conn.close()
    return {"seconds": time.perf_counter() - began, "rows": len(rows),
            "written": int(status.split()[-1]), "requests": page + 2}


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print("usage: python -m bench.upload_floor URL DSN", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(asyncio.run(floor(sys.argv[1], sys.argv[2]))))
