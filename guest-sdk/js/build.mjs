#!/usr/bin/env node
// Builds a JavaScript Apiary plugin into a WebAssembly component with componentize-js.
//
//   node build.mjs --wit <wit dir> [--world plugin] --out <file.wasm> [--stock-http] <entry.js>
//
// Options:
//   --wit DIR          the WIT package (Apiary's wit/ directory)
//   --world NAME       the world to target (default: plugin)
//   --out FILE         where to write the component
//   --stock-http       keep StarlingMonkey's `fetch()` (imports wasi:http/outgoing-handler);
//                      without it the component imports no wasi:http interface at all
//   --disable F[,F]    also disable these componentize-js features (stdio, random, clocks)
//   --sdk FILE         the SDK module to build with (default: apiary-sdk.mjs next to this file)
//   --modules DIR      a node_modules directory holding @bytecodealliance/componentize-js
//                      (default: $APIARY_COMPONENTIZE_JS, then each $NODE_PATH entry, then
//                      Node's own resolution from this file)
//   --quiet            print nothing on success
//
// How a plugin's modules are resolved: componentize-js 0.23 (StarlingMonkey) resolves every
// import specifier, relative or bare, as a path relative to the importing module, inside one
// directory tree mapped into the build; there is no node_modules lookup and no import map. So the
// build copies the entry's directory (its .js/.mjs files) to a staging directory, writes the SDK
// there as the file `apiary-sdk` (the specifier plugins import), and in each subdirectory a
// one-line `apiary-sdk` re-exporting it, so `import ... from "apiary-sdk"` works at any depth and
// every module shares one SDK instance. No bundler is involved.

import { spawnSync } from "node:child_process";
import { cp, mkdtemp, readdir, readFile, rm, writeFile, stat } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, delimiter, dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

/** The specifier plugins import the SDK by. */
const SDK_SPECIFIER = "apiary-sdk";
/** componentize-js features every plugin loses: it exports no `wasi:http/incoming-handler`. */
const ALWAYS_DISABLED = ["fetch-event"];
/** The componentize-js version this script and the SDK were tested with (package.json pins it). */
const TESTED_VERSION = "0.23.0";
/** Directories never copied into the staging directory. */
const SKIPPED_DIRS = new Set(["node_modules", "target", ".git"]);

function usage(message) {
  if (message) console.error(`build.mjs: ${message}`);
  console.error(
    "usage: node build.mjs --wit <wit dir> [--world plugin] --out <file.wasm> [--stock-http] " +
      "[--disable f1,f2] [--sdk FILE] [--modules DIR] [--quiet] <entry.js>",
  );
  process.exit(2);
}

function parseArgs(argv) {
  const args = { world: "plugin", stockHttp: false, disable: [], quiet: false };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${arg} needs a value`);
      return argv[++i];
    };
    switch (arg) {
      case "--wit":
        args.wit = value();
        break;
      case "--world":
        args.world = value();
        break;
      case "--out":
      case "-o":
        args.out = value();
        break;
      case "--stock-http":
        args.stockHttp = true;
        break;
      case "--disable":
        args.disable.push(...value().split(",").filter(Boolean));
        break;
      case "--sdk":
        args.sdk = value();
        break;
      case "--modules":
        args.modules = value();
        break;
      case "--quiet":
        args.quiet = true;
        break;
      case "--help":
      case "-h":
        usage();
        break;
      default:
        if (arg.startsWith("-")) usage(`unknown option ${arg}`);
        if (args.entry) usage(`more than one entry module: ${args.entry}, ${arg}`);
        args.entry = arg;
    }
  }
  if (!args.wit || !args.out || !args.entry) usage("--wit, --out and an entry module are required");
  const bad = args.disable.filter((f) => !["stdio", "random", "clocks", "http", "fetch-event"].includes(f));
  if (bad.length > 0) usage(`unknown feature(s) to disable: ${bad.join(", ")}`);
  return args;
}

/** Imports componentize-js from an explicit node_modules directory, NODE_PATH, or normally. */
async function loadComponentize(modulesDir) {
  const candidates = [];
  if (modulesDir) candidates.push(modulesDir);
  else if (process.env.APIARY_COMPONENTIZE_JS) candidates.push(process.env.APIARY_COMPONENTIZE_JS);
  else candidates.push(...(process.env.NODE_PATH ?? "").split(delimiter).filter(Boolean));
  for (const dir of candidates) {
    const pkgDir = join(resolve(dir), "@bytecodealliance", "componentize-js");
    const pkgFile = join(pkgDir, "package.json");
    if (!existsSync(pkgFile)) continue;
    const pkg = JSON.parse(await readFile(pkgFile, "utf8"));
    const entry = pkg.exports?.import ?? pkg.exports?.["."]?.import ?? pkg.module ?? pkg.main;
    const module = await import(pathToFileURL(join(pkgDir, entry)).href);
    return { componentize: module.componentize, version: pkg.version, from: pkgDir };
  }
  if (modulesDir || process.env.APIARY_COMPONENTIZE_JS) {
    throw new Error(
      `@bytecodealliance/componentize-js is not installed in ${candidates[0]} ` +
        "(install it there with `npm install @bytecodealliance/componentize-js@" + TESTED_VERSION + "`)",
    );
  }
  try {
    const module = await import("@bytecodealliance/componentize-js");
    return { componentize: module.componentize, version: module.version, from: "node resolution" };
  } catch (error) {
    throw new Error(
      "cannot find @bytecodealliance/componentize-js: set APIARY_COMPONENTIZE_JS to the node_modules " +
        `directory holding it, pass --modules, or run \`npm install\` in ${dirname(fileURLToPath(import.meta.url))} ` +
        `(${error.message})`,
    );
  }
}

/** Copies the entry's directory tree (JavaScript modules only) into `staging`; returns the copies. */
async function stage(sourceDir, staging, sdkText) {
  const jsDirs = [];
  const files = [];
  async function walk(dir) {
    let hasJs = false;
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const from = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (!SKIPPED_DIRS.has(entry.name) && !entry.name.startsWith(".")) await walk(from);
      } else if (entry.isFile() && /\.(m?js)$/.test(entry.name)) {
        const to = join(staging, relative(sourceDir, from));
        await cp(from, to);
        files.push(to);
        hasJs = true;
      }
    }
    if (hasJs) jsDirs.push(relative(sourceDir, dir));
  }
  await walk(sourceDir);
  if (existsSync(join(sourceDir, SDK_SPECIFIER))) {
    throw new Error(`${join(sourceDir, SDK_SPECIFIER)} exists: that name is reserved for the SDK`);
  }
  await writeFile(join(staging, SDK_SPECIFIER), sdkText);
  for (const dir of jsDirs) {
    if (dir === "") continue;
    const up = dir.split(sep).map(() => "..").join("/");
    await writeFile(join(staging, dir, SDK_SPECIFIER), `export * from "${up}/${SDK_SPECIFIER}";\n`);
  }
  // Every staged `.js` file is an ES module, for the syntax check below.
  await writeFile(join(staging, "package.json"), '{ "type": "module" }\n');
  return files;
}

/**
 * Checks each module's syntax with Node first: componentize-js only says "failed to parse JS
 * source", without where.
 */
function checkSyntax(files, staging, sourceDir) {
  for (const file of files) {
    const result = spawnSync(process.execPath, ["--check", file], { encoding: "utf8" });
    if (result.status !== 0) {
      const message = (result.stderr || result.stdout).split(staging).join(sourceDir).trim();
      throw new Error(`syntax error:\n${message}`);
    }
  }
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const entry = resolve(args.entry);
  if (!(await stat(entry)).isFile()) usage(`${args.entry} is not a file`);
  const sdkPath = args.sdk ? resolve(args.sdk) : fileURLToPath(new URL("./apiary-sdk.mjs", import.meta.url));
  const sdkText = await readFile(sdkPath, "utf8");
  const { componentize, version, from } = await loadComponentize(args.modules);
  if (version && version !== TESTED_VERSION && !args.quiet) {
    console.error(`build.mjs: warning: componentize-js ${version} (from ${from}); tested with ${TESTED_VERSION}`);
  }

  const disableFeatures = [...new Set([...ALWAYS_DISABLED, ...args.disable, ...(args.stockHttp ? [] : ["http"])])];
  if (args.stockHttp && args.disable.includes("http")) usage("--stock-http and --disable http contradict");

  const staging = await mkdtemp(join(tmpdir(), "apiary-js-build-"));
  const started = Date.now();
  const cwd = process.cwd();
  try {
    const files = await stage(dirname(entry), staging, sdkText);
    checkSyntax(files, staging, dirname(entry));
    // componentize-js maps the current directory into the build when the entry is under it
    // (and misbehaves when it is `/`): build from the staging directory.
    process.chdir(staging);
    const { component } = await componentize({
      sourcePath: join(staging, basename(entry)),
      sourceName: basename(entry),
      witPath: resolve(cwd, args.wit),
      worldName: args.world,
      disableFeatures,
    });
    process.chdir(cwd);
    const out = resolve(cwd, args.out);
    await writeFile(out, component);
    if (!args.quiet) {
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      console.error(
        `built ${relative(cwd, out) || out}: ${component.length} bytes in ${seconds}s ` +
          `(componentize-js ${version ?? "?"}, disabled: ${disableFeatures.join(", ")})`,
      );
    }
  } finally {
    process.chdir(cwd);
    await rm(staging, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(`build.mjs: ${error.message ?? error}`);
  process.exit(1);
});
