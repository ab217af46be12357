// A running stack for working on the console by hand (not a test):
//   SB_TEST_DATABASE_URL=... node tests/browser/dev.mjs
// prints the console URL and the admin password, and runs until Ctrl-C.
import { startStack } from './lib/stack.mjs';

const stack = await startStack();
console.log(`console: ${stack.base}/  (server ${stack.srv.url})`);
console.log(`admin password: ${stack.adminPassword}`);
console.log(`fake daily: ${stack.daily.origin}`);
const stop = async () => { await stack.stop(); process.exit(0); };
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
