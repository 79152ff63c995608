#!/usr/bin/env node
// Regenerates libs/proto/src/gen from proto/ (ts-proto via buf, plus a binary
// FileDescriptorSet for gRPC reflection), or with --check verifies that the
// committed output is exactly what the generator produces (the drift check).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, cpSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const libRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const workspaceRoot = resolve(libRoot, '../..');
const protoRoot = join(workspaceRoot, 'proto');
const committed = join(libRoot, 'src', 'gen');
const binDir = join(workspaceRoot, 'node_modules', '.bin');
const env = { ...process.env, PATH: `${binDir}:${process.env.PATH ?? ''}` };
const check = process.argv.includes('--check');

function run(args, cwd) {
  execFileSync(join(binDir, 'buf'), args, { cwd, env, stdio: ['ignore', 'inherit', 'inherit'] });
}

function generate(outBase) {
  run(['lint'], protoRoot);
  run(['generate', '--template', 'buf.gen.yaml', '-o', outBase], protoRoot);
  // Descriptors with source info, so reflection clients (grpcurl describe) show the comments.
  run(['build', '-o', join(outBase, 'gen', 'cream.binpb')], protoRoot);
}

function listFiles(root, dir = root) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...listFiles(root, path));
    else out.push(relative(root, path));
  }
  return out.sort();
}

const scratch = mkdtempSync(join(tmpdir(), 'cream-codegen-'));
try {
  generate(scratch);
  const fresh = join(scratch, 'gen');
  if (!check) {
    rmSync(committed, { recursive: true, force: true });
    cpSync(fresh, committed, { recursive: true });
    console.log(`codegen: wrote ${listFiles(committed).length} files to ${relative(workspaceRoot, committed)}`);
  } else {
    const problems = [];
    const want = listFiles(fresh);
    const have = existsSync(committed) ? listFiles(committed) : [];
    for (const f of want) if (!have.includes(f)) problems.push(`missing: ${f}`);
    for (const f of have) if (!want.includes(f)) problems.push(`not generated (remove it): ${f}`);
    for (const f of want) {
      if (have.includes(f) && !readFileSync(join(fresh, f)).equals(readFileSync(join(committed, f)))) {
        problems.push(`differs from the generator's output: ${f}`);
      }
    }
    if (problems.length > 0) {
      console.error(`codegen drift in ${relative(workspaceRoot, committed)} (run \`npm run codegen\` and commit):`);
      for (const p of problems) console.error(`  ${p}`);
      process.exit(1);
    }
    console.log(`codegen-check: ${want.length} generated files match proto/`);
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
