#!/usr/bin/env node
// The `lifeboat` executable: loads the bundled CLI (npm run build: tsc writes dist/, then
// scripts/bundle.mjs joins it into dist/lifeboat/, which starts faster).
import { main } from '../dist/lifeboat/main.js';

process.exitCode = await main(process.argv);
