#!/usr/bin/env node
// The `lifeboat` executable: loads the compiled CLI (npm run build writes dist/).
import { main } from '../dist/cli/main.js';

process.exitCode = await main(process.argv);
