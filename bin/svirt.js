#!/usr/bin/env node
// The svirt CLI entry: everything lives in the compiled dist/ (npm run build).
import { main } from '../dist/src/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
