#!/usr/bin/env node
// The `cream` command. Runs the CLI's TypeScript source through tsx's
// CommonJS hook (no build step between `npm ci` and a working command).
'use strict';
require('tsx/cjs');
const { main } = require('../src/main.ts');

main(process.argv.slice(2), process.env).then(
  (code) => process.exit(code),
  (error) => {
    process.stderr.write(`cream: ${error && error.stack ? error.stack : error}\n`);
    process.exit(1);
  },
);
