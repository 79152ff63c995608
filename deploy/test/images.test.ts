// The container images, checked without a Docker engine: both Dockerfiles are multi-stage with a
// non-root runtime that gets only the build stage's output; the GPU one states and pins the
// CUDA / cuDNN / libtensorflow versions tfjs-node-gpu needs; the command the images run works
// here; and the build context their ignore files leave is what `npm ci` and the build need.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import ignore from '@balena/dockerignore';
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import { describe, expect, it } from 'vitest';
import { envPairs, execForm, instructionsOf, readDockerfile, rootImage, type Dockerfile, type Stage } from './dockerfile';
import { deployRoot, ofKind, render, workspaceRoot } from './manifests';

const dockerDir = join(deployRoot, 'docker');
const images = {
  cpu: { file: 'Dockerfile', backend: 'wasm-native' },
  gpu: { file: 'Dockerfile.gpu', backend: 'tfjs-node-gpu' },
};

function stage(file: Dockerfile, name: string): Stage {
  const found = file.stages.find((s) => s.name === name);
  if (!found) throw new Error(`no stage ${name}; have ${file.stages.map((s) => s.name).join(', ')}`);
  return found;
}

const runs = (s: Stage) => instructionsOf(s, 'RUN').map((i) => i.args).join('\n');
const env = (s: Stage) => Object.assign({}, ...instructionsOf(s, 'ENV').map((i) => envPairs(i.args))) as Record<string, string>;

describe.each(Object.entries(images))('the %s image', (_, image) => {
  const dockerfile = readDockerfile(join(dockerDir, image.file));
  const runtime = dockerfile.stages[dockerfile.stages.length - 1];
  const build = stage(dockerfile, 'build');

  it('is multi-stage: a build stage with the native toolchain, a runtime stage last', () => {
    expect(dockerfile.stages.length).toBeGreaterThanOrEqual(2);
    expect(runtime.name).toBe('runtime');
    expect(runs(build)).toMatch(/apt-get install -y --no-install-recommends python3 make g\+\+/);
    // node-gyp builds libs/compute's addon in the image (npm ci runs no install script itself).
    expect(runs(build)).toContain('npm ci --omit=dev --ignore-scripts');
    expect(runs(build)).toContain('npm run install --workspace @cream/compute');
    const gyp = readFileSync(join(workspaceRoot, 'libs', 'compute', 'binding.gyp'), 'utf8');
    const target = /"target_name":\s*"([^"]+)"/.exec(gyp)![1];
    expect(runs(build)).toContain(`test -f libs/compute/build/Release/${target}.node`);
    expect(env(build).npm_config_nodedir).toBe('/usr/local');
  });

  it('runs on Node 20, the Node these checks run on', () => {
    expect(dockerfile.args.NODE_IMAGE).toMatch(/^node:20\.\d+-bookworm-slim$/);
    expect(dockerfile.args.NODE_IMAGE.split(':')[1].split('.')[0]).toBe(process.versions.node.split('.')[0]);
  });

  it('ships only production files: the runtime stage copies the build stage’s output and installs nothing', () => {
    const copies = [...instructionsOf(runtime, 'COPY'), ...instructionsOf(runtime, 'ADD')];
    expect(copies.length).toBeGreaterThan(0);
    for (const copy of copies) expect(copy.args, `line ${copy.line}`).toMatch(/^--from=build /);
    const sources = copies.flatMap((c) => c.args.split(/\s+/).slice(1, -1));
    expect(sources.sort()).toEqual(['/app/apps', '/app/bench', '/app/libs', '/app/node_modules', '/app/package-lock.json', '/app/package.json', '/app/proto']);
    expect(runs(runtime)).toBe('');
    expect(runs(build)).toContain('--omit=dev');
    expect(runs(build)).toContain("find apps libs bench -name '*.test.ts' -delete");
  });

  it('runs as the non-root user the pods run as (10001), with HOME on the writable /tmp', () => {
    const users = instructionsOf(runtime, 'USER').map((i) => i.args);
    expect(users).toEqual(['10001:10001']);
    const podUsers = new Set(ofKind<IDeployment>(render('overlays/prod'), 'Deployment').map((d) => d.spec!.template.spec!.securityContext!.runAsUser));
    expect([...podUsers]).toEqual([10001]);
    expect(env(runtime).HOME).toBe('/tmp');
    expect(env(runtime).CREAM_BACKEND).toBe(image.backend);
  });

  it('starts `cream` (ENTRYPOINT node apps/cli/bin/cream.js), and its default CMD runs here', () => {
    const entrypoint = execForm(instructionsOf(runtime, 'ENTRYPOINT')[0].args)!;
    const cmd = execForm(instructionsOf(runtime, 'CMD')[0].args)!;
    expect(entrypoint).toEqual(['node', 'apps/cli/bin/cream.js']);
    expect(instructionsOf(runtime, 'WORKDIR').map((i) => i.args)).toEqual(['/app']);
    // WORKDIR /app is the repository root's layout: run the same command there.
    const result = spawnSync(process.execPath, [...entrypoint.slice(1), ...cmd], { cwd: workspaceRoot, encoding: 'utf8' });
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^Usage: cream <command>/m);
    expect(result.stdout).toMatch(/^ {2}serve /m);
  });

  it('exposes the five service ports', () => {
    expect(instructionsOf(runtime, 'EXPOSE').map((i) => i.args)).toEqual(['50051 50052 50053 50054 50055']);
  });
});

describe('the GPU image', () => {
  const dockerfile = readDockerfile(join(dockerDir, 'Dockerfile.gpu'));
  const comments = dockerfile.comments.join(' ');
  const lock = JSON.parse(readFileSync(join(workspaceRoot, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string }> };
  const computeManifest = JSON.parse(readFileSync(join(workspaceRoot, 'libs', 'compute', 'package.json'), 'utf8')) as {
    optionalDependencies?: Record<string, string>;
  };

  it('is based on CUDA 11.2 with cuDNN 8 (runtime) and says which versions tfjs-node-gpu needs', () => {
    expect(dockerfile.args.CUDA_IMAGE).toBe('nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04');
    expect(rootImage(dockerfile, stage(dockerfile, 'runtime'))).toBe(dockerfile.args.CUDA_IMAGE);
    expect(rootImage(dockerfile, stage(dockerfile, 'build'))).toBe(dockerfile.args.CUDA_IMAGE); // the addon links against the glibc it runs with
    expect(comments).toMatch(/tfjs-node-gpu 4\.22\.0 binds libtensorflow 2\.9\.1/);
    expect(comments).toMatch(/CUDA 11\.2/);
    expect(comments).toMatch(/cuDNN 8\.1/);
    expect(comments).toMatch(/CUDA 11\.2\.2 with cuDNN 8\.1\.1/);
  });

  it('installs the @tensorflow/tfjs-node-gpu that package-lock.json pins, and checks libtensorflow 2.9.1 arrived', () => {
    expect(computeManifest.optionalDependencies?.['@tensorflow/tfjs-node-gpu']).toBe('4.22.0');
    expect(lock.packages['node_modules/@tensorflow/tfjs-node-gpu']?.version).toBe('4.22.0');
    const buildRuns = runs(stage(dockerfile, 'build'));
    expect(buildRuns).toContain('npm rebuild @tensorflow/tfjs-node-gpu');
    expect(buildRuns).toContain('test -f node_modules/@tensorflow/tfjs-node-gpu/deps/lib/libtensorflow.so.2.9.1');
  });

  it('uses the same Node image as the CPU image', () => {
    expect(dockerfile.args.NODE_IMAGE).toBe(readDockerfile(join(dockerDir, 'Dockerfile')).args.NODE_IMAGE);
  });
});

/** Non-comment lines of an ignore file. */
function patterns(file: string): string[] {
  return readFileSync(join(dockerDir, file), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

/** The files `docker build -f deploy/docker/<file> .` sends from the repository root, and their total size. */
function buildContext(ignoreFile: string): { files: string[]; bytes: number } {
  const rules = patterns(ignoreFile);
  const matcher = ignore().add(rules);
  const reincluded = rules.filter((r) => r.startsWith('!')).map((r) => r.slice(1));
  const files: string[] = [];
  let bytes = 0;
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      const rel = relative(workspaceRoot, path);
      if (entry.isDirectory()) {
        // An ignored directory is skipped unless an exception re-includes something inside it.
        if (matcher.ignores(rel) && !reincluded.some((r) => r.startsWith(`${rel}/`))) continue;
        walk(path);
      } else if (!matcher.ignores(rel)) {
        files.push(rel);
        bytes += statSync(path).size;
      }
    }
  };
  walk(workspaceRoot);
  return { files: files.sort(), bytes };
}

describe('the build context (deploy/docker/Dockerfile.dockerignore)', () => {
  const context = buildContext('Dockerfile.dockerignore');
  const has = (path: string) => context.files.includes(path);

  it('is the same for both Dockerfiles', () => {
    expect(patterns('Dockerfile.gpu.dockerignore')).toEqual(patterns('Dockerfile.dockerignore'));
  });

  it('holds what npm ci needs: the root package files and the package.json of every workspace in package-lock.json', () => {
    const lock = JSON.parse(readFileSync(join(workspaceRoot, 'package-lock.json'), 'utf8')) as { packages: Record<string, unknown> };
    const workspaces = Object.keys(lock.packages).filter((p) => p !== '' && !p.includes('node_modules/'));
    expect(workspaces.length).toBeGreaterThan(3);
    for (const path of ['package.json', 'package-lock.json', ...workspaces.map((w) => `${w}/package.json`)]) expect(has(path), path).toBe(true);
  });

  it('holds the sources the image runs and builds: apps, libs, the native addon, proto, the benchmarks', () => {
    for (const path of ['apps/cli/bin/cream.js', 'apps/cli/src/main.ts', 'libs/compute/binding.gyp', 'tsconfig.base.json', 'bench/src/run.ts', 'bench/baseline/llama_bench.py']) {
      expect(has(path), path).toBe(true);
    }
    expect(context.files.some((f) => /^libs\/compute\/native\/.+\.cc$/.test(f))).toBe(true);
    expect(context.files.some((f) => /^proto\/cream\/v1\/.+\.proto$/.test(f))).toBe(true);
  });

  it('leaves out installed and built files, tests, version control and deploy/', () => {
    const unwanted = context.files.filter((f) =>
      /(^|\/)node_modules\/|^\.git\/|^libs\/compute\/build\/|\.test\.ts$|^bench\/vitest\.config\.ts$|^deploy\/|^\.nx\/|^\.cream\/|^test\/(?!package\.json$)/.test(f),
    );
    expect(unwanted).toEqual([]);
  });

  it('is small (under 16 MiB)', () => {
    expect(context.bytes).toBeLessThan(16 * 2 ** 20);
  });

  it('agrees with git on what is source: every tracked file it holds is tracked or untracked-but-not-ignored', () => {
    const known = new Set(
      execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], { cwd: workspaceRoot, encoding: 'utf8' })
        .split('\n')
        .filter(Boolean),
    );
    // Anything else would be a local artefact git ignores (a build output, a log) leaking in.
    expect(context.files.filter((f) => !known.has(f))).toEqual([]);
  });
});
