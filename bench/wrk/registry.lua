-- wrk script for `bench registry`: app registrations, every one with a MAC of its own.
-- Arguments (after `--`): RUN (0-255). The MAC of request N of thread T is RUN, T and N as
-- 2 + 2 + 8 hex digits (N from 1: never a placeholder MAC such as 02:00:00:00:00:00), so no two
-- registrations of a run, nor of two runs with different RUN, share one. A tenth of the bodies
-- carry another app_version. done() prints one JSON line like ingest.lua's; "stored" counts
-- 200 answers whose body says "Success".

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("index", counter)
  table.insert(threads, thread)
end

-- globals: done() reads ok and stored through thread:get()
ok, stored = 0, 0
local run, n = 0, 0
local headers = { ["Content-Type"] = "application/json" }
local os_names = { { "iOS", "17.4" }, { "Android", "14" }, { "iOS", "16.7" }, { "Android", "13" } }

function init(args)
  run = tonumber(args[1])
end

function request()
  n = n + 1
  local hex = string.format("%02X%02X%08X", run, index, n)
  local mac = string.gsub(hex, "(%x%x)", "%1:"):sub(1, 17)
  local pair = os_names[n % #os_names + 1]
  local body = string.format(
    '{"mac_address": "%s", "device_os": "%s", "device_version": "%s", "device_type": "Mobile", '
    .. '"app_version": "%s", "app_name": "MyApp"}',
    mac, pair[1], pair[2], (n % 10 == 0) and "2.1" or "2.0")
  return wrk.format("POST", nil, headers, body)
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
    if string.find(body, '"Success"', 1, true) then
      stored = stored + 1
    end
  end
end

function done(summary, latency, requests)
  local ok_all, stored_all = 0, 0
  for _, thread in ipairs(threads) do
    ok_all = ok_all + thread:get("ok")
    stored_all = stored_all + thread:get("stored")
  end
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "ok": %d, "stored": %d, '
    .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    ok_all, stored_all, e.connect, e.read, e.write, e.status, e.timeout))
end
