// The dashboard in a real browser: a worker process fills a database with
// executions in many states and keeps running them, `workflow serve` serves
// the dashboard on the same file (as an admin), and headless Chromium loads
// the list, opens executions, and cancels one.
//
// Needs `cargo build -p replayflow-cli --bin replayflow --example dashboard_seed`
// first. Screenshots go to target/dashboard-screenshots/.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startProcess, stop } from './processes.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const target = process.env.CARGO_TARGET_DIR ? path.resolve(process.env.CARGO_TARGET_DIR) : path.join(root, 'target');
const bin = path.join(target, 'debug', 'replayflow');
const seeder = path.join(target, 'debug', 'examples', 'dashboard_seed');
const shots = path.join(target, 'dashboard-screenshots');

let dir;
let seed;
let server;
let base;
let browser;
let page;
const pageErrors = [];
const dialogs = [];

before(async () => {
  for (const file of [bin, seeder]) {
    assert.ok(fs.existsSync(file), `${file} is missing: cargo build -p replayflow-cli --bin replayflow --example dashboard_seed`);
  }
  fs.mkdirSync(shots, { recursive: true });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'workflow-dashboard-'));
  const db = path.join(dir, 'shop.db');

  seed = startProcess(seeder, [db], /^ready /m, 120_000);
  await seed.found;
  server = startProcess(bin, ['--db', db, 'serve', '--bind', '127.0.0.1:0'], /on (http:\/\/127\.0\.0\.1:\d+)\//, 30_000);
  base = (await server.found)[1];

  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  page = await browser.newPage({ viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1 });
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
});

after(async () => {
  if (browser) await browser.close();
  stop(server && server.child);
  stop(seed && seed.child);
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

async function count(status) {
  return page.locator(`#counts [data-status="${status}"] .n`).textContent();
}

test('the list shows every execution and the counts per status', async () => {
  await page.goto(`${base}/`);
  await page.waitForSelector('#exec-rows tr');
  assert.equal(await count('all'), '15');
  assert.ok(await page.locator('#workers-card').isHidden(), 'a SQLite file has no workers to list');
  assert.equal(await count('completed'), '6');
  assert.equal(await count('failed'), '2');
  assert.equal(await count('sleeping'), '4');
  assert.equal(await count('running'), '1');
  assert.equal(await count('panicked'), '1');
  assert.equal(await count('cancelled'), '1');
  assert.equal(await count('paused'), '0');
  assert.equal(await page.locator('#exec-rows tr').count(), 15);
  assert.equal(await page.locator('#exec-rows tr[data-id="order-1004"] .badge').textContent(), 'failed');
  assert.match(await page.locator('#exec-rows tr[data-id="order-1004"] .reason').textContent(), /card declined/);
  assert.match(await page.locator('#exec-rows tr[data-id="order-1004"] .version').textContent(), /^\d+\.\d+\.\d+$/);
  assert.match(await page.locator('#mode-chip').textContent(), /admin/);
  await page.waitForTimeout(300);
  await page.screenshot({ path: path.join(shots, 'list.png'), fullPage: true, animations: 'disabled' });
});

test('filters narrow the list and live in the address', async () => {
  await page.click('#counts [data-status="failed"]');
  await page.waitForFunction(() => document.querySelectorAll('#exec-rows tr').length === 2);
  assert.match(page.url(), /status=failed/);
  assert.equal(await page.locator('#f-status').inputValue(), 'failed');

  await page.click('#f-clear');
  await page.fill('#f-workflow', 'send_invoice');
  await page.press('#f-workflow', 'Enter');
  await page.waitForFunction(() => document.querySelectorAll('#exec-rows tr').length === 4);
  assert.equal(await count('all'), '4');
  assert.equal(await count('cancelled'), '1');
  await page.click('#f-clear');
  await page.waitForFunction(() => document.querySelectorAll('#exec-rows tr').length === 15);
});

test('an execution shows its timeline with retries and the sleep', async () => {
  await page.click('#exec-rows tr[data-id="order-1001"] a');
  await page.waitForSelector('#detail-view:not([hidden]) .tl-row');
  assert.equal(await page.locator('#d-id').textContent(), 'order-1001');
  assert.equal(await page.locator('#d-status').textContent(), 'completed');
  const rows = page.locator('#timeline .tl-row');
  assert.equal(await rows.count(), 5);
  const inventory = page.locator('#timeline .tl-row[data-position="1"]');
  assert.equal(await inventory.locator('.bar.fail').count(), 2, 'two failed attempts');
  assert.equal(await inventory.locator('.bar.ok').count(), 1);
  assert.equal(await inventory.locator('.wait').count(), 2, 'two backoffs');
  assert.equal(await page.locator('#timeline .tl-row[data-position="2"] .bar.sleep').count(), 1);
  assert.match(await page.locator('#steps').textContent(), /reserved 2 x book-42/);
  assert.match(await page.locator('#d-output').textContent(), /1Z999AA1/);
  assert.equal(await page.locator('#act-cancel').isDisabled(), true);
  assert.equal(await page.locator('#superseded-card').isHidden(), true, 'never restarted: nothing set aside');
  // The version of the code that started it (the seeding package's).
  assert.match(await page.locator('#d-meta').textContent(), /Version\d+\.\d+\.\d+/);

  // The attempts of a step unfold with their errors.
  await page.click('#steps details[data-position="1"] summary');
  assert.match(await page.locator('#steps details[data-position="1"] .attempts').textContent(), /inventory service unavailable/);
  await page.waitForTimeout(300);
  await page.screenshot({ path: path.join(shots, 'execution.png'), fullPage: true, animations: 'disabled' });
});

test('errors and panic messages are shown', async () => {
  await page.goto(`${base}/#/executions/order-1004`);
  await page.waitForSelector('#d-error:not([hidden])');
  assert.match(await page.locator('#d-error-text').textContent(), /card declined by issuer/);
  assert.equal(await page.locator('#timeline .tl-row[data-position="3"] .bar.fail').count(), 3);
  assert.equal(await page.locator('#act-restart').isDisabled(), false, 'a failed execution can be restarted');

  await page.goto(`${base}/#/executions/report-2025-11-01`);
  await page.waitForFunction(() => document.querySelector('#d-id').textContent === 'report-2025-11-01');
  await page.waitForSelector('#d-error:not([hidden])');
  assert.match(await page.locator('#d-error-title').textContent(), /Panicked/);
  assert.match(await page.locator('#d-error-text').textContent(), /index out of bounds/);
  assert.equal(await page.locator('#act-restart').isDisabled(), false);
  await page.screenshot({ path: path.join(shots, 'panicked.png'), fullPage: true, animations: 'disabled' });

  await page.goto(`${base}/#/executions/no-such-execution`);
  await page.waitForSelector('#missing-view:not([hidden])');
  assert.match(await page.locator('#missing-text').textContent(), /no-such-execution/);
});

test('a restarted execution shows the entries its failed run set aside', async () => {
  await page.goto(`${base}/#/executions/import-3001`);
  await page.waitForFunction(() => document.querySelector('#d-id').textContent === 'import-3001');
  assert.equal(await page.locator('#d-status').textContent(), 'completed');
  assert.equal(await page.locator('#d-error').isHidden(), true);
  // The live journal: the step ran again and completed.
  assert.equal(await page.locator('#steps details').count(), 1);
  assert.equal(await page.locator('#steps details[data-position="0"] summary .badge').textContent(), 'completed');
  assert.equal(await page.locator('#timeline .tl-row').count(), 1, 'the timeline draws the live journal only');

  // Below it, the first run's entry, with why it failed.
  await page.waitForSelector('#superseded-card:not([hidden])');
  const run = page.locator('#superseded .run[data-run="0"]');
  assert.match(await run.locator('.run-head').textContent(), /^Run 0 · set aside at /);
  const entry = run.locator('details[data-position="0"]');
  assert.equal(await entry.count(), 1);
  assert.equal(await entry.locator('summary .badge').textContent(), 'failed');
  assert.match(await entry.locator('summary').textContent(), /2 attempts/);
  assert.match(await entry.locator('summary .res').textContent(), /supplier nordic-books: feed timed out after 30 s/);
  await entry.locator('summary').click();
  const attempts = entry.locator('.attempts tbody tr');
  assert.equal(await attempts.count(), 2);
  for (const row of await attempts.all()) {
    assert.match(await row.textContent(), /failed.*feed timed out after 30 s/);
  }
  assert.match(await page.locator('#d-superseded-count').textContent(), /1 entry from 1 earlier run/);
  await page.waitForTimeout(300);
  await page.locator('#superseded-card').scrollIntoViewIfNeeded();
  await page.screenshot({ path: path.join(shots, 'restarted.png'), fullPage: true, animations: 'disabled' });
});

test('integers beyond 2^53 in payloads are shown exactly', async () => {
  await page.goto(`${base}/#/executions/import-3001`);
  await page.waitForFunction(() => document.querySelector('#d-id').textContent === 'import-3001');
  // 2^53 + 1 and 2^53 + 3 are not JavaScript numbers: a plain JSON.parse
  // shows 9007199254740992 and 9007199254740996.
  const output = await page.locator('#d-output').textContent();
  assert.match(output, /"checksum": 9007199254740993\b/);
  assert.match(output, /"rows": 1200\b/);
  assert.match(await page.locator('#d-input').textContent(), /"since": 9007199254740995\b/);
  const step = page.locator('#steps details[data-position="0"]');
  assert.match(await step.locator('summary .res').textContent(), /"version":18446744073709551615\b/);
  assert.match(await step.locator('pre.json').textContent(), /"version": 18446744073709551615\b/);
  // Still after a refresh.
  await page.waitForTimeout(2500);
  assert.match(await page.locator('#d-output').textContent(), /"checksum": 9007199254740993\b/);
});

test('user data is shown as text, never as markup', async () => {
  await page.goto(`${base}/#/executions/invoice-2004`);
  await page.waitForFunction(() => document.querySelector('#d-id').textContent === 'invoice-2004');
  assert.match(await page.locator('#d-input').textContent(), /<img src=x onerror=alert\(1\)> & Sons/);
  assert.equal(await page.locator('#detail-view img').count(), 0);
  assert.deepEqual(dialogs, []);
});

test('cancelling a sleeping execution: requested, then applied by the worker', async () => {
  await page.goto(`${base}/#/executions/invoice-2001`);
  await page.waitForFunction(() => document.querySelector('#d-status').textContent === 'sleeping');
  assert.equal(await page.locator('#timeline .bar.sleep').count(), 1);
  await page.screenshot({ path: path.join(shots, 'sleeping.png'), fullPage: true, animations: 'disabled' });
  await page.click('#act-cancel');
  await page.waitForSelector('#confirm:not([hidden])');
  await page.click('#confirm-yes');
  await page.waitForSelector('#toast:not([hidden])');
  assert.match(await page.locator('#toast').textContent(), /requested/);
  // The worker picks the request up within a second; the page polls every two.
  await page.waitForFunction(() => document.querySelector('#d-status').textContent === 'cancelled', null, { timeout: 20_000 });
  assert.equal(await page.locator('#act-cancel').isDisabled(), true);
  await page.screenshot({ path: path.join(shots, 'cancelled.png'), fullPage: true, animations: 'disabled' });

  await page.click('a.back');
  await page.waitForSelector('#list-view:not([hidden])');
  await page.waitForFunction(() => document.querySelector('#counts [data-status="cancelled"] .n').textContent === '2');
  assert.equal(await count('sleeping'), '3');
});

test('the page ran without script errors', () => {
  assert.deepEqual(pageErrors, []);
});
