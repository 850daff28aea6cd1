-- wrk: each thread (one connection each: -t N -c N) updates its own Patient
-- with If-Match, the ETag taken from the previous answer (a GET first).
--   wrk ... -s fhir_update.lua URL -- /fhir/Patient/bench-
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("n", counter)
end
local prefix, path, id, etag
local failed = 0
function init(args)
  prefix = args[1]
  id = "bench-" .. n
  path = prefix .. n
end
function request()
  if etag == nil then return wrk.format("GET", path) end
  local body = '{"resourceType":"Patient","id":"' .. id .. '","active":true,' ..
    '"name":[{"family":"Benchmark","given":["Update"]}]}'
  return wrk.format("PUT", path, {["Content-Type"] = "application/fhir+json",
                                  ["If-Match"] = etag, ["Prefer"] = "return=minimal"}, body)
end
function response(status, headers, body)
  etag = headers["ETag"] or headers["Etag"] or headers["etag"]
  if status ~= 200 then failed = failed + 1 end
end
function done(summary, latency, requests)
  local errs = summary.errors.status + summary.errors.connect + summary.errors.read +
               summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT rps=%.1f p50=%.3f p99=%.3f errors=%d requests=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, errs, summary.requests))
end
