// A socket.io-client v4 remote control for the Rust tests.
// stdin: one JSON command per line; stdout: one JSON report per line.
//   {"cmd":"connect","id":"c1","ns":"/post","auth":{...}}      → {"type":"connect"|"connect_error",...}
//   {"cmd":"emit","id":"c1","event":"subscribe","data":{},"req":1} → {"type":"ack","req":1,"data":...}
//   {"cmd":"close","id":"c1"}                                    → {"type":"closed","id":"c1"}
// every event received → {"type":"event","id":"c1","event":"post.created","args":[...]}
// disconnects          → {"type":"disconnect","id":"c1","reason":"..."}
import { io } from "socket.io-client";
import readline from "node:readline";

const base = process.argv[2];
const sockets = new Map();
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  let c;
  try { c = JSON.parse(line); } catch (e) { out({ type: "driver_error", message: String(e) }); return; }
  if (c.cmd === "connect") {
    const s = io(base + c.ns, { auth: c.auth, transports: c.transports || ["websocket"], reconnection: false, forceNew: true });
    sockets.set(c.id, s);
    s.on("connect", () => out({ type: "connect", id: c.id }));
    s.on("connect_error", (err) => out({ type: "connect_error", id: c.id, message: err.message }));
    s.on("disconnect", (reason) => out({ type: "disconnect", id: c.id, reason }));
    s.onAny((event, ...args) => out({ type: "event", id: c.id, event, args }));
  } else if (c.cmd === "emit") {
    const s = sockets.get(c.id);
    s.timeout(10000).emit(c.event, c.data, (err, data) => {
      out(err ? { type: "ack_timeout", req: c.req } : { type: "ack", req: c.req, data });
    });
  } else if (c.cmd === "close") {
    sockets.get(c.id)?.close();
    out({ type: "closed", id: c.id });
  }
});
rl.on("close", () => process.exit(0));
