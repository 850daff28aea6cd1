-- wrk: POST a new Patient every time.  wrk ... -s fhir_create.lua URL -- /fhir/Patient
-- Each Patient is another person (its own identifier, name and birth date):
-- with the patient index on (the default), one identifier sent thousands of
-- times would make one golden record of thousands of sources, which is no
-- create workload anyone runs.
local path
local n = 0
local tag
function init(args)
  path = args[1]
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
  tag = math.random(1, 1e9)
end
-- Names are made of letters (the patient index drops digits, so "Name12"
-- and "Name13" would be one name): k written in base 20 with a syllable per
-- digit, so families and given names vary as a population's do.
local syl = {"ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "de", "ba",
             "go", "hu", "ja", "pe", "qui", "ro", "su", "te", "wa", "zo"}
local function name_of(k, parts)
  local s = ""
  for _ = 1, parts do
    s = s .. syl[k % 20 + 1]
    k = math.floor(k / 20)
  end
  return s:sub(1, 1):upper() .. s:sub(2)
end
local function body()
  n = n + 1
  return string.format('{"resourceType":"Patient","identifier":[{"system":"urn:bench",' ..
    '"value":"b-%d-%d"}],"name":[{"family":"%s","given":["%s"]}],' ..
    '"gender":"other","birthDate":"19%02d-%02d-%02d"}', tag, n,
    name_of(tag + n, 4), name_of(math.random(0, 7999), 3),
    math.random(10, 99), math.random(1, 12), math.random(1, 28))
end
function request()
  return wrk.format("POST", path, {["Content-Type"] = "application/fhir+json",
                                   ["Prefer"] = "return=minimal"}, body())
end
function done(summary, latency, requests)
  local errs = summary.errors.status + summary.errors.connect + summary.errors.read +
               summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT rps=%.1f p50=%.3f p99=%.3f errors=%d requests=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, errs, summary.requests))
end
