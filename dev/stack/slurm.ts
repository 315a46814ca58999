/** The local Slurm cluster: driven by scripts/slurm-*.sh, which install and run the Debian packages. */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileAsync } from './process.js';

const SCRIPTS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'scripts');

async function run(script: string, cacheDir: string): Promise<string> {
  const { stdout, stderr } = await execFileAsync('bash', [join(SCRIPTS, script)], {
    env: { ...process.env, JOBMON_TEMPORAL_CACHE: cacheDir },
    maxBuffer: 16 * 1024 * 1024,
    timeout: 20 * 60_000,
  });
  return `${stdout}${stderr}`;
}

/**
 * Brings Slurm up, passing each line of slurm-up.sh's output on as it comes: a cold start installs
 * packages for minutes, and an operator should see it happen.
 */
export async function slurmUp(cacheDir: string, onLine: (line: string) => void = () => undefined): Promise<void> {
  const child = spawn('bash', [join(SCRIPTS, 'slurm-up.sh')], {
    env: { ...process.env, JOBMON_TEMPORAL_CACHE: cacheDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const tail: string[] = [];
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on('line', (line) => {
      onLine(line);
      tail.push(line);
      if (tail.length > 20) tail.shift();
    });
  }
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject).once('close', resolve);
  });
  if (code !== 0) throw new Error(`slurm-up.sh exited with ${code}: ${tail.slice(-5).join(' | ')}`);
}
export const slurmDown = (cacheDir: string) => run('slurm-down.sh', cacheDir);
export async function slurmStatus(cacheDir: string): Promise<{ ok: boolean; text: string }> {
  try {
    return { ok: true, text: await run('slurm-status.sh', cacheDir) };
  } catch (e) {
    const err = e as { stdout?: string; message: string };
    return { ok: false, text: err.stdout ?? err.message };
  }
}

/** SLURM_* settings that slurm-up.sh wrote for the local cluster (no token inside, only its file). */
export function localSlurmEnv(cacheDir: string): Record<string, string> {
  const file = join(cacheDir, 'slurm.env');
  if (!existsSync(file)) return {};
  const out: Record<string, string> = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}
