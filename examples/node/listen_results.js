// Hear each invoice's final state as it happens, with pg (node-postgres).
//
// LISTEN invoice_sync_result: the worker (or a cancel) sends one small notification per row
// that reaches synced, dead or cancelled, after that commits. The notification names the row;
// invoice_sync.result() gives the details (the invoice's id, number and link, or why it failed).
//
//   npm ci
//   DATABASE_URL=postgresql://shop_web:...@db.example/shop node listen_results.js [--count N]
//
// Prints one JSON line per row to standard output; "listening" goes to standard error once the
// LISTEN is in place. Stops after N rows with --count, else runs until interrupted.
//
// Notifications are not stored: a listener that is down misses them. On (re)connecting, catch
// up by calling result() for the keys you are still waiting for, then rely on notifications.
"use strict";

const { Client } = require("pg");

const CHANNEL = "invoice_sync_result";
const RESULT = "SELECT * FROM invoice_sync.result($1, $2)";

function countArgument(argv) {
  const at = argv.indexOf("--count");
  return at === -1 ? null : Number.parseInt(argv[at + 1], 10);
}

async function main() {
  const count = countArgument(process.argv);
  const client = new Client({ connectionString: process.env.DATABASE_URL });
  await client.connect();
  let handled = 0;
  // One notification at a time, in order: each waits for the previous one's result().
  let previous = Promise.resolve();
  const finished = new Promise((resolve, reject) => {
    client.on("notification", (message) => {
      previous = previous
        .then(async () => {
          const note = JSON.parse(message.payload);
          const { rows } = await client.query(RESULT, [note.account, note.idempotency_key]);
          const row = rows[0];
          process.stdout.write(
            JSON.stringify({
              account: note.account,
              idempotency_key: note.idempotency_key,
              outbox_id: note.outbox_id,
              state: row.state,
              provider_invoice_id: row.provider_invoice_id,
              invoice_number: row.invoice_number,
              link: row.link,
              reason: row.reason,
            }) + "\n",
          );
          handled += 1;
          if (count !== null && handled === count) resolve();
        })
        .catch(reject);
    });
  });
  await client.query(`LISTEN ${CHANNEL}`);
  process.stderr.write("listening\n");
  await finished;
  await client.end();
}

main().catch((err) => {
  process.stderr.write(`listen_results: ${err.message}\n`);
  process.exit(1);
});
