// The dashboard on PostgreSQL in a real browser: the seeding worker process
// fills a schema and keeps running it, `replayflow serve` serves it (an admin
// open, no worker of its own), and headless Chromium shows the worker with
// what it owns, and an execution's owner.
//
// Needs `cargo build -p replayflow-cli --bin replayflow --example dashboard_seed`
// and a server at WORKFLOW_TEST_PG (skipped without it, failed under CI).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startProcess, stop } from './processes.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const target = process.env.CARGO_TARGET_DIR ? path.resolve(process.env.CARGO_TARGET_DIR) : path.join(root, 'target');
const bin = path.join(target, 'debug', 'replayflow');
const seeder = path.join(target, 'debug', 'examples', 'dashboard_seed');
const url = process.env.WORKFLOW_TEST_PG;
const schema = `t_dash_${process.pid}`;
const skip = url ? false : 'WORKFLOW_TEST_PG is not set';
if (!url && process.env.CI) throw new Error('WORKFLOW_TEST_PG is required under CI');

let seed;
let server;
let base;
let browser;
let page;
const pageErrors = [];

function dropSchema() {
  // psql comes with the server's packages; without it the schema is left (its name is unique).
  spawnSync('psql', [url, '-qc', `DROP SCHEMA IF EXISTS ${schema} CASCADE`], { stdio: 'ignore' });
}

before(async () => {
  if (skip) return;
  for (const file of [bin, seeder]) {
    assert.ok(fs.existsSync(file), `${file} is missing: cargo build -p replayflow-cli --bin replayflow --example dashboard_seed`);
  }
  dropSchema();
  seed = startProcess(seeder, [url, schema], /^ready /m, 120_000);
  await seed.found;
  server = startProcess(bin, ['--db', url, '--schema', schema, 'serve', '--bind', '127.0.0.1:0'], /on (http:\/\/127\.0\.0\.1:\d+)\//, 30_000);
  base = (await server.found)[1];
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  page.on('pageerror', (e) => pageErrors.push(String(e)));
});

after(async () => {
  if (browser) await browser.close();
  stop(server && server.child);
  stop(seed && seed.child);
  if (!skip) dropSchema();
});

test('the list shows the worker and what it owns; an execution shows its worker', { skip }, async () => {
  const api = await (await fetch(`${base}/api/workers`)).json();
  const alive = api.workers.filter((w) => w.state === 'alive');
  assert.equal(alive.length, 1, JSON.stringify(api));
  const worker = alive[0];
  assert.equal(worker.this_process, false, 'serve is an admin open, not a worker');
  // Three sleeping invoices, the sync job and the order shipping for an hour.
  assert.ok(worker.owned >= 5, JSON.stringify(worker));

  await page.goto(`${base}/`);
  await page.waitForSelector('#workers-card:not([hidden]) #worker-rows tr');
  const row = page.locator(`#worker-rows tr[data-worker="${worker.id}"]`);
  assert.equal(await row.getAttribute('data-state'), 'alive');
  const cells = await row.locator('td').allTextContents();
  assert.equal(cells[0].trim(), worker.id);
  assert.equal(cells[1], `${worker.host}:${worker.pid}`);
  assert.equal(cells[5], String(worker.owned));
  assert.match(await page.locator('#workers-summary').textContent(), /^1 alive, \d+ dead$/);

  await page.goto(`${base}/#/executions/invoice-2001`);
  await page.waitForSelector('#d-meta dt');
  const meta = await page.locator('#d-meta').textContent();
  assert.match(meta, new RegExp(`Worker${worker.id}`));
  assert.deepEqual(pageErrors, []);
});
