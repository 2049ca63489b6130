-- wrk script for `bench ingest`: NeoLock push bodies, every request with an id of its own.
-- Arguments (after `--`): TEMPLATES_FILE RUN_TAG. Each line of TEMPLATES_FILE is a push body
-- cut where its id goes: the text before the id, a tab, the text after it. The id is
-- RUN_TAG-THREAD-N, so no two pushes of a run, nor of two runs with different tags, share one.
-- done() prints one JSON line: requests, duration, latency percentiles (microseconds), errors,
-- and the answers read: 200s, and 200s whose body says "stored".

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("index", counter)
  table.insert(threads, thread)
end

-- globals: done() reads ok and stored through thread:get()
ok, stored = 0, 0
local prefixes, suffixes, tag, n = {}, {}, "", 0
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  for line in io.lines(args[1]) do
    local tab = string.find(line, "\t", 1, true)
    table.insert(prefixes, string.sub(line, 1, tab - 1))
    table.insert(suffixes, string.sub(line, tab + 1))
  end
  tag = args[2] .. "-" .. tostring(index) .. "-"
end

function request()
  n = n + 1
  local i = n % #prefixes + 1
  return wrk.format("POST", nil, headers, prefixes[i] .. tag .. n .. suffixes[i])
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
    if string.find(body, '"stored"', 1, true) then
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
