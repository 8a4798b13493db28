// Starts the telegram-test-api emulator (a Telegram Bot API server plus client routes that play
// the user) for tests/it/telegram_emulator.rs. The published package has no command line, so this
// is the whole of it:
//
//   node start.js PORT
//
// Listens on 127.0.0.1:PORT, prints one line `listening http://127.0.0.1:PORT` once it accepts
// connections, and exits when stdin closes (the test holds the other end, so the emulator never
// outlives it) or on SIGTERM/SIGINT.
'use strict';

const TelegramServer = require('telegram-test-api');

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('usage: node start.js PORT');
  process.exit(2);
}

// Messages live in RAM for an hour (the default, 60 s, could drop them under a slow test).
const server = new TelegramServer({ port, host: '127.0.0.1', storage: 'RAM', storeTimeout: 3600 });

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  server.stop().finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}

server.start().then(
  () => {
    console.log(`listening ${server.config.apiURL}`);
    process.stdin.on('end', stop);
    process.stdin.on('close', stop);
    process.stdin.resume();
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  },
  (error) => {
    console.error(`telegram-test-api could not start on 127.0.0.1:${port}: ${error}`);
    process.exit(1);
  },
);
