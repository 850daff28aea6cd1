#!/usr/bin/env node
/* Generates the hub's HL7 v2 base profiles from the npm package
 * hl7-dictionary (MIT). Run from this directory:
 *   npm ci && node gen.js            (writes ../base/)
 * The output is deterministic: running it twice gives identical files.
 * Format: see ../README.md. */
'use strict';
const fs = require('fs');
const path = require('path');
const dict = require('hl7-dictionary');
const srcVersion = require('hl7-dictionary/package.json').version;

const VERSIONS = ['2.3', '2.3.1', '2.4', '2.5', '2.5.1', '2.6', '2.7', '2.7.1', '2.8'];
const OUT = path.join(__dirname, '..', 'base');

const USAGE = { 1: 'O', 2: 'R', 3: 'C', 4: 'B' };

function tableId(t) {
  if (t === undefined || t === null || t === '' || t === 0) return null;
  const n = String(t).replace(/^0+/, '');
  if (!/^[0-9]+$/.test(n)) return null;
  return n.padStart(4, '0');
}

function card(min, max) {
  /* The source uses max 0 for "unbounded"; only 0/1 occur. */
  if (min >= 1 && max === 1) return '';
  if (min === 0 && max === 1) return '?';
  if (min >= 1) return '+';
  return '*';
}

/* A structure element: "PID", "PD1?", "NTE*", "OBX+"; a group is an array
 * whose first item is its name with cardinality; a choice is a string
 * "<OBR|RXO|RXE>*". */
function element(n, used) {
  if (n.compounds) {
    const names = n.compounds.map((c) => c.name).filter((x) => x && /^[A-Z0-9]{3}$/.test(x));
    if (names.length === 0) return null; /* the source lost the names */
    names.forEach((x) => used.add(x));
    return '<' + names.join('|') + '>' + card(n.min, n.max);
  }
  if (n.children) {
    const kids = n.children.map((c) => element(c, used)).filter((x) => x !== null);
    return [n.name + card(n.min, n.max)].concat(kids);
  }
  /* Only real segment ids (v2.3's MFN_M01 has a "GenericSegment"). */
  if (!n.name || !/^[A-Z0-9]{3}$/.test(n.name)) return null;
  used.add(n.name);
  return n.name + card(n.min, n.max);
}

function fieldRow(f) {
  const row = [f.desc || '', f.datatype || 'ST', USAGE[f.opt] || 'O',
               f.rep === 1 ? '1' : '*', f.len || 0];
  const t = tableId(f.table);
  if (t) row.push(t);
  return row;
}

function compRow(f) {
  const row = [f.desc || '', f.datatype || 'ST', USAGE[f.opt] || 'O', f.len || 0];
  const t = tableId(f.table);
  if (t) row.push(t);
  return row;
}

/* Compact, diffable JSON: one structure, field or component per line. */
function j(x) { return JSON.stringify(x); }
function writeVersion(v, def, tablesUsed) {
  const used = new Set();
  const keys = Object.keys(def.messages).sort();
  /* Trigger event -> structure: HL7 table 0354 (in the source's tables,
   * not versioned) names the events of each structure, e.g. ADT_A01 for
   * A01, A04, A08, A13. v2.3 predates message structure names (MSH-9.3
   * came in v2.3.1), so there every event keeps its own definition. */
  const events = {};
  const mapped = new Set();
  if (v !== '2.3') {
    const t354 = (dict.tables['354'] || {}).values || {};
    for (const sname of Object.keys(t354).sort()) {
      if (!def.messages[sname]) continue;
      const type = sname.split('_')[0];
      for (const e of String(t354[sname]).split(',').map((x) => x.trim())) {
        if (!/^[A-Z0-9]{3}$/.test(e)) continue;
        const ev = type + '^' + e;
        if (events[ev]) continue;
        events[ev] = sname;
        if (type + '_' + e !== sname) mapped.add(type + '_' + e);
      }
    }
  }
  const structures = {};
  for (const k of keys) {
    const ev = k.includes('_') ? k.replace('_', '^') : k;
    if (mapped.has(k)) continue; /* an event of another structure */
    const m = def.messages[k];
    structures[k] = m.segments.segments.map((c) => element(c, used)).filter((x) => x !== null);
    /* "ACK" and the bare "ORU"/"QRY" entries stand for every event. */
    if (!events[ev]) events[ev] = k;
  }
  const segNames = Object.keys(def.segments).filter((s) => /^[A-Z0-9]{3}$/.test(s)).sort();
  const dtNames = Object.keys(def.fields).sort();
  for (const s of segNames)
    for (const f of def.segments[s].fields) { const t = tableId(f.table); if (t) tablesUsed.add(t); }
  for (const d of dtNames)
    for (const f of def.fields[d].subfields) { const t = tableId(f.table); if (t) tablesUsed.add(t); }

  const L = [];
  L.push('{');
  L.push(' "version": ' + j(v) + ',');
  L.push(' "source": ' + j('hl7-dictionary ' + srcVersion + ' (npm, MIT)') + ',');
  L.push(' "events": {');
  const evk = Object.keys(events).sort();
  evk.forEach((e, i) => L.push('  ' + j(e) + ': ' + j(events[e]) + (i + 1 < evk.length ? ',' : '')));
  L.push(' },');
  L.push(' "structures": {');
  const sk = Object.keys(structures).sort();
  sk.forEach((s, i) => L.push('  ' + j(s) + ': ' + j(structures[s]) + (i + 1 < sk.length ? ',' : '')));
  L.push(' },');
  L.push(' "segments": {');
  segNames.forEach((s, i) => {
    const rows = def.segments[s].fields.map(fieldRow);
    L.push('  ' + j(s) + ': [' + (rows.length ? '' : ']' + (i + 1 < segNames.length ? ',' : '')));
    rows.forEach((r, k) => L.push('   ' + j(r) + (k + 1 < rows.length ? ',' : '')));
    if (rows.length) L.push('  ]' + (i + 1 < segNames.length ? ',' : ''));
  });
  L.push(' },');
  L.push(' "datatypes": {');
  dtNames.forEach((d, i) => {
    const rows = def.fields[d].subfields.map(compRow);
    const sep = i + 1 < dtNames.length ? ',' : '';
    if (!rows.length) { L.push('  ' + j(d) + ': []' + sep); return; }
    L.push('  ' + j(d) + ': [');
    rows.forEach((r, k) => L.push('   ' + j(r) + (k + 1 < rows.length ? ',' : '')));
    L.push('  ]' + sep);
  });
  L.push(' }');
  L.push('}');
  const text = L.join('\n') + '\n';
  JSON.parse(text); /* the writer must produce valid JSON */
  fs.writeFileSync(path.join(OUT, 'v' + v + '.json'), text);
  return { structures: sk.length, events: evk.length, segments: segNames.length,
           datatypes: dtNames.length, bytes: text.length };
}

function main() {
  fs.mkdirSync(OUT, { recursive: true });
  const tablesUsed = new Set();
  const made = [];
  for (const v of VERSIONS) {
    const def = dict.definitions[v];
    if (!def) { console.log('v' + v + ': not in hl7-dictionary ' + srcVersion + ', skipped'); continue; }
    const st = writeVersion(v, def, tablesUsed);
    made.push(v);
    console.log('v' + v + ': ' + st.structures + ' structures, ' + st.events + ' events, ' +
                st.segments + ' segments, ' + st.datatypes + ' datatypes, ' + st.bytes + ' bytes');
  }
  /* Tables are not versioned in the source: one file for all versions.
   * Only tables a field or component refers to, and only codes. */
  const ids = [...tablesUsed].sort();
  const L = ['{'];
  const rows = [];
  for (const id of ids) {
    const t = dict.tables[String(Number(id))];
    if (!t || !t.values) continue;
    const codes = Object.keys(t.values).filter((c) => c !== '' && c.length <= 64).sort();
    if (!codes.length) continue;
    rows.push(' ' + j(id) + ': {"name": ' + j(t.desc || '') + ', "codes": ' + j(codes) + '}');
  }
  L.push(rows.join(',\n'));
  L.push('}');
  const text = L.join('\n') + '\n';
  JSON.parse(text);
  fs.writeFileSync(path.join(OUT, 'tables.json'), text);
  console.log('tables: ' + rows.length + ' tables, ' + text.length + ' bytes');
  fs.writeFileSync(path.join(OUT, 'versions.txt'), made.join('\n') + '\n');
}

main();
