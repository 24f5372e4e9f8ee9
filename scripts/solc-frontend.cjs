#!/usr/bin/env node
// A native-solc-compatible command line over npm `solc` (wasm), so that py-solc-x and Slither
// can drive the official compiler offline. No native solc is reachable from this machine's
// registries (see docs/adr/0001-compiler-front-end.md).
//
// Supported:  --version | --standard-json [--base-path P] [--include-path P]... [--allow-paths ...]
// Anything else exits 1, as a native solc would for options it does not know.
'use strict';
const fs = require('fs');
const path = require('path');

const solc = require(path.join(__dirname, '..', 'node_modules', 'solc'));

function fail(msg) {
  process.stderr.write(msg + '\n');
  process.exit(1);
}

const args = process.argv.slice(2);
let standardJson = false;
let basePath = null;
const includePaths = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  const takeValue = () => {
    if (a.includes('=')) return a.slice(a.indexOf('=') + 1);
    i += 1;
    if (i >= args.length) fail(`option ${a} needs a value`);
    return args[i];
  };
  if (a === '--version') {
    process.stdout.write(
      'solc, the solidity compiler commandline interface\nVersion: ' + solc.version() + '\n'
    );
    process.exit(0);
  } else if (a === '--standard-json') {
    standardJson = true;
  } else if (a === '--base-path' || a.startsWith('--base-path=')) {
    basePath = takeValue();
  } else if (a === '--include-path' || a.startsWith('--include-path=')) {
    includePaths.push(takeValue());
  } else if (a === '--allow-paths' || a.startsWith('--allow-paths=')) {
    takeValue(); // the wasm compiler reads nothing itself; the import callback below decides
  } else if (a === '-' ) {
    // stdin marker, as native solc accepts
  } else {
    fail(`unsupported option: ${a}`);
  }
}
if (!standardJson) fail('only --version and --standard-json are supported');

const roots = [basePath || process.cwd(), ...includePaths].map((p) => path.resolve(p));

function findImports(importPath) {
  for (const root of roots) {
    const candidate = path.resolve(root, importPath);
    if (fs.existsSync(candidate) && fs.statSync(candidate).isFile()) {
      return { contents: fs.readFileSync(candidate, 'utf8') };
    }
  }
  const direct = path.resolve(importPath);
  if (path.isAbsolute(importPath) && fs.existsSync(direct)) {
    return { contents: fs.readFileSync(direct, 'utf8') };
  }
  return { error: `File not found: ${importPath} (searched ${roots.join(', ')})` };
}

const input = fs.readFileSync(0, 'utf8');
process.stdout.write(solc.compile(input, { import: findImports }));
