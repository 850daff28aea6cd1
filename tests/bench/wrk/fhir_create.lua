-- wrk: POST a new Patient every time.  wrk ... -s fhir_create.lua URL -- /fhir/Patient
local path
local body = '{"resourceType":"Patient","identifier":[{"system":"urn:bench","value":"b-1"}],' ..
  '"name":[{"family":"Benchmark","given":["Wrk"]}],"gender":"other","birthDate":"1970-01-01"}'
function init(args) path = args[1] end
function request()
  return wrk.format("POST", path, {["Content-Type"] = "application/fhir+json",
                                   ["Prefer"] = "return=minimal"}, body)
end
function done(summary, latency, requests)
  local errs = summary.errors.status + summary.errors.connect + summary.errors.read +
               summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT rps=%.1f p50=%.3f p99=%.3f errors=%d requests=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, errs, summary.requests))
end
