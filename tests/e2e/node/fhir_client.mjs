// Drives the hub's FHIR REST API with a real FHIR client (fhir-kit-client).
// Usage: node fhir_client.mjs <base url>, e.g. http://127.0.0.1:8080/fhir
// Prints one line per check; exits 0 when all pass, 1 at the first failure.
import { Client, CapabilityTool } from 'fhir-kit-client';

const base = process.argv[2];
if (!base) {
  console.error('usage: node fhir_client.mjs <base url>');
  process.exit(2);
}
const client = new Client({ baseUrl: base });
let checks = 0;

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  checks++;
  console.log(`ok ${what}`);
}

async function status(p) {
  try {
    await p;
    return 200;
  } catch (e) {
    return e?.response?.status ?? e?.status ?? -1;
  }
}

async function main() {
  const cs = await client.capabilityStatement();
  const tool = new CapabilityTool(cs);
  check(cs.resourceType === 'CapabilityStatement', 'capabilities');
  check(tool.resourceCan('Patient', 'create') && tool.resourceCan('Observation', 'patch'),
    'capabilities list create and patch');
  check(tool.serverCan('transaction') && tool.serverCan('batch'), 'capabilities list transaction and batch');

  const created = await client.create({
    resourceType: 'Patient',
    body: { resourceType: 'Patient', identifier: [{ system: 'urn:test:mrn', value: 'K-1' }],
            name: [{ family: 'Kit', given: ['Client'] }], gender: 'other' },
  });
  check(created.id && created.meta?.versionId === '1', 'create');
  const id = created.id;

  const read = await client.read({ resourceType: 'Patient', id });
  check(read.name[0].family === 'Kit' && read.id === id, 'read');
  const { response } = Client.httpFor(read);
  check(response?.headers.get('etag') === 'W/"1"', 'read has ETag W/"1"');

  read.name[0].family = 'Kit2';
  const updated = await client.update({ resourceType: 'Patient', id, body: read });
  check(updated.meta.versionId === '2' && updated.name[0].family === 'Kit2', 'update');

  const v1 = await client.vread({ resourceType: 'Patient', id, version: '1' });
  check(v1.name[0].family === 'Kit' && v1.meta.versionId === '1', 'vread');

  const patched = await client.patch({
    resourceType: 'Patient', id,
    jsonPatch: [{ op: 'replace', path: '/gender', value: 'female' }, { op: 'add', path: '/active', value: true }],
  });
  check(patched.gender === 'female' && patched.active === true && patched.meta.versionId === '3', 'patch');

  const hist = await client.history({ resourceType: 'Patient', id });
  check(hist.type === 'history' && hist.entry.length === 3 && hist.total === 3, 'history (instance)');
  const thist = await client.history({ resourceType: 'Patient' });
  check(thist.type === 'history' && thist.entry.length >= 3, 'history (type)');
  const shist = await client.history();
  check(shist.type === 'history' && shist.entry.length >= 3, 'history (system)');

  const cu = await client.update({
    resourceType: 'Patient', searchParams: { identifier: 'urn:test:mrn|K-2' },
    body: { resourceType: 'Patient', identifier: [{ system: 'urn:test:mrn', value: 'K-2' }], active: false },
  });
  check(cu.id && cu.id !== id, 'conditional update creates');

  const tx = await client.transaction({
    body: {
      resourceType: 'Bundle', type: 'transaction',
      entry: [
        { fullUrl: 'urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a',
          resource: { resourceType: 'Patient', name: [{ family: 'Tx' }] },
          request: { method: 'POST', url: 'Patient' } },
        { resource: { resourceType: 'Observation', status: 'final',
                      code: { text: 'weight' },
                      subject: { reference: 'urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a' } },
          request: { method: 'POST', url: 'Observation' } },
      ],
    },
  });
  check(tx.type === 'transaction-response' && tx.entry.length === 2 &&
        tx.entry.every((e) => e.response.status.startsWith('201')), 'transaction');
  const obsLoc = tx.entry[1].response.location;
  const obsId = obsLoc.split('/')[obsLoc.split('/').indexOf('Observation') + 1];
  const obs = await client.read({ resourceType: 'Observation', id: obsId });
  check(/^Patient\/[A-Za-z0-9.-]+$/.test(obs.subject.reference), 'transaction resolves urn:uuid');

  const batch = await client.batch({
    body: { resourceType: 'Bundle', type: 'batch',
            entry: [{ request: { method: 'GET', url: `Patient/${id}` } },
                    { request: { method: 'GET', url: 'Patient/no-such-id' } }] },
  });
  check(batch.type === 'batch-response' && batch.entry[0].response.status.startsWith('200') &&
        batch.entry[1].response.status.startsWith('404'), 'batch');

  await client.delete({ resourceType: 'Patient', id });
  check((await status(client.read({ resourceType: 'Patient', id }))) === 410, 'delete, then read is 410');
  check((await status(client.read({ resourceType: 'Patient', id: 'never-was' }))) === 404, 'unknown id is 404');
  check((await status(client.read({ resourceType: 'NoSuchType', id: 'x' }))) === 404, 'unknown type is 404');
  console.log(`all ${checks} checks passed`);
}

main().catch((e) => {
  console.error(`FAILED: ${e.message}`);
  process.exit(1);
});
