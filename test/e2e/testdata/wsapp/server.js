// A WebSocket server (RFC 6455) on Node's built-in modules only, for
// Skiff's end-to-end test of WebSockets through the router. It greets each
// socket, echoes text and binary messages, answers pings, sends "tick 1"
// to "tick N" 100 ms apart after "tick N", and answers a close with a
// close carrying the same code before it ends the connection.
const http = require("http");
const crypto = require("crypto");

const release = process.env.SKIFF_RELEASE;
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"; // RFC 6455, section 1.3

const server = http.createServer((req, res) => {
  res.end(`hello from wsapp release=${release}\n`);
});

// frame encodes one unfragmented, unmasked frame, as servers send them.
function frame(opcode, payload) {
  const n = payload.length;
  let head;
  if (n < 126) {
    head = Buffer.from([0x80 | opcode, n]);
  } else if (n < 65536) {
    head = Buffer.alloc(4);
    head[1] = 126;
    head.writeUInt16BE(n, 2);
  } else {
    head = Buffer.alloc(10);
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  }
  head[0] = 0x80 | opcode;
  return Buffer.concat([head, payload]);
}

// parse decodes the frame at the start of buf, or returns null until all
// of it has arrived.
function parse(buf) {
  if (buf.length < 2) return null;
  let len = buf[1] & 0x7f;
  let off = 2;
  if (len === 126) {
    if (buf.length < 4) return null;
    len = buf.readUInt16BE(2);
    off = 4;
  } else if (len === 127) {
    if (buf.length < 10) return null;
    len = Number(buf.readBigUInt64BE(2));
    off = 10;
  }
  const masked = (buf[1] & 0x80) !== 0;
  const mask = off;
  if (masked) off += 4;
  if (buf.length < off + len) return null;
  const payload = Buffer.from(buf.subarray(off, off + len));
  if (masked) for (let i = 0; i < len; i++) payload[i] ^= buf[mask + (i & 3)];
  return { fin: (buf[0] & 0x80) !== 0, opcode: buf[0] & 0x0f, masked, payload, size: off + len };
}

server.on("upgrade", (req, socket, head) => {
  const key = req.headers["sec-websocket-key"];
  if ((req.headers.upgrade || "").toLowerCase() !== "websocket" || !key || req.headers["sec-websocket-version"] !== "13") {
    socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    return;
  }
  const accept = crypto.createHash("sha1").update(key + GUID).digest("base64");
  socket.setNoDelay(true);
  socket.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    `Sec-WebSocket-Accept: ${accept}\r\n\r\n`);
  const send = (opcode, payload) => socket.write(frame(opcode, Buffer.from(payload)));
  send(1, `welcome release=${release} host=${req.headers.host} path=${req.url}`);

  let buf = head;
  let message = []; // the fragments of a message in progress
  let messageOp = 0;
  let timer = null;
  let ended = false;
  const end = (code) => {
    ended = true;
    clearInterval(timer);
    send(8, code);
    socket.end();
  };
  const onMessage = (opcode, data) => {
    const tick = opcode === 1 && /^tick (\d+)$/.exec(data.toString());
    if (!tick) {
      send(opcode, data);
      return;
    }
    clearInterval(timer);
    let n = 0;
    timer = setInterval(() => {
      send(1, `tick ${++n}`);
      if (n >= Number(tick[1])) clearInterval(timer);
    }, 100);
  };
  socket.on("data", (chunk) => {
    if (ended) return;
    buf = Buffer.concat([buf, chunk]);
    for (let f; (f = parse(buf)); ) {
      buf = buf.subarray(f.size);
      if (!f.masked) return end(Buffer.from([0x03, 0xea])); // 1002: clients must mask
      switch (f.opcode) {
        case 0: // continuation
        case 1: // text
        case 2: // binary
          if (f.opcode !== 0) messageOp = f.opcode;
          message.push(f.payload);
          if (f.fin) {
            onMessage(messageOp, Buffer.concat(message));
            message = [];
          }
          break;
        case 8: // close: answer with the same code
          return end(f.payload.subarray(0, 2));
        case 9: // ping
          send(10, f.payload);
          break;
      }
    }
  });
  socket.on("close", () => clearInterval(timer));
  socket.on("error", () => {});
});

server.listen(process.env.PORT, () => console.log(`listening on ${process.env.PORT}`));
