'use strict';
// An echo server on Node's ws for wsfast's interoperability tests (tests/test_interop_node.py).
//
// Listens on 127.0.0.1, port 0 (or --port N), and prints one JSON line per event on stdout; the first is
// {"event": "listening", "port": N}. Exits when stdin closes, so it never outlives the test.
//
// Options:
//   --deflate                       offer permessage-deflate (threshold 0: every message is compressed)
//   --server-no-context-takeover    with --deflate: answer server_no_context_takeover
//   --client-no-context-takeover    with --deflate: answer client_no_context_takeover
//   --server-max-window-bits N      with --deflate: answer server_max_window_bits=N
//   --max-payload N                 largest message accepted, in bytes (default 64 MiB)
//
// Every message is echoed as it came (text as text, binary as binary), except these text commands:
//   close:CODE:REASON   close with CODE and REASON      close:   close without a status code (1005)
//   terminate:          drop the TCP connection without a closing handshake (the client sees 1006)
//   ping:PAYLOAD        send a PING; its PONG is answered with the text message "pong:PAYLOAD"
//   fragments:N:TEXT    send TEXT as one text message in N fragments
//   info:               reply with JSON: this connection's id, negotiated extension params, request headers
//   stats:              reply with JSON: the TCP byte counts of this connection so far

const { WebSocketServer } = require('ws');

const argv = process.argv.slice(2);
const flag = (name) => argv.includes(name);
const option = (name, fallback) => {
  const index = argv.indexOf(name);
  return index >= 0 && index + 1 < argv.length ? argv[index + 1] : fallback;
};
const emit = (record) => process.stdout.write(JSON.stringify(record) + '\n');

let perMessageDeflate = false;
if (flag('--deflate')) {
  perMessageDeflate = { threshold: 0 };
  // Unset options keep ws's defaults: serverNoContextTakeover=false would refuse offers asking for it.
  if (flag('--server-no-context-takeover')) perMessageDeflate.serverNoContextTakeover = true;
  if (flag('--client-no-context-takeover')) perMessageDeflate.clientNoContextTakeover = true;
  const bits = option('--server-max-window-bits');
  if (bits !== undefined) perMessageDeflate.serverMaxWindowBits = Number(bits);
}

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: Number(option('--port', '0')),
  perMessageDeflate,
  maxPayload: Number(option('--max-payload', String(64 * 1024 * 1024))),
});

let connections = 0;

wss.on('listening', () => emit({ event: 'listening', port: wss.address().port, ws: require('ws/package.json').version }));
wss.on('error', (error) => {
  emit({ event: 'server-error', message: String(error) });
  process.exit(1);
});

wss.on('connection', (ws, request) => {
  const id = ++connections;
  const socket = request.socket;
  const deflate = ws._extensions['permessage-deflate'];
  const extensions = deflate ? { 'permessage-deflate': deflate.params } : {};
  emit({ event: 'open', id, extensions, offer: request.headers['sec-websocket-extensions'] || null });

  ws.on('message', (data, isBinary) => {
    if (!isBinary) {
      const text = data.toString('utf8');
      if (text === 'close:') return ws.close();
      if (text.startsWith('close:')) {
        const [, code, ...reason] = text.split(':');
        return ws.close(Number(code), reason.join(':'));
      }
      if (text === 'terminate:') return ws.terminate();
      if (text.startsWith('ping:')) return ws.ping(Buffer.from(text.slice(5), 'utf8'));
      if (text.startsWith('fragments:')) {
        const [, count, ...rest] = text.split(':');
        const body = Buffer.from(rest.join(':'), 'utf8');
        const n = Math.max(1, Number(count));
        const size = Math.ceil(body.length / n);
        for (let i = 0; i < n; i++) {
          ws.send(body.subarray(i * size, (i + 1) * size), { binary: false, fin: i === n - 1 });
        }
        return;
      }
      if (text === 'info:') {
        return ws.send(JSON.stringify({ id, extensions, headers: request.headers }));
      }
      if (text === 'stats:') {
        return ws.send(JSON.stringify({ id, bytesRead: socket.bytesRead, bytesWritten: socket.bytesWritten }));
      }
    }
    ws.send(data, { binary: isBinary });
  });
  ws.on('ping', (payload) => emit({ event: 'ping', id, payload: payload.toString('utf8') }));
  ws.on('pong', (payload) => {
    emit({ event: 'pong', id, payload: payload.toString('utf8') });
    if (ws.readyState === ws.OPEN) ws.send('pong:' + payload.toString('utf8'));
  });
  ws.on('error', (error) => emit({ event: 'error', id, message: String(error), code: error.code || null }));
  ws.on('close', (code, reason) => emit({ event: 'close', id, code, reason: reason.toString('utf8') }));
});

process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
