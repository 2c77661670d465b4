// The real peers of the client's tests, started here so that `node --test`
// needs nothing else: redis-server on a free loopback port, the pinned
// Sandbox Agent server (scripts/install-sandbox-agent.sh) with our scripted
// agent (cmd/tandem-mockagent) installed as its "mock" agent, and Tandem
// nodes (cmd/tandem, built with go build) on the same Redis. It does what
// internal/e2e/harness_test.go and internal/sandboxtest do in Go.
//
// TANDEM_JS_TANDEM_BIN and TANDEM_JS_MOCKAGENT_BIN, when set, are used
// instead of building (clients/js/js_test.go builds them once).

import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

const children = new Set();
process.on('exit', () => {
  for (const c of children) killGroup(c, 'SIGKILL');
});

function killGroup(child, sig) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(child.group ? -child.pid : child.pid, sig);
  } catch {
    /* gone already */
  }
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, fn, { within = 20000, child } = {}) {
  const deadline = Date.now() + within;
  let last;
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null) throw new Error(what + ': the process exited (' + child.exitCode + '):\n' + child.log.tail());
    try {
      if (await fn()) return;
    } catch (e) {
      last = e;
    }
    await sleep(50);
  }
  throw new Error(what + ' within ' + within + ' ms' + (last ? ': ' + last.message : '') + (child ? '\n' + child.log.tail() : ''));
}

function start(bin, args, { env, cwd, group = false, name }) {
  const log = { chunks: [], tail: () => log.chunks.join('').slice(-6000) };
  const child = spawn(bin, args, { env, cwd, detached: group, stdio: ['ignore', 'pipe', 'pipe'] });
  child.group = group;
  child.name = name;
  child.log = log;
  for (const s of [child.stdout, child.stderr]) s.on('data', (b) => log.chunks.push(b.toString()));
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

function stop(child, sig = 'SIGKILL') {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    killGroup(child, sig);
  });
}

async function healthy(url) {
  const r = await fetch(url);
  await r.text();
  return r.ok;
}

/** An environment: Redis, one Sandbox Agent server, and the nodes a test starts. */
export class Env {
  static async start() {
    const e = new Env();
    await e.init();
    return e;
  }

  async init() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-js-'));
    this.tandemBin = process.env.TANDEM_JS_TANDEM_BIN || this.build('tandem');
    this.mockBin = process.env.TANDEM_JS_MOCKAGENT_BIN || this.build('tandem-mockagent');
    this.sandboxBin = execFileSync('bash', [path.join(repoRoot, 'scripts/install-sandbox-agent.sh')], { encoding: 'utf8' }).trim();
    await Promise.all([this.startRedis(), this.startSandbox()]);
    this.nodes = [];
  }

  build(name) {
    const out = path.join(this.dir, name);
    execFileSync('go', ['build', '-o', out, './cmd/' + name], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'inherit'] });
    return out;
  }

  async startRedis() {
    this.redisPort = await freePort();
    const dir = path.join(this.dir, 'redis');
    fs.mkdirSync(dir);
    this.redis = start(
      'redis-server',
      ['--port', String(this.redisPort), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'warning'],
      { name: 'redis' },
    );
    await waitFor('redis-server answers', async () => this.redisCli('PING') === 'PONG', { child: this.redis });
  }

  /** redisCli runs one command with redis-cli and returns its output. */
  redisCli(...args) {
    return execFileSync('redis-cli', ['-p', String(this.redisPort), ...args], { encoding: 'utf8' }).trim();
  }

  get redisUrl() {
    return 'redis://127.0.0.1:' + this.redisPort + '/0';
  }

  async startSandbox() {
    this.sandboxPort = await freePort();
    const home = path.join(this.dir, 'sandbox');
    for (const d of ['data', 'tmp', 'config', 'cache', 'state']) fs.mkdirSync(path.join(home, d), { recursive: true });
    const env = {
      PATH: process.env.PATH,
      HOME: home,
      XDG_DATA_HOME: path.join(home, 'data'),
      XDG_CONFIG_HOME: path.join(home, 'config'),
      XDG_CACHE_HOME: path.join(home, 'cache'),
      XDG_STATE_HOME: path.join(home, 'state'),
      TMPDIR: path.join(home, 'tmp'),
    };
    this.sandbox = start(this.sandboxBin, ['server', '--no-token', '--no-telemetry', '--host', '127.0.0.1', '--port', String(this.sandboxPort)], {
      env,
      cwd: home,
      group: true, // the agents it starts die with it
      name: 'sandbox-agent',
    });
    this.sandboxUrl = 'http://127.0.0.1:' + this.sandboxPort;
    await waitFor('sandbox-agent healthy', () => healthy(this.sandboxUrl + '/v1/health'), { child: this.sandbox, within: 30000 });
    // Install the mock agent, then replace the launcher the install wrote
    // with one that runs ours (installing again would rewrite it).
    const r = await fetch(this.sandboxUrl + '/v1/agents/mock/install', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: '{}',
    });
    if (!r.ok) throw new Error('install the mock agent: ' + r.status + ' ' + (await r.text()));
    const res = await r.json();
    let launcher = path.join(home, 'data', 'sandbox-agent', 'bin', 'agent_processes', 'mock-acp');
    for (const a of res.artifacts || []) if (a.kind === 'agent_process' && a.path) launcher = a.path;
    const q = "'" + this.mockBin.replaceAll("'", "'\\''") + "'";
    fs.writeFileSync(launcher + '.tandem', '#!/bin/sh\nexec ' + q + ' "$@"\n', { mode: 0o755 });
    fs.renameSync(launcher + '.tandem', launcher);
  }

  /** node starts a Tandem node on the shared Redis and sandbox and waits until it is ready. */
  async node(id, extra = {}) {
    const port = await freePort();
    const env = {
      ...process.env,
      TANDEM_ADDR: '127.0.0.1:' + port,
      TANDEM_REDIS_URL: this.redisUrl,
      TANDEM_NODE_ID: id,
      TANDEM_LOCK_TTL: '3s',
      TANDEM_HEALTH_INTERVAL: '500ms',
      TANDEM_SANDBOX_URL: this.sandboxUrl,
      TANDEM_PROMPT_RATE: '-1',
      TANDEM_COMMAND_RATE: '-1',
      TANDEM_LOG_LEVEL: 'debug',
      ...extra,
    };
    const child = start(this.tandemBin, ['serve'], { env, name: 'node ' + id });
    const n = { id, child, url: 'http://127.0.0.1:' + port, kill: () => stop(child, 'SIGKILL'), log: () => child.log.tail() };
    this.nodes.push(n);
    await waitFor('node ' + id + ' ready', () => healthy(n.url + '/readyz'), { child });
    return n;
  }

  async close() {
    await Promise.all([...this.nodes.map((n) => n.kill()), this.sandbox && stop(this.sandbox, 'SIGKILL'), this.redis && stop(this.redis, 'SIGKILL')]);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * A forwarding HTTP proxy on a loopback port, as a load balancer in front of
 * a node: target '' (or a dead node) answers 502, which makes an
 * EventSource give up. hook(req) may answer a request itself.
 */
export async function startProxy(target) {
  const p = { target, hook: null, requests: [] };
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    p.requests.push({ method: req.method, url: req.url, headers: { ...req.headers } });
    if (p.hook && p.hook(req, res, p) === true) return;
    forward(p, req, res);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  p.url = 'http://127.0.0.1:' + server.address().port;
  /** dropAll resets every connection through the proxy (streams included). */
  p.dropAll = () => {
    for (const s of sockets) s.destroy();
  };
  p.close = () =>
    new Promise((r) => {
      p.dropAll();
      server.close(() => r());
    });
  return p;
}

export function forward(p, req, res, onResponse) {
  if (!p.target) {
    res.writeHead(502, { 'Content-Type': 'text/html' });
    res.end('<html><body>502 Bad Gateway</body></html>');
    return;
  }
  const u = new URL(req.url, p.target);
  const up = http.request(u, { method: req.method, headers: { ...req.headers, host: u.host }, agent: false }, (ur) => {
    if (onResponse && onResponse(ur, res) === true) return;
    res.writeHead(ur.statusCode, ur.headers);
    ur.pipe(res);
    ur.on('error', () => res.destroy());
    ur.on('aborted', () => res.destroy());
  });
  up.on('error', () => {
    if (!res.headersSent) {
      res.writeHead(502, { 'Content-Type': 'text/html' });
      res.end('<html><body>502 Bad Gateway</body></html>');
    } else {
      res.destroy();
    }
  });
  res.on('close', () => up.destroy());
  req.pipe(up);
}

/** until resolves once pred() holds, checking every 20 ms. */
export async function until(what, pred, within = 30000) {
  const deadline = Date.now() + within;
  while (Date.now() < deadline) {
    if (pred()) return;
    await sleep(20);
  }
  throw new Error('timed out waiting for ' + what);
}
