// Socket.IO viewers on Node's stock socket.io-client 4 (web/node_modules, the pages' pinned copy).
//
//   node tests/support/socketio_viewers.cjs BASE ROOM TOKEN COUNT [--latency]
//
// Connects COUNT viewers over websocket with auth {room, token} and prints one JSON line
// {"ready": COUNT} once all are connected. Then, for every "danmaku" frame, either prints
// {"viewer": i, "items": [...]} (tests), or with --latency keeps the delay from the send
// time at the start of each item's text ("<unix seconds> ...") to receipt, and prints
// {"delays_ms": [...], "frames": n} when stdin closes (benchmarks). Exits when stdin closes.
"use strict";
const path = require("path");
const { io } = require(path.join(__dirname, "..", "..", "web", "node_modules", "socket.io-client"));

const [base, room, token, countText, ...flags] = process.argv.slice(2);
const count = parseInt(countText, 10);
const latency = flags.includes("--latency");
const sockets = [];
const delays = [];
let frames = 0;
let connected = 0;

function onDanmaku(viewer, data) {
  frames += 1;
  if (latency) {
    const now = Date.now() / 1000;
    for (const item of data.items) delays.push((now - parseFloat(item.text.split(" ")[0])) * 1000);
  } else {
    process.stdout.write(JSON.stringify({ viewer, items: data.items }) + "\n");
  }
}

function connectOne(i) {
  return new Promise((resolve, reject) => {
    const socket = io(base, { auth: { room, token }, transports: ["websocket"], reconnection: false,
                              timeout: 60000 });
    socket.on("danmaku", (data) => onDanmaku(i, data));
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (err) => reject(new Error(`viewer ${i}: ${err.message}`)));
    sockets.push(socket);
  });
}

async function main() {
  for (let i = 0; i < count; i += 50) {  // 50 at a time: a burst of thousands is a test of its own
    const batch = [];
    for (let j = i; j < Math.min(count, i + 50); j++) batch.push(connectOne(j));
    await Promise.all(batch);
    connected += batch.length;
  }
  process.stdout.write(JSON.stringify({ ready: connected }) + "\n");
}

process.stdin.on("end", () => {
  for (const s of sockets) s.disconnect();
  const last = latency ? JSON.stringify({ delays_ms: delays.map((d) => Math.round(d * 100) / 100), frames }) : "";
  process.stdout.write(last + "\n", () => process.exit(0));  // exit once the pipe has it all
});
process.stdin.resume();
main().catch((err) => {
  process.stdout.write(JSON.stringify({ error: err.message }) + "\n");
  process.exit(1);
});
