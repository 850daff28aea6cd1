-- wrk: GET a search whose path has {P} replaced by a random patient number
-- in [0, NPAT).   wrk ... -s fhir_search.lua URL -- NPAT '/fhir/Patient?identifier=urn:bench:mrn|P{P}'
local npat, tmpl
function init(args)
  npat = tonumber(args[1])
  tmpl = args[2]
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end
function request()
  local p = tostring(math.random(0, npat - 1))
  return wrk.format("GET", (tmpl:gsub("{P}", p)))
end
function done(summary, latency, requests)
  local errs = summary.errors.status + summary.errors.connect + summary.errors.read +
               summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT rps=%.1f p50=%.3f p99=%.3f errors=%d requests=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, errs, summary.requests))
end
