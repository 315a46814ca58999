/**
 * Failing a node of the real local Slurm cluster, and always putting it back. Setting a node DOWN kills
 * every job on it, so a test that does must run alone (test/serial/, run after the main suite).
 */
import { execFile } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The node's state as `scontrol show node` prints it: `IDLE`, `DOWN+NOT_RESPONDING`, `IDLE+DRAIN`, … */
export async function nodeState(node: string): Promise<string> {
  const { stdout } = await run('scontrol', ['show', 'node', node, '--oneliner']);
  const m = / State=(\S+)/.exec(stdout);
  if (!m) throw new Error(`scontrol show node ${node} printed no State: ${stdout.trim()}`);
  return m[1]!;
}

/** Up and schedulable: idle or running jobs, with no flag that keeps jobs off it. */
export function inService(state: string): boolean {
  const [base, ...flags] = state.split('+');
  return (
    ['IDLE', 'MIXED', 'ALLOCATED'].includes(base!) &&
    !flags.some((f) => /DOWN|DRAIN|FAIL|NOT_RESPONDING|MAINT|REBOOT/.test(f))
  );
}

/** The job's squeue state (`RUNNING`, `PENDING`, …), or '' once squeue no longer shows it. */
export async function queueState(jobId: string): Promise<string> {
  const { stdout } = await run('squeue', ['-h', '-j', jobId, '-o', '%T']).catch(() => ({ stdout: '' }));
  return stdout.trim();
}

/**
 * Waits until squeue shows no job but `ours`: a node set DOWN would kill the others (a test must never
 * end someone else's job). Fails, naming them, if they are still there after `timeoutSeconds`.
 */
export async function waitForNoOtherJobs(ours: readonly string[], timeoutSeconds: number): Promise<void> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  for (;;) {
    const { stdout } = await run('squeue', ['-h', '-o', '%i %u %T %N %j']);
    const others = stdout
      .trim()
      .split('\n')
      .filter((l) => l && !ours.includes(l.split(' ')[0]!));
    if (others.length === 0) return;
    if (Date.now() > deadline)
      throw new Error(
        `other Slurm jobs are queued or running, and setting a node DOWN would kill them: ${others.join('; ')}`,
      );
    await sleep(2000);
  }
}

export async function setNodeDown(node: string, reason: string): Promise<void> {
  await run('scontrol', ['update', `nodename=${node}`, 'state=down', `reason=${reason}`]);
}

/**
 * Puts the node back and waits until it is in service. With ReturnToService=2 (scripts/slurm-up.sh)
 * slurmctld returns an admin-downed node by itself as soon as its slurmd answers; elsewhere it stays DOWN
 * until `state=resume`. `resume` on a node already back fails ("Invalid node state specified"): ignored,
 * the state read next decides.
 */
export async function returnToService(node: string, timeoutSeconds = 120): Promise<string> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  for (;;) {
    const state = await nodeState(node);
    if (inService(state)) return state;
    if (Date.now() > deadline) {
      throw new Error(
        `Slurm node ${node} is still ${state} after ${timeoutSeconds} s: run \`scontrol update nodename=${node} state=resume\``,
      );
    }
    if (/DOWN|DRAIN/.test(state))
      await run('scontrol', ['update', `nodename=${node}`, 'state=resume']).catch(() => undefined);
    await sleep(1000);
  }
}
