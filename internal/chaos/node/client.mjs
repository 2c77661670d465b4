// Node.js subscribers of the Tandem fault campaign: WHATWG EventSource
// clients (the eventsource package, v4) following session streams through
// the load balancer, as a browser would.
//
// The driver (package chaos) talks to this process with JSON lines:
//
//   stdin   {"op":"open","client":"n3","url":"http://127.0.0.1:PORT/v1/..."}
//           {"op":"drop","client":"n3"}   reset the client's TCP connection
//           {"op":"close"}                close every client and exit
//   stdout  {"c":"n3","k":"open"}                      a connection opened
//           {"c":"n3","k":"ev","id":..,"t":..,"d":..}  an event
//           {"c":"n3","k":"err","code":..,"msg":..}    an error event
//           {"c":"n3","k":"fatal","code":..}           the EventSource gave up
//                                                      (non-200): it is made
//                                                      again from its last id
//
// The EventSource does the reconnecting itself (Last-Event-ID, the server's
// retry:). It only gives up on a non-200 answer, as the standard says; a
// careful web client then makes a new one that resumes with ?cursor= from
// the last id it saw, and so does this one, after a second.
//
// fetch is node:http underneath so that "drop" can reset the very socket a
// stream runs on: the stream fails as after a network fault, and the
// EventSource reconnects on its own.
import http from "node:http";
import readline from "node:readline";
import { Readable } from "node:stream";
import { EventSource } from "eventsource";

const clients = new Map();
let closing = false;

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

// httpFetch is the subset of fetch EventSource uses, on node:http, keeping
// the request's socket in sockets so that it can be dropped.
function httpFetch(state) {
  return (url, init) =>
    new Promise((resolve, reject) => {
      const headers = { ...(init.headers || {}) };
      const req = http.request(url, { method: "GET", headers, agent: false });
      const abort = () => {
        req.destroy();
        reject(new DOMException("aborted", "AbortError"));
      };
      if (init.signal) {
        if (init.signal.aborted) return abort();
        init.signal.addEventListener("abort", abort, { once: true });
      }
      req.on("socket", (s) => {
        state.socket = s;
      });
      req.on("error", (err) => reject(new TypeError("fetch failed", { cause: err })));
      req.on("response", (res) => {
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) {
          if (Array.isArray(v)) v.forEach((x) => h.append(k, x));
          else if (v !== undefined) h.set(k, v);
        }
        const body = res.statusCode === 204 ? null : Readable.toWeb(res);
        resolve(new Response(body, { status: res.statusCode, headers: h }));
      });
      req.end();
    });
}

function open(id, baseURL, cursor) {
  const state = { socket: null, es: null, last: cursor || "" };
  clients.set(id, state);
  const url = new URL(baseURL);
  if (state.last) url.searchParams.set("cursor", state.last);
  const es = new EventSource(url, { fetch: httpFetch(state) });
  state.es = es;
  const onEvent = (e) => {
    if (e.lastEventId) state.last = e.lastEventId;
    out({ c: id, k: "ev", id: e.lastEventId || "", t: e.type, d: e.data });
  };
  for (const t of ["chat.user", "session.event", "session.status", "reset", "message"]) {
    es.addEventListener(t, onEvent);
  }
  es.addEventListener("open", () => out({ c: id, k: "open" }));
  es.addEventListener("error", (e) => {
    if (closing) return;
    if (es.readyState === EventSource.CLOSED) {
      out({ c: id, k: "fatal", code: e.code ?? 0, msg: String(e.message ?? "") });
      // Make it again from the last id seen, as a careful web client does.
      setTimeout(() => {
        if (!closing && clients.get(id) === state) open(id, baseURL, state.last);
      }, 1000);
      return;
    }
    out({ c: id, k: "err", code: e.code ?? 0, msg: String(e.message ?? "") });
  });
}

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  let m;
  try {
    m = JSON.parse(line);
  } catch {
    return;
  }
  switch (m.op) {
    case "open":
      open(m.client, m.url, m.cursor || "");
      break;
    case "drop": {
      const s = clients.get(m.client);
      if (s && s.socket && !s.socket.destroyed) s.socket.resetAndDestroy();
      break;
    }
    case "close":
      shutdown();
      break;
  }
});
rl.on("close", shutdown);

function shutdown() {
  if (closing) return;
  closing = true;
  for (const s of clients.values()) s.es.close();
  out({ c: "", k: "closed" });
  // Let stdout drain, then go.
  process.stdout.write("", () => process.exit(0));
}
