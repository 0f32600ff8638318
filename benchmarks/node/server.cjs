// Node's socket.io 4 as the reference danmaku server of benchmarks/danmaku.py: the same
// events and payloads as Stagepass (auth {room}, "danmaku:send" acked, "danmaku" frames of
// {items}), one frame per danmaku, no storage, no checks: the floor of what a Socket.IO
// server costs.   node benchmarks/node/server.cjs PORT
// GET /stats answers {"gc_ms": total garbage collection time since start}.
"use strict";
const http = require("http");
const { PerformanceObserver } = require("perf_hooks");
const { Server } = require("socket.io");

let gcMs = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) gcMs += entry.duration;
}).observe({ entryTypes: ["gc"] });

const httpServer = http.createServer((req, res) => {
  if (req.url === "/stats") {
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ gc_ms: gcMs }));
  }
});
const io = new Server(httpServer, { cors: { origin: "*" } });
let nextId = 1;
io.on("connection", (socket) => {
  const room = (socket.handshake.auth || {}).room || "bench";
  socket.join(room);
  socket.on("danmaku:send", (data, ack) => {
    const item = { id: nextId++, text: String(data.text), color: data.color || "#FFFFFF",
                   mode: data.mode || "scroll", t_ms: 0, broadcast: "", user: { id: 0, name: "bench" },
                   sent_at: new Date().toISOString() };
    io.to(room).emit("danmaku", { items: [item] });
    if (typeof ack === "function") ack({ ok: true, danmaku: item });
  });
});
httpServer.listen(parseInt(process.argv[2], 10), "127.0.0.1");
