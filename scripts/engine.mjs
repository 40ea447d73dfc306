#!/usr/bin/env node
// Start, stop and check the local Camunda 7 engine (engine/, Spring Boot jar).
//
//   node scripts/engine.mjs start [--port N] [--db h2|postgres]
//   node scripts/engine.mjs stop  [--port N]
//   node scripts/engine.mjs status [--port N]
//
// Env: ENGINE_PORT (8080), ENGINE_DB (h2|postgres), ENGINE_PG_DB
// (camunda_sandbox), ENGINE_AUTH (basic = HTTP Basic, user demo/demo),
// ENGINE_START_TIMEOUT_MS (240000), JAVA_OPTS (default heap/GC flags below).
//
// `start` prints exactly one line on stdout, the REST base URL; every other
// message goes to stderr so callers can do URL=$(node scripts/engine.mjs start).
// Plain Node built-ins only: runs on Node 20 and 24 before `npm install`.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ENGINE_DIR = path.join(ROOT, 'engine');
const JAR = path.join(ENGINE_DIR, 'target', 'camunda-sandbox-engine.jar');
const STATE_DIR = path.join(ROOT, '.engine');
// Serial GC and a capped heap: the engine shares a 2-core machine with the
// tests and benchmarks. TieredStopAtLevel=1 (C1 only) was measured to shorten startup.
const DEFAULT_JAVA_OPTS = '-Xmx768m -XX:+UseSerialGC -XX:TieredStopAtLevel=1';
const POLL_MS = 500;

const log = (msg) => process.stderr.write(`[engine] ${msg}\n`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function parseArgs(argv) {
  const opts = {
    command: undefined,
    port: process.env.ENGINE_PORT || '8080',
    db: process.env.ENGINE_DB || 'h2',
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] = arg.startsWith('--') ? arg.split(/=(.*)/s, 2) : [arg, undefined];
    const value = () => {
      if (inline !== undefined) return inline;
      if (i + 1 >= argv.length) fail(`${flag} needs a value`);
      return argv[++i];
    };
    if (flag === '--port') opts.port = value();
    else if (flag === '--db') opts.db = value();
    else if (flag === '-h' || flag === '--help') opts.command = 'help';
    else if (!flag.startsWith('-') && opts.command === undefined) opts.command = flag;
    else fail(`unknown argument: ${arg}`);
  }
  if (!/^\d+$/.test(String(opts.port)) || Number(opts.port) < 1 || Number(opts.port) > 65535) {
    fail(`invalid port: ${opts.port}`);
  }
  opts.port = Number(opts.port);
  if (opts.db !== 'h2' && opts.db !== 'postgres')
    fail(`--db must be h2 or postgres, got ${opts.db}`);
  return opts;
}

function fail(msg) {
  log(msg);
  process.exit(1);
}

const baseUrl = (port) => `http://127.0.0.1:${port}/engine-rest`;
const pidFile = (port) => path.join(STATE_DIR, `engine-${port}.pid`);
const logFile = (port) => path.join(STATE_DIR, `engine-${port}.log`);

function authHeaders() {
  if ((process.env.ENGINE_AUTH || '').toLowerCase() !== 'basic') return {};
  const user = process.env.ENGINE_USER || 'demo';
  const password = process.env.ENGINE_PASSWORD || 'demo';
  return { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` };
}

// HTTP status of GET /engine-rest/version, or 0 when nothing answers.
async function probe(port) {
  try {
    const res = await fetch(`${baseUrl(port)}/version`, {
      headers: authHeaders(),
      signal: AbortSignal.timeout(2000),
    });
    await res.arrayBuffer().catch(() => {});
    return res.status;
  } catch {
    return 0;
  }
}

function readPid(port) {
  try {
    const pid = Number(fs.readFileSync(pidFile(port), 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

// A pid file can outlive a reboot and its pid be reused: only a live process
// that runs our jar counts, so stop never signals an unrelated process.
function isOurEngine(pid) {
  if (!isAlive(pid)) return false;
  let cmdline;
  try {
    cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    const ps = spawnSync('ps', ['-o', 'command=', '-p', String(pid)], { encoding: 'utf8' });
    cmdline = ps.status === 0 ? ps.stdout : '';
  }
  return cmdline.includes(path.basename(JAR));
}

function newestMtime(p) {
  const st = fs.statSync(p);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs;
  for (const entry of fs.readdirSync(p))
    newest = Math.max(newest, newestMtime(path.join(p, entry)));
  return newest;
}

function ensureJar() {
  const sourcesMtime = Math.max(
    newestMtime(path.join(ENGINE_DIR, 'src')),
    newestMtime(path.join(ENGINE_DIR, 'pom.xml')),
  );
  let reason;
  if (!fs.existsSync(JAR)) reason = 'the jar is missing';
  else if (fs.statSync(JAR).mtimeMs < sourcesMtime)
    reason = 'engine/ sources are newer than the jar';
  else return;
  log(`building the engine (${reason}): mvn -B -q -f engine/pom.xml package -DskipTests`);
  log('the first build downloads well over 100 MB from Maven Central and takes a few minutes');
  const started = Date.now();
  // stdout of mvn goes to our stderr: stdout is reserved for the URL.
  const res = spawnSync(
    'mvn',
    ['-B', '-q', '-f', path.join(ENGINE_DIR, 'pom.xml'), 'package', '-DskipTests'],
    {
      cwd: ROOT,
      stdio: ['ignore', process.stderr, process.stderr],
    },
  );
  if (res.error) fail(`could not run mvn: ${res.error.message} (is Maven installed?)`);
  if (res.status !== 0) fail(`mvn failed with exit code ${res.status}`);
  if (!fs.existsSync(JAR)) fail(`mvn succeeded but ${path.relative(ROOT, JAR)} is missing`);
  log(`built ${path.relative(ROOT, JAR)} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

function psql(args, input) {
  return spawnSync(
    'psql',
    ['-h', '127.0.0.1', '-U', 'postgres', '-v', 'ON_ERROR_STOP=1', '-XAtq', ...args],
    {
      input,
      encoding: 'utf8',
    },
  );
}

function ensurePostgresDatabase() {
  const db = process.env.ENGINE_PG_DB || 'camunda_sandbox';
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(db))
    fail(`ENGINE_PG_DB must be a plain identifier, got ${db}`);
  const check = psql(['-d', 'postgres', '-c', `SELECT 1 FROM pg_database WHERE datname = '${db}'`]);
  if (check.error) fail(`could not run psql: ${check.error.message}`);
  if (check.status !== 0) {
    fail(`PostgreSQL at 127.0.0.1:5432 (user postgres) is not reachable: ${check.stderr.trim()}`);
  }
  if (check.stdout.trim() === '1') return;
  log(`creating PostgreSQL database ${db}`);
  const create = psql(['-d', 'postgres', '-c', `CREATE DATABASE "${db}"`]);
  if (create.status !== 0) fail(`could not create database ${db}: ${create.stderr.trim()}`);
}

function tail(file, lines) {
  try {
    return fs
      .readFileSync(file, 'utf8')
      .split('\n')
      .slice(-lines - 1)
      .join('\n');
  } catch {
    return '(no log)';
  }
}

async function start(opts) {
  const { port } = opts;
  const url = baseUrl(port);

  const status = await probe(port);
  if (status === 200 || status === 401) {
    log(`the engine already answers at ${url}${status === 401 ? ' (it requires auth)' : ''}`);
    process.stdout.write(`${url}\n`);
    return 0;
  }
  if (status !== 0)
    fail(`something else answers on port ${port} (GET ${url}/version: HTTP ${status})`);

  const oldPid = readPid(port);
  if (oldPid && isOurEngine(oldPid)) {
    fail(
      `pid ${oldPid} from ${path.relative(ROOT, pidFile(port))} is alive but does not answer; ` +
        'run `node scripts/engine.mjs stop` first',
    );
  }

  ensureJar();
  if (opts.db === 'postgres') ensurePostgresDatabase();

  fs.mkdirSync(STATE_DIR, { recursive: true });
  const javaOpts = (process.env.JAVA_OPTS || DEFAULT_JAVA_OPTS).split(/\s+/).filter(Boolean);
  const args = [...javaOpts, '-jar', JAR, `--server.port=${port}`];
  if (opts.db === 'postgres') args.push('--spring.profiles.active=postgres');

  const out = fs.openSync(logFile(port), 'w');
  log(`starting: java ${args.join(' ')} (log: ${path.relative(ROOT, logFile(port))})`);
  const started = Date.now();
  // Detached with the log file as stdio: the engine outlives this script.
  const child = spawn('java', args, {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', out, out],
    env: { ...process.env, ENGINE_PORT: String(port) },
  });
  fs.closeSync(out);
  let exited = null;
  child.on('exit', (code, signal) => {
    exited = signal || `exit code ${code}`;
  });
  child.on('error', (err) => {
    exited = err.message;
  });
  if (child.pid) fs.writeFileSync(pidFile(port), `${child.pid}\n`);

  const timeout = Number(process.env.ENGINE_START_TIMEOUT_MS || 240000);
  for (;;) {
    if (exited !== null) {
      log(`java exited before the REST API answered (${exited}); last lines of the log:`);
      process.stderr.write(`${tail(logFile(port), 40)}\n`);
      fs.rmSync(pidFile(port), { force: true });
      return 1;
    }
    const code = await probe(port);
    if (code === 200) break;
    if (Date.now() - started > timeout) {
      log(`no answer from ${url}/version after ${timeout} ms; last lines of the log:`);
      process.stderr.write(`${tail(logFile(port), 40)}\n`);
      // A half-started engine would hold the port and confuse the next start.
      await stop(opts);
      return 1;
    }
    await sleep(POLL_MS);
  }
  child.unref();
  log(
    `ready in ${((Date.now() - started) / 1000).toFixed(1)} s (pid ${child.pid}, db ${opts.db}` +
      `${authHeaders().authorization ? ', basic auth' : ''})`,
  );
  process.stdout.write(`${url}\n`);
  return 0;
}

async function stop(opts) {
  const { port } = opts;
  const pid = readPid(port);
  if (!pid || !isOurEngine(pid)) {
    fs.rmSync(pidFile(port), { force: true });
    const code = await probe(port);
    if (code === 200 || code === 401) {
      log(
        `no engine started by this script on port ${port}, but something answers at ${baseUrl(port)}; left alone`,
      );
    } else {
      log(`no engine running on port ${port}`);
    }
    return 0;
  }
  log(`stopping pid ${pid}`);
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 20000;
  while (isAlive(pid) && Date.now() < deadline) await sleep(200);
  if (isAlive(pid)) {
    log(`pid ${pid} still alive after 20 s; sending SIGKILL`);
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
    while (isAlive(pid)) await sleep(100);
  }
  fs.rmSync(pidFile(port), { force: true });
  log('stopped');
  return 0;
}

async function status(opts) {
  const { port } = opts;
  const url = baseUrl(port);
  const code = await probe(port);
  const pid = readPid(port);
  const pidNote = pid
    ? isOurEngine(pid)
      ? ` (pid ${pid})`
      : ` (stale pid file: pid ${pid} is not the engine)`
    : '';
  if (code === 200) console.log(`running: ${url}${pidNote}`);
  else if (code === 401)
    console.log(`running: ${url}${pidNote} (requires auth; set ENGINE_AUTH=basic)`);
  else if (code) console.log(`not an engine: ${url}/version answered HTTP ${code}`);
  else console.log(`not running: nothing answers at ${url}${pidNote}`);
  // Exit 0 only when an engine answers (3, "not running", as init scripts
  // do): the test and demo commands start one on anything else.
  return code === 200 || code === 401 ? 0 : 3;
}

const USAGE = 'usage: node scripts/engine.mjs start|stop|status [--port N] [--db h2|postgres]';

const opts = parseArgs(process.argv.slice(2));
const commands = { start, stop, status };
if (opts.command === 'help') {
  console.log(USAGE);
  process.exit(0);
}
if (!commands[opts.command]) fail(USAGE);
process.exitCode = await commands[opts.command](opts);
