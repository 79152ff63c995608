// `cream models`: the model registry from the command line. `import` turns a
// Hugging Face directory (e.g. from `cream init-model`, or a user's own
// checkpoint) into an immutable, checksummed version the services can load;
// `list` shows the versions, `verify` re-checks one.
import { describeConfig, option, readConfig } from '@cream/service-kit';
import { defaultRegistryRoot, ModelRegistry } from '@cream/store';

function registryOption(env: Record<string, string | undefined>) {
  return option.string({
    flag: 'registry',
    env: 'CREAM_REGISTRY',
    description: 'model registry folder (default <CREAM_HOME or ./.cream>/registry)',
    default: defaultRegistryRoot(env),
    nonEmpty: true,
  });
}

const usage = `Usage:
  cream models import DIR [--version NAME] [--registry DIR]   publish a Hugging Face directory as a version
  cream models list [--registry DIR]                          versions, oldest first (the last is "latest")
  cream models verify VERSION [--registry DIR]                recompute every checksum of a version`;

/** Runs `cream models ...`; resolves with the exit code. */
export async function models(argv: readonly string[], env: Record<string, string | undefined>): Promise<number> {
  const [action, ...rest] = argv;
  const spec = {
    registry: registryOption(env),
    version: option.string({ flag: 'version', description: 'version name for import (default: generated)', default: '' }),
    help: option.bool({ flag: 'help', description: 'print this help and exit', default: false }),
  };
  if (action === undefined || action === '--help' || action === '-h') {
    process.stdout.write(`${usage}\n\nOptions:\n${describeConfig(spec)}\n`);
    return action === undefined ? 2 : 0;
  }
  const config = readConfig(spec, { argv: rest, env });
  if (config.help) {
    process.stdout.write(`${usage}\n\nOptions:\n${describeConfig(spec)}\n`);
    return 0;
  }
  const registry = await ModelRegistry.open(config.registry);
  switch (action) {
    case 'import': {
      const [dir] = config.positionals;
      if (!dir) {
        process.stderr.write('cream models import: give the model directory\n');
        return 2;
      }
      const record = await registry.importDirectory(dir, { version: config.version || undefined });
      process.stdout.write(`imported ${dir} as ${record.version} (${record.manifest.files.length} files, manifest sha256 ${record.manifestSha256}) into ${config.registry}\n`);
      return 0;
    }
    case 'list': {
      const versions = await registry.list();
      if (versions.length === 0) process.stdout.write(`no versions in ${config.registry}\n`);
      for (const v of versions) {
        const bytes = v.manifest.files.reduce((sum, f) => sum + f.bytes, 0);
        process.stdout.write(`${v.version}\t${v.manifest.createdAt}\tparent ${v.manifest.parent ?? '-'}\t${v.manifest.recipe.method}\t${bytes} bytes\n`);
      }
      return 0;
    }
    case 'verify': {
      const [version] = config.positionals;
      if (!version) {
        process.stderr.write('cream models verify: give the version\n');
        return 2;
      }
      const record = await registry.verify(version);
      process.stdout.write(`${record.version}: every file matches its manifest\n`);
      return 0;
    }
    default:
      process.stderr.write(`cream models: unknown action "${action}"\n${usage}\n`);
      return 2;
  }
}
