-- wrk script for bench/headroom.py: the request from the environment, a JSON line at the end.
wrk.method = os.getenv("HEADROOM_METHOD") or "GET"
local body = os.getenv("HEADROOM_BODY") or ""
if body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'HEADROOM {"requests": %d, "duration_us": %d, "errors": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
