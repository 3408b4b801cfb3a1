-- The wrk script for benches/compare.sh: adds the scenario's request headers and, at the end,
-- prints one machine-readable RESULT line that compare.sh parses (counts, latency percentiles
-- and every kind of error), so nothing depends on the layout of wrk's human-readable summary.
--
-- Environment:
--   BENCH_HEADERS        "name: value|name: value" added to every request
--   BENCH_RANDOM_HEADER  a header set to a random user id on each request (the sticky split);
--                        this makes wrk build each request in Lua, which costs the load core a
--                        little, the same for every target
--   BENCH_METHOD         the method, GET unless set (benches/webhooks.sh: POST)
--   BENCH_BODY           the request body, none unless set (wrk adds its Content-Length)

local method = os.getenv("BENCH_METHOD") or ""
if method ~= "" then
  wrk.method = method
end
local body = os.getenv("BENCH_BODY") or ""
if body ~= "" then
  wrk.body = body
end

for pair in string.gmatch(os.getenv("BENCH_HEADERS") or "", "[^|]+") do
  local name, value = pair:match("^%s*([^:]-)%s*:%s*(.-)%s*$")
  if name and name ~= "" then
    wrk.headers[name] = value
  end
end

local random_header = os.getenv("BENCH_RANDOM_HEADER") or ""
if random_header ~= "" then
  -- Only defined when needed: wrk sends a request pre-built once when there is no request().
  math.randomseed(os.time())
  request = function()
    wrk.headers[random_header] = "user-" .. math.random(1, 1000000)
    return wrk.format()
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
