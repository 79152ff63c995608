// Where cream keeps its files when no flag or variable says otherwise:
// CREAM_HOME (default ./.cream), the registry in <home>/registry.
import { resolve } from 'node:path';

/** CREAM_HOME, or ./.cream, as an absolute path. */
export function creamHome(env: Record<string, string | undefined>, cwd = process.cwd()): string {
  return resolve(cwd, env.CREAM_HOME || '.cream');
}

/** The model registry root: CREAM_REGISTRY, else <CREAM_HOME>/registry. */
export function defaultRegistryRoot(env: Record<string, string | undefined>, cwd = process.cwd()): string {
  return env.CREAM_REGISTRY ? resolve(cwd, env.CREAM_REGISTRY) : resolve(creamHome(env, cwd), 'registry');
}
