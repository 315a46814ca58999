// `npm run test:self-hosted` (scripts/test-self-hosted.sh): the tests against the self-hosted Temporal server.
// One file at a time: the crash test kills and restarts the server the other file uses.
export default {
  files: ['dist/test/self-hosted/**/*.test.js'],
  timeout: '5m',
  concurrency: 1,
  workerThreads: false,
};
