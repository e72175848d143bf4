-- wrk script for bench/load/run. The request comes from the environment, so one script
-- serves every case: LOAD_METHOD (default GET), LOAD_BODY (JSON body; sets the content
-- type), LOAD_AUTH (the Authorization header value). When wrk finishes, one line
-- "LOADJSON {...}" carries the counts and latency percentiles (microseconds) for the
-- harness to parse; wrk's own summary is printed as usual.
wrk.method = os.getenv("LOAD_METHOD") or "GET"
local body = os.getenv("LOAD_BODY")
if body and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end
local auth = os.getenv("LOAD_AUTH")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = auth
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'LOADJSON {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"mean_us":%.1f,"max_us":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,' ..
    '"non_2xx_3xx":%d,"timeouts":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
