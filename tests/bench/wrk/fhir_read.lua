-- wrk: GET one resource by id.  wrk ... -s fhir_read.lua URL -- /fhir/Patient/ID
local path
function init(args) path = args[1] end
function request() return wrk.format("GET", path, {["Accept"] = "application/fhir+json"}) end
function done(summary, latency, requests)
  local errs = summary.errors.status + summary.errors.connect + summary.errors.read +
               summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT rps=%.1f p50=%.3f p99=%.3f errors=%d requests=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, errs, summary.requests))
end
