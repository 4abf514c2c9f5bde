#!/usr/bin/env node
// A native-solc look-alike around the npm `solc` package (solcjs, WebAssembly).
//
// py-solc-x (and so ape-solidity) and crytic-compile call an executable `solc-v<version>` with
// `--version` or `--standard-json [--base-path P] [--include-path P]... [--allow-paths P,..]`.
// The solcjs CLI is not usable for this (it prints a banner before the JSON and its piped output
// was seen truncated at 64 KiB), so this shim calls the compiler API directly and writes the
// whole output with blocking writes.
'use strict';
const fs = require('fs');
const path = require('path');

// Resolve `solc` from the repository's node_modules whatever the working directory is.
const repoRoot = path.resolve(__dirname, '..', '..');
const solc = require(require.resolve('solc', { paths: [repoRoot] }));

function writeAll(fd, text) {
  const buf = Buffer.from(text, 'utf8');
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(fd, buf, off, buf.length - off);
    } catch (e) {
      if (e.code !== 'EAGAIN') throw e;
    }
  }
}

function readStdin() {
  const chunks = [];
  const buf = Buffer.alloc(1 << 16);
  for (;;) {
    let n;
    try {
      n = fs.readSync(0, buf, 0, buf.length, null);
    } catch (e) {
      if (e.code === 'EAGAIN') continue;
      if (e.code === 'EOF') break;
      throw e;
    }
    if (n === 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  return Buffer.concat(chunks).toString('utf8');
}

function main(argv) {
  if (argv.includes('--version') || argv.includes('-v')) {
    writeAll(1, `solc, the solidity compiler commandline interface\nVersion: ${solc.version().replace('Emscripten.clang', 'Linux.g++')}\n`);
    return 0;
  }
  if (!argv.includes('--standard-json')) {
    writeAll(2, 'solc shim: only --version and --standard-json are supported\n');
    return 1;
  }
  const roots = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const take = (flag) => (a === flag ? argv[++i] : a.startsWith(flag + '=') ? a.slice(flag.length + 1) : null);
    const base = take('--base-path');
    if (base !== null) { roots.unshift(base); continue; }
    const inc = take('--include-path');
    if (inc !== null) { roots.push(inc); continue; }
    const allow = take('--allow-paths');
    if (allow !== null) { roots.push(...allow.split(',').filter(Boolean)); continue; }
  }
  roots.push(process.cwd());

  function findImports(importPath) {
    const candidates = path.isAbsolute(importPath)
      ? [importPath]
      : roots.map((r) => path.resolve(r, importPath));
    for (const c of candidates) {
      try {
        if (fs.statSync(c).isFile()) return { contents: fs.readFileSync(c, 'utf8') };
      } catch (_) { /* try the next root */ }
    }
    return { error: `File not found: ${importPath} (searched ${roots.join(', ')})` };
  }

  const input = readStdin();
  const output = solc.compile(input, { import: findImports });
  writeAll(1, output);
  return 0;
}

process.exitCode = main(process.argv.slice(2));
