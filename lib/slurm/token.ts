/** Reads a Slurm JWT from its file; accepts the bare token or `SLURM_JWT=…` as `scontrol token` prints it. */
import { readFileSync } from 'node:fs';

export function readTokenFile(path: string): string {
  const text = readFileSync(path, 'utf8').trim();
  const token = text.startsWith('SLURM_JWT=') ? text.slice('SLURM_JWT='.length) : text;
  if (!token) throw new Error(`Slurm token file ${path} is empty`);
  return token;
}
