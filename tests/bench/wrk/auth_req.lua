-- wrk: GET (read) or POST (create) with an optional Bearer token.
--   wrk ... -s auth_req.lua URL -- read|create PATH TOKEN|-
local mode, path, hdrs
local body = '{"resourceType":"Patient","identifier":[{"system":"urn:bench","value":"b-1"}],' ..
  '"name":[{"family":"Benchmark","given":["Wrk"]}],"gender":"other","birthDate":"1970-01-01"}'
function init(args)
  mode, path = args[1], args[2]
  hdrs = {["Accept"] = "application/fhir+json"}
  if args[3] and args[3] ~= "-" then hdrs["Authorization"] = "Bearer " .. args[3] end
  if mode == "create" then
    hdrs["Content-Type"] = "application/fhir+json"
    hdrs["Prefer"] = "return=minimal"
  end
end
function request()
  if mode == "create" then return wrk.format("POST", path, hdrs, body) end
  return wrk.format("GET", path, hdrs)
end
function done(summary, latency, requests)
  local errs = summary.errors.status + summary.errors.connect + summary.errors.read +
               summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT rps=%.1f p50=%.3f p99=%.3f errors=%d requests=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, errs, summary.requests))
end
