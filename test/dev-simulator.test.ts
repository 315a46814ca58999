/**
 * The simulator behind `jobmon-temporal dev` on the real local Slurm cluster: instances launched as real
 * sbatch jobs, moved to D, E or Z from what Slurm says, a dying node's instance left for the reaper, and
 * every job it submitted cancelled when it stops. Written as Jobmon's server would (the schema rejects
 * anything else).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import test from 'ava';
import { RealSlurm } from '../dev/simulator/clusters.js';
import { Simulator } from '../dev/simulator/simulator.js';
import { createTestDb } from './helpers/databases.js';
import { SLURM_CLUSTER } from './helpers/slurm.js';

/** Slurm's view of one job: state and exit code. */
function sacct(jobId: string): { state: string; exit: number; signal: number } {
  const line =
    execFileSync('sacct', ['-n', '-X', '-P', '-o', 'State,ExitCode', '-j', jobId], { encoding: 'utf8' })
      .trim()
      .split('\n')[0] ?? '';
  const [state = '', exit = '0:0'] = line.split('|');
  const [code, signal] = exit.split(':').map(Number);
  return { state: state.split(' ')[0]!, exit: code!, signal: signal! };
}

test('real Slurm: launched, running, D/E/Z from how the job ended, a dead node left in R, jobs cancelled at stop', async (t) => {
  t.timeout(240_000);
  const tdb = await createTestDb('sqlite');
  const name = `t${randomBytes(3).toString('hex')}-`;
  // Scripted chances: 7 tasks, no silent run, then a failing job, a resource error, the dying node (always
  // the third launch), then jobs that succeed.
  const script = [0.99, 0.99, 0.1, 0.4];
  let i = 0;
  const lines: string[] = [];
  const sim = new Simulator({
    db: tdb.db,
    cluster: new RealSlurm(SLURM_CLUSTER),
    clusterName: SLURM_CLUSTER,
    namePrefix: name,
    log: (l) => lines.push(l),
    launchEveryMs: 500,
    maxActive: 4,
    concurrentRuns: 1,
    odds: { fails: 0.25, resource: 0.25, nodeDies: 0, runGoesSilent: 0 },
    random: () => script[i++] ?? 0.9,
  });
  try {
    sim.start();
    const deadline = Date.now() + 200_000;
    let rows: { id: number; status: string; distributor_id: string }[] = [];
    for (;;) {
      rows = (await tdb.db('task_instance').orderBy('id').select('id', 'status', 'distributor_id')) as typeof rows;
      const has = (s: string) => rows.some((r) => r.status === s);
      if ((has('D') && has('E') && has('Z') && sim.counters.nodesKilled === 1) || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    t.log(lines.join('\n'));
    const [fails, resource, dies] = rows;
    t.truthy(fails && resource && dies, 'three instances launched');
    t.regex(fails!.distributor_id, /^\d+$/, 'a real Slurm job id');
    t.is(fails!.status, 'E');
    t.like(sacct(fails!.distributor_id), { state: 'FAILED', exit: 3 });
    t.is(resource!.status, 'Z');
    t.like(
      sacct(resource!.distributor_id),
      { state: 'FAILED', signal: 9 },
      'killed by SIGKILL, as an out-of-memory kill',
    );
    t.is(dies!.status, 'R', "the dead node's instance stops reporting and stays R: the reaper's business");
    t.is(sim.counters.nodesKilled, 1);
    const done = rows.find((r) => r.status === 'D');
    t.truthy(done);
    t.is(sacct(done!.distributor_id).state, 'COMPLETED');
    // The failed tasks were retried with a new instance: a second attempt of the same task.
    const attempts = (await tdb.db('task').where('num_attempts', '>', 1).count({ n: '*' }).first()) as { n: unknown };
    t.true(Number(attempts.n) >= 1, 'an E or Z task is queued again and relaunched');
  } finally {
    const cancelled = await sim.stop();
    t.log(`cancelled at stop: ${cancelled.join(' ') || 'none'}`);
    const left = execFileSync('squeue', ['-h', '-n', `${name}jobmon-demo`, '-o', '%i %T'], { encoding: 'utf8' }).trim();
    t.is(
      left
        .split('\n')
        .filter((l) => l && !/COMPLETING|CANCELLED/.test(l))
        .join('\n'),
      '',
      'no job of the simulator is left queued or running',
    );
    await tdb.drop();
  }
});
