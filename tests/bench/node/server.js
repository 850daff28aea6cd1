// A Node MLLP server that ACKs every message with AA and stores nothing,
// for comparison with the hub (tests/bench). One process, one thread.
//
//   node server.js medplum PORT   (@medplum/hl7 Hl7Server, buildAck)
//   node server.js simple PORT    (simple-hl7 tcp app, automatic ACK)
//
// Prints "listening PORT" on stdout once it accepts connections.
'use strict';

const kind = process.argv[2] || 'medplum';
const port = Number(process.argv[3] || 2576);

async function medplum() {
  const { Hl7Server } = require('@medplum/hl7');
  const server = new Hl7Server((connection) => {
    connection.addEventListener('message', ({ message }) => {
      connection.send(message.buildAck());
    });
    connection.addEventListener('error', () => {});
  });
  await server.start(port);
  console.log(`listening ${port}`);
}

function simple() {
  const hl7 = require('simple-hl7');
  const app = hl7.tcp();
  app.use((req, res, next) => {
    res.end();
  });
  app.use((err, req, res, next) => {
    res.end();
  });
  app.start(port);
  // simple-hl7 offers no ready callback; its listen is synchronous enough
  setTimeout(() => console.log(`listening ${port}`), 100);
}

process.on('SIGTERM', () => process.exit(0));
if (kind === 'medplum') {
  medplum().catch((e) => {
    console.error(e);
    process.exit(1);
  });
} else if (kind === 'simple') {
  simple();
} else {
  console.error(`unknown server '${kind}' (medplum or simple)`);
  process.exit(2);
}
