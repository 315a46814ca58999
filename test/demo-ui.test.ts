/**
 * The demo as a person sees it: `jobmon-temporal dev --simulated-slurm` (what `npm start` runs) with its
 * own SQLite file and task-queue prefix, reusing the running Temporal dev server; once an integration is
 * integrated and a reap has finished, the Temporal UI in Debian's Chromium (driven by playwright-core)
 * lists the integrations (pending ones only while a finished job's accounting lags: the default
 * USAGE_START_AT=final starts none while its job runs), shows an integration's search attributes and a
 * reap's summary. Screenshots go to test-artifacts/demo-ui/. Then Ctrl-C (SIGINT) stops the demo: exit 0,
 * nothing it started left running.
 */
import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { ScheduleNotFoundError } from '@temporalio/client';
import { chromium, type Page } from 'playwright-core';
import { openJobmonDb } from '../lib/db/connection.js';
import { PENDING_QUERY, uiQuery } from '../dev/commands/dev.js';
import { tcpOpen } from '../dev/stack/process.js';
import { CLI } from './helpers/cli.js';
import { connectTestClient, TEMPORAL_ADDRESS } from './helpers/temporal.js';

const CHROMIUM = '/usr/bin/chromium';
const UI = 'http://127.0.0.1:8233';
const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/demo-ui/', import.meta.url));
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Thrown by a probe to stop waiting at once. */
class GiveUp extends Error {}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch((e: unknown) => {
      if (e instanceof GiveUp) throw e;
      return undefined;
    });
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(1000);
  }
}

/** Every process below `pid` (children, grandchildren, ...). */
function descendants(pid: number): number[] {
  let out = '';
  try {
    out = execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' });
  } catch {
    return [];
  }
  const kids = out
    .split('\n')
    .map((s) => Number(s.trim()))
    .filter((n) => n > 0);
  return kids.flatMap((k) => [k, ...descendants(k)]);
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test("npm start's demo: integrations and reaps visible in the Temporal UI; Ctrl-C stops everything it started", async (t) => {
  t.timeout(280_000);
  t.true(existsSync(CHROMIUM), `${CHROMIUM} is missing: scripts/ensure-deps.sh installs Debian's chromium`);
  const dir = mkdtempSync(join(tmpdir(), 'jt-demo-'));
  const prefix = `ui${randomBytes(3).toString('hex')}-`;
  const dbUrl = `sqlite:${join(dir, 'jobmon.sqlite3')}`;
  const child = spawn(process.execPath, [CLI, 'dev', '--simulated-slurm'], {
    env: { ...process.env, JOBMON_DB_URL: dbUrl, TEMPORAL_TASK_QUEUE_PREFIX: prefix, TEMPORAL_ADDRESS },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => {
    output += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    output += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const client = await connectTestClient();
  const db = openJobmonDb(dbUrl, { min: 0, max: 1 });
  mkdirSync(ARTIFACTS, { recursive: true });
  try {
    const demoAlive = () => {
      if (child.exitCode !== null) throw new GiveUp(`the demo exited with ${child.exitCode}:\n${output}`);
    };
    await until('the demo to be ready', 120_000, () => {
      demoAlive();
      return Promise.resolve(output.includes('Ready in') ? true : undefined);
    }).catch((e: Error) => {
      throw new Error(`${e.message}\n${output}`);
    });
    t.regex(
      output,
      /✓ Temporal dev server\s+already running \(reused\)/,
      'the running dev server is reused, not a second one started',
    );
    t.regex(output, /✓ Jobmon database\s+sqlite file .*Jobmon 3\.6\.0 schema created/);
    t.true(
      output.includes(uiQuery(UI, 'default', `${PENDING_QUERY} AND TaskQueue='${prefix}jobmon-usage-integration'`)),
      'the UI link of the pending-integrations query is printed',
    );
    const restUrl = /simulated slurmrestd\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(output)?.[1];
    t.truthy(restUrl);

    const usageQueue = `${prefix}jobmon-usage-integration`;
    const reaperQueue = `${prefix}jobmon-reaper`;
    const pendingQuery = `${PENDING_QUERY} AND TaskQueue='${usageQueue}'`;
    const integrationsQuery = `WorkflowType='usageIntegration' AND TaskQueue='${usageQueue}'`;
    const reapsQuery = `WorkflowType='reaper' AND ExecutionStatus='Completed' AND TaskQueue='${reaperQueue}'`;
    // An integration integrated (usage written into task_instance) and a reap finished that reaped a task
    // instance (a node of the simulation died). The pending query must be one the server answers.
    const reapId = await until('an integrated integration and a finished reap that reaped', 200_000, async () => {
      demoAlive();
      const integrated = (await db('jt_usage_integration as ui')
        .join('task_instance as ti', 'ti.id', 'ui.task_instance_id')
        .where('ui.outcome', 'integrated')
        .whereNotNull('ti.maxrss')
        .count({ n: '*' })
        .first()) as { n: unknown };
      const pending = (await client.workflow.count(pendingQuery)).count;
      let reaps = 0;
      let reaped: string | undefined;
      for await (const wf of client.workflow.list({ query: reapsQuery })) {
        reaps++;
        if (reaped === undefined && /task_instance \w→U/.test(String(wf.memo?.reaper))) reaped = wf.workflowId;
      }
      t.log(
        `integrated ${Number(integrated.n)}, finished reaps ${reaps} (one that reaped an instance: ${reaped ?? 'none yet'}), pending ${pending}`,
      );
      return Number(integrated.n) >= 1 && reaped !== undefined ? reaped : undefined;
    });

    const userDataDir = mkdtempSync(join(tmpdir(), 'jt-chromium-'));
    const browser = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1400, height: 1000 },
    });
    const shot = async (page: Page, name: string) => {
      const path = join(ARTIFACTS, name);
      await page.screenshot({ path, fullPage: true });
      t.log(`screenshot: ${path}`);
    };
    try {
      const page = await browser.newPage();
      // The integrations, through the UI's own URL (pending ones are rare at the defaults: see above).
      await page.goto(uiQuery(UI, 'default', integrationsQuery));
      const rows = page.locator(`a[href*="/workflows/${prefix}usage-integration-"]`);
      await rows.first().waitFor({ timeout: 30_000 });
      t.true((await rows.count()) >= 1, 'integrations are listed');
      await page.getByText('usageIntegration').first().waitFor();
      await shot(page, '01-integrations.png');

      await rows.first().click();
      await page.waitForURL(/\/workflows\/[^/]+\/[^/]+\/history/);
      // The workflow page's "Search Attributes" tab.
      await page
        .getByRole('tab', { name: 'Search Attributes' })
        .or(page.getByRole('link', { name: 'Search Attributes' }))
        .first()
        .click();
      await page.getByText('JobmonTaskInstanceId').first().waitFor({ timeout: 30_000 });
      const attributes = await page.locator('body').innerText();
      for (const name of ['JobmonTaskInstanceId', 'JobmonUsagePhase', 'JobmonDistributorId', 'JobmonWorkflowRunId'])
        t.true(attributes.includes(name), `${name} is shown`);
      t.regex(attributes, /"JobmonUsagePhase": "(waiting_for_job|waiting_for_accounting|integrated|dropped)"/);
      await shot(page, '02-integration-search-attributes.png');

      await page.goto(uiQuery(UI, 'default', reapsQuery));
      const reaps = page.locator(`a[href*="/workflows/${prefix}jobmon-reaper-"]`);
      await reaps.first().waitFor({ timeout: 30_000 });
      await shot(page, '03-finished-reaps.png');
      await page.getByRole('link', { name: reapId, exact: true }).first().click();
      await page.getByText('"transitions"').first().waitFor({ timeout: 30_000 });
      const reap = await page.locator('body').innerText();
      t.regex(reap, /Result[\s\S]*"breaker"[\s\S]*"transitions"/, "the reap's summary is shown as its result");
      t.regex(reap, /"table": "task_instance",\s*"from": "\w",\s*"to": "U"/, 'with the instance it reaped');
      await shot(page, '04-reap-summary.png');
    } finally {
      await browser.close();
      rmSync(userDataDir, { recursive: true, force: true });
    }

    // Ctrl-C: everything the demo started stops, and it exits 0.
    const before = descendants(child.pid!);
    child.kill('SIGINT');
    const code = await Promise.race([exited, sleep(60_000).then(() => 'timeout' as const)]);
    t.is(code, 0, output.slice(-3000));
    t.regex(output, /stopped: nothing this command started is left running\./);
    t.regex(output, /✓ simulator\s+stopped/);
    t.regex(output, /✓ schedules\s+.*deleted/);
    t.deepEqual(before.filter(alive), [], 'its child processes are gone');
    t.false(await tcpOpen('127.0.0.1', Number(new URL(restUrl!).port)), 'the simulated slurmrestd is closed');
    for (const id of [`${prefix}jobmon-usage-dispatch`, `${prefix}jobmon-reaper`]) {
      await t.throwsAsync(
        client.schedule.getHandle(id).describe(),
        { instanceOf: ScheduleNotFoundError },
        `schedule ${id} removed`,
      );
    }
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    // This test's integrations that never finished stay in the shared dev server otherwise.
    for await (const wf of client.workflow.list({
      query: `TaskQueue='${prefix}jobmon-usage-integration' AND ExecutionStatus='Running'`,
    })) {
      await client.workflow
        .getHandle(wf.workflowId, wf.runId)
        .terminate('demo-ui test finished')
        .catch(() => undefined);
    }
    await db.destroy();
    await client.connection.close();
    rmSync(dir, { recursive: true, force: true });
    // The demo's worker and simulator log, named after its prefix, in the shared cache.
    const logFile = /^ {2}log +(\S+)$/m.exec(output)?.[1];
    if (logFile && child.exitCode !== null) rmSync(logFile, { force: true });
  }
});
