// The plain WebSocket protocol (protocol/PROTOCOL.md) with resume.
//
// One connection per tab. Durable topics (feed, follower, notification, chat:*) carry `seq`;
// the last one seen per topic is sent back on every reconnect (in the `auth` frame, so the
// token is never in a URL), and an event at or below it is dropped, so nothing shows twice
// and nothing is missed across a network drop or a server restart. Topics the views ask for
// (post:*, user:*) are counted and subscribed again after a reconnect. `chat.send` goes
// through an outbox keyed by `client_msg_id`: a message sent while offline, or whose answer
// was lost, is sent again with the same id, and the server stores it once.

import * as api from "./api.js";

const FINAL = new Set([4500, 4501, 4502, 4503, 4504, 4505]);

export class Live {
  constructor() {
    this.ws = null;
    this.status = "offline";
    this.positions = new Map(); // durable topic → last seq (string)
    this.handlers = new Map(); // topic → Set of fn(event, data, frame)
    this.wanted = new Map(); // topic (not auto-subscribed) → refcount
    this.pending = new Map(); // request id → {resolve, reject}
    this.outbox = new Map(); // client_msg_id → {data, resolve, reject}
    this.nextId = 1;
    this.retry = 0;
    this.timer = null;
    this.refreshTimer = null;
    this.statusListeners = new Set();
    this.hello = null;
    this.stopped = true;
    addEventListener("online", () => this.status !== "live" && this.reconnectSoon(0));
  }

  /** Starts (or restarts) the connection for the current session. */
  start() {
    this.stopped = false;
    this.connect();
  }

  /** Closes for good (logout): forgets positions, outbox and subscriptions. */
  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.refreshTimer);
    if (this.ws) this.ws.close(1000);
    this.ws = null;
    this.positions.clear();
    for (const o of this.outbox.values()) o.reject(new Error("signed out"));
    this.outbox.clear();
    this.setStatus("offline");
  }

  onStatus(f) {
    this.statusListeners.add(f);
    f(this.status);
    return () => this.statusListeners.delete(f);
  }

  setStatus(s) {
    this.status = s;
    for (const f of this.statusListeners) f(s);
  }

  /** Listens to `topic`; returns the function that stops listening. */
  on(topic, f) {
    if (!this.handlers.has(topic)) this.handlers.set(topic, new Set());
    this.handlers.get(topic).add(f);
    return () => this.handlers.get(topic) && this.handlers.get(topic).delete(f);
  }

  /** Subscribes to a topic the server does not subscribe on connect, and listens to it. */
  watch(topic, f) {
    const off = this.on(topic, f);
    const n = this.wanted.get(topic) || 0;
    this.wanted.set(topic, n + 1);
    if (n === 0 && this.status === "live") this.request({ op: "subscribe", topic }).catch(() => {});
    let ended = false;
    return () => {
      if (ended) return; // idempotent: a view may end what a list already ended
      ended = true;
      off();
      const left = (this.wanted.get(topic) || 1) - 1;
      if (left > 0) return this.wanted.set(topic, left);
      this.wanted.delete(topic);
      if (this.status === "live") this.request({ op: "unsubscribe", topic }).catch(() => {});
    };
  }

  /** Sends a frame with an id; resolves to the `ok` data or rejects with the error. */
  request(frame) {
    return new Promise((resolve, reject) => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return reject(new Error("offline"));
      const id = this.nextId++;
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ ...frame, id }));
    });
  }

  /** `chat.send` through the outbox: resolves to the stored message, however many tries. */
  sendMessage(data) {
    const client_msg_id = data.client_msg_id || crypto.randomUUID();
    return new Promise((resolve, reject) => {
      this.outbox.set(client_msg_id, { data: { ...data, client_msg_id }, resolve, reject });
      this.flushOne(client_msg_id);
    });
  }

  /** Messages waiting for the server, oldest first. */
  unsent(conversation_id) {
    return [...this.outbox.values()].map((o) => o.data).filter((d) => d.conversation_id === conversation_id);
  }

  flushOne(key) {
    const o = this.outbox.get(key);
    if (!o || this.status !== "live") return;
    this.request({ op: "chat.send", data: o.data }).then(
      (message) => {
        this.outbox.delete(key);
        o.resolve(message);
      },
      (err) => {
        // Offline: stays in the outbox for the next connection. Refused: give up.
        if (err.code) {
          this.outbox.delete(key);
          o.reject(err);
        }
      },
    );
  }

  connect() {
    clearTimeout(this.timer);
    const s = api.current();
    if (!s || this.stopped) return;
    this.setStatus(this.retry ? "reconnecting" : "connecting");
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/ws`, "chorus.v1");
    this.ws = ws;
    ws.onopen = () => {
      const positions = Object.fromEntries(this.positions);
      ws.send(JSON.stringify({ op: "auth", token: api.current().access_token, positions }));
    };
    ws.onmessage = (m) => this.receive(JSON.parse(m.data));
    ws.onclose = (e) => this.closed(ws, e);
  }

  closed(ws, e) {
    if (this.ws !== ws) return;
    this.ws = null;
    clearTimeout(this.refreshTimer);
    for (const p of this.pending.values()) p.reject(new Error("offline"));
    this.pending.clear();
    if (this.stopped) return;
    if (e.code === 4004) {
      // The token expired while we were away: refresh, then reconnect at once.
      return api.refresh().then(() => this.reconnectSoon(0), () => this.setStatus("signed-out"));
    }
    if (e.code === 4505) return this.setStatus("suspended");
    if (e.code === 4500 || e.code === 4501) {
      // Maybe just an expired access token on a fresh connection: one refresh decides.
      return api.refresh().then(() => this.reconnectSoon(0), () => this.setStatus("signed-out"));
    }
    if (FINAL.has(e.code)) return this.setStatus("offline");
    this.reconnectSoon();
  }

  reconnectSoon(delay) {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.setStatus("reconnecting");
    const wait = delay !== undefined ? delay : Math.min(10000, 300 * 2 ** this.retry) * (0.5 + Math.random() / 2);
    this.retry++;
    this.timer = setTimeout(() => this.connect(), wait);
  }

  receive(f) {
    switch (f.op) {
      case "hello":
        return this.welcomed(f.data);
      case "ok": {
        const p = this.pending.get(f.id);
        this.pending.delete(f.id);
        return p && p.resolve(f.data);
      }
      case "error": {
        const p = this.pending.get(f.id);
        this.pending.delete(f.id);
        const err = Object.assign(new Error(f.error.message), { code: f.error.code, fields: f.error.fields || {} });
        return p && p.reject(err);
      }
      case "event":
        return this.event(f);
      case "resync_required":
        this.positions.set(f.topic, f.seq);
        return this.dispatch(f.topic, "resync", {}, f);
      case "unsubscribed":
        return this.dispatch(f.topic, "unsubscribed", f.error, f);
    }
  }

  welcomed(hello) {
    this.hello = hello;
    this.retry = 0;
    for (const [topic, r] of Object.entries(hello.subscriptions || {})) {
      // A topic seen for the first time starts where the server is: the view read the rest
      // over REST. A known one was resumed: its missed events follow.
      if (r.seq && !this.positions.has(topic)) this.positions.set(topic, r.seq);
      if (r.result === "resync_required") this.dispatch(topic, "resync", {}, r);
    }
    this.setStatus("live");
    for (const topic of this.wanted.keys()) this.request({ op: "subscribe", topic }).catch(() => {});
    for (const key of this.outbox.keys()) this.flushOne(key);
    this.scheduleRefresh(hello.token_expires_at);
  }

  /** Sends a refreshed token a minute before the current one expires (same session). */
  scheduleRefresh(expiresAt) {
    clearTimeout(this.refreshTimer);
    const ms = Math.max(5000, expiresAt * 1000 - Date.now() - 60000);
    this.refreshTimer = setTimeout(async () => {
      try {
        const token = await api.refresh();
        const r = await this.request({ op: "auth", token });
        this.scheduleRefresh(r.token_expires_at);
      } catch (_) {
        this.scheduleRefresh(Date.now() / 1000 + 120);
      }
    }, ms);
  }

  event(f) {
    if (f.seq !== undefined && f.seq !== null) {
      const last = this.positions.get(f.topic);
      if (last !== undefined && BigInt(f.seq) <= BigInt(last)) return; // seen already
      this.positions.set(f.topic, f.seq);
    }
    this.dispatch(f.topic, f.event, f.data, f);
  }

  dispatch(topic, event, data, frame) {
    for (const t of [topic, "*"]) {
      const hs = this.handlers.get(t);
      if (hs) for (const h of [...hs]) h(event, data, frame);
    }
  }
}

export const live = new Live();
