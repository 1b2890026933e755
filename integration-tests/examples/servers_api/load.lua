-- wrk script for load.sh: GET /servers/{id} with a hot set, a per-100-ms timeline of answers,
-- and a one-line JSON summary written to $LOAD_OUT when wrk is done.
--
-- Ids: with probability LOAD_HOT_SHARE (0.8) one of the first LOAD_HOT_IDS (1000) ids, else
-- any of the LOAD_IDS (10000) seeded ids, uniformly. Every id exists, so any status other than
-- 2xx is a failure of the service.

local ffi = require("ffi")
pcall(ffi.cdef, [[
typedef struct { long tv_sec; long tv_nsec; } load_timespec;
int clock_gettime(int clk_id, load_timespec *tp);
]])
local ts = ffi.new("load_timespec")

-- Wall-clock milliseconds (CLOCK_REALTIME), to line the timeline up with the kill in load.sh.
local function now_ms()
  ffi.C.clock_gettime(0, ts)
  return tonumber(ts.tv_sec) * 1000 + math.floor(tonumber(ts.tv_nsec) / 1e6)
end

local ids = tonumber(os.getenv("LOAD_IDS") or "10000")
local hot_ids = tonumber(os.getenv("LOAD_HOT_IDS") or "1000")
local hot_share = tonumber(os.getenv("LOAD_HOT_SHARE") or "0.8")

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("thread_no", counter)
  table.insert(threads, thread)
end

-- Per thread: answers and failures per 100 ms bucket (key: epoch ms / 100).
ok_by_tick = {}
bad_by_tick = {}

function init(args)
  math.randomseed(os.time() * 1000 + (thread_no or 0) * 7919)
end

function request()
  local id
  if math.random() < hot_share then
    id = math.random(1, hot_ids)
  else
    id = math.random(1, ids)
  end
  return wrk.format("GET", "/servers/" .. id)
end

function response(status, headers, body)
  local tick = math.floor(now_ms() / 100)
  if status >= 200 and status < 300 then
    ok_by_tick[tick] = (ok_by_tick[tick] or 0) + 1
  else
    bad_by_tick[tick] = (bad_by_tick[tick] or 0) + 1
  end
end

local function merge(into, from)
  for k, v in pairs(from or {}) do
    into[k] = (into[k] or 0) + v
  end
end

function done(summary, latency, requests)
  local ok, bad = {}, {}
  for _, t in ipairs(threads) do
    merge(ok, t:get("ok_by_tick"))
    merge(bad, t:get("bad_by_tick"))
  end
  local ticks = {}
  for k in pairs(ok) do ticks[#ticks + 1] = k end
  for k in pairs(bad) do if not ok[k] then ticks[#ticks + 1] = k end end
  table.sort(ticks)
  local timeline = {}
  for _, k in ipairs(ticks) do
    timeline[#timeline + 1] = string.format("[%d,%d,%d]", k * 100, ok[k] or 0, bad[k] or 0)
  end
  local e = summary.errors
  local line = string.format(
    '{"duration_us":%d,"requests":%d,"rps":%.1f,"p50_us":%d,"p90_us":%d,"p99_us":%d,'
      .. '"p999_us":%d,"max_us":%d,"mean_us":%.1f,"non2xx":%d,"connect_errors":%d,'
      .. '"read_errors":%d,"write_errors":%d,"timeouts":%d,"timeline":[%s]}',
    summary.duration, summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean, e.status, e.connect, e.read,
    e.write, e.timeout, table.concat(timeline, ","))
  local path = os.getenv("LOAD_OUT")
  if path and path ~= "" then
    local f = assert(io.open(path, "w"))
    f:write(line, "\n")
    f:close()
  end
end
