// ava's configuration for the tests that must run alone (dist/test/serial/): one file at a time, each
// file's tests one after another. They fail a node of the shared Slurm cluster, which kills every job on
// it, so scripts/test.sh runs them after the main run (package.json's ava.files leaves them out).
export default {
  files: ['dist/test/serial/**/*.test.js'],
  timeout: '5m',
  concurrency: 1,
  serial: true,
  workerThreads: false,
};
