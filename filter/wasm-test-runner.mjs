#!/usr/bin/env node
// Runs a wasm32-wasip1 test binary (a WASI command) under Node's built-in WASI, so
// `cargo test --target wasm32-wasip1` runs the filter's unit tests on the real target:
// 32-bit usize, the wasm allocator, WASI clocks and `random_get`.
//
// Cargo calls it as `<runner> <test.wasm> [libtest args...]`; see filter/.cargo/config.toml.
// libtest on wasm32-wasip1 runs tests one after another (no threads), and a failing test
// aborts the whole binary (panic=abort) before libtest prints the output it captured. So
// after an abort this runner runs the binary once more with `--nocapture`, which shows the
// failing test's panic message, and exits non-zero either way.

import { readFile } from "node:fs/promises";
import process, { argv, env, exit, stderr } from "node:process";

// Node 20 warns that WASI is experimental on every run; the warning is noise here.
process.removeAllListeners("warning");
const { WASI } = await import("node:wasi");

const [wasmPath, ...args] = argv.slice(2);
if (!wasmPath) {
  stderr.write("usage: wasm-test-runner.mjs <test.wasm> [args...]\n");
  exit(2);
}

const module = await WebAssembly.compile(await readFile(wasmPath));

// Anything besides WASI (e.g. a proxy-wasm hostcall linked in by mistake) gets a stub that
// fails loudly when called, instead of an instantiation error that names nothing useful.
const stubs = {};
for (const { module: from, name, kind } of WebAssembly.Module.imports(module)) {
  if (from === "wasi_snapshot_preview1" || kind !== "function") continue;
  stubs[from] ??= {};
  stubs[from][name] = () => {
    throw new Error(`host function ${from}.${name} called in a test; it only exists in Envoy`);
  };
}

/** Runs the binary once; returns its exit code, or null when it aborted. */
async function run(runArgs) {
  const wasi = new WASI({
    version: "preview1",
    args: [wasmPath, ...runArgs],
    env,
    // Cargo runs tests in the package directory; relative paths resolve there, as natively.
    preopens: { ".": process.cwd() },
    returnOnExit: true,
  });
  const instance = await WebAssembly.instantiate(module, {
    ...stubs,
    wasi_snapshot_preview1: wasi.wasiImport,
  });
  // Doctests link the whole library, whose proxy-wasm entry point exports `_initialize` (a
  // reactor's); Node refuses a command that has one. Tests never call it, so hand WASI only
  // what a command needs.
  const { _start, memory } = instance.exports;
  try {
    return wasi.start({ exports: { _start, memory } });
  } catch (err) {
    if (err instanceof WebAssembly.RuntimeError) return null;
    throw err;
  }
}

const code = await run(args);
if (code !== null) exit(code);
if (args.includes("--nocapture") || args.includes("--no-capture")) exit(101);
stderr.write("\nwasm-test-runner: a test aborted the binary; running again with --nocapture to show why\n\n");
await run([...args, "--nocapture"]);
exit(101);
