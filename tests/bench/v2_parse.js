// The v2 parse benchmark's workload for npm HL7 parsers: parse each message,
// read PID-3, PID-5 and every OBX-5. Single thread, median of N runs.
//   node v2_parse.js PARSER CORPUS [MAX_MESSAGES] [RUNS]
// PARSER: simple-hl7 | medplum | hl7-standard. Prints one JSON line.
// Time is the process's CPU time (process.cpuUsage: user + system, GC
// threads included), so a busy shared machine does not inflate it; wall
// time is printed too.
'use strict';
const fs = require('fs');
const path = require('path');
const mods = path.join(__dirname, 'node', 'node_modules');

const [, , which, corpus, maxArg, runsArg] = process.argv;
const max = maxArg ? parseInt(maxArg, 10) : Infinity;
const runs = runsArg ? parseInt(runsArg, 10) : 5;
const lines = fs.readFileSync(corpus, 'latin1').split('\n').filter((l) => l.length > 0);
const msgs = lines.slice(0, Math.min(lines.length, max));
let bytes = 0;
for (const m of msgs) bytes += m.length;

let work;
if (which === 'simple-hl7') {
  const Parser = require(path.join(mods, 'simple-hl7', 'lib', 'hl7', 'parser.js'));
  const p = new Parser({ segmentSeperator: '\r' });
  work = (text) => {
    const m = p.parse(text);
    let n = 0;
    const pid = m.getSegment('PID');
    if (pid) n += pid.getField(3).length + pid.getField(5).length;
    for (const obx of m.getSegments('OBX')) n += obx.getField(5).length;
    return n;
  };
} else if (which === 'medplum') {
  const { Hl7Message } = require(path.join(mods, '@medplum', 'core'));
  work = (text) => {
    const m = Hl7Message.parse(text);
    let n = 0;
    const pid = m.getSegment('PID');
    if (pid) n += pid.getField(3).toString().length + pid.getField(5).toString().length;
    for (const obx of m.getAllSegments('OBX')) n += obx.getField(5).toString().length;
    return n;
  };
} else if (which === 'hl7-standard') {
  const HL7 = require(path.join(mods, 'hl7-standard'));
  work = (text) => {
    const h = new HL7(text, { lineEndings: '\r' });
    h.transform();
    let n = 0;
    n += JSON.stringify(h.get('PID.3') || '').length + JSON.stringify(h.get('PID.5') || '').length;
    for (const obx of h.getSegments('OBX')) n += JSON.stringify(obx.get('OBX.5') || '').length;
    return n;
  };
} else {
  console.error('usage: node v2_parse.js simple-hl7|medplum|hl7-standard CORPUS [MAX] [RUNS]');
  process.exit(2);
}

const times = [];
const walls = [];
let check = 0;
for (let r = 0; r < runs; r++) {
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  let c = 0;
  for (const m of msgs) c += work(m);
  const c1 = process.cpuUsage(c0);
  const t1 = process.hrtime.bigint();
  times.push((c1.user + c1.system) / 1e6);
  walls.push(Number(t1 - t0) / 1e9);
  check = c;
}
times.sort((a, b) => a - b);
walls.sort((a, b) => a - b);
const med = times[Math.floor(times.length / 2)];
console.log(JSON.stringify({ parser: which, messages: msgs.length, bytes, seconds: med,
  wall_seconds: walls[Math.floor(walls.length / 2)],
  mb_s: bytes / 1e6 / med, msg_s: msgs.length / med, check }));
