// The environment a container of a rendered Deployment gets, computed the way the kubelet does:
// envFrom ConfigMaps first, then `env` in order, with $(VAR) references expanded from what is
// defined before them and downward-API fields filled from the pod.
import type { IContainer } from 'kubernetes-models/v1/Container';
import { configMapByBaseName, type KubernetesObject } from './manifests';

/** What the downward API would report for the pod. */
export interface PodFacts {
  name: string;
  namespace: string;
  nodeName: string;
}

/** Kubernetes' $(VAR) expansion: defined names expand, $$ escapes, unknown references stay as written. */
export function expandReferences(value: string, defined: Record<string, string>): string {
  return value.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (match, name: string | undefined) =>
    name === undefined ? '$' : (defined[name] ?? match),
  );
}

/** The container's environment variables; throws on a reference to a missing ConfigMap or field. */
export function containerEnvironment(container: IContainer, objects: readonly KubernetesObject[], pod: PodFacts): Record<string, string> {
  const env: Record<string, string> = {};
  for (const source of container.envFrom ?? []) {
    if (!source.configMapRef?.name) throw new Error(`container ${container.name}: only envFrom configMapRef is supported here`);
    const name = source.configMapRef.name;
    const configMap = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === name) ?? configMapByBaseName(objects, name);
    Object.assign(env, (configMap as { data?: Record<string, string> }).data ?? {});
  }
  const fields: Record<string, string> = { 'metadata.name': pod.name, 'metadata.namespace': pod.namespace, 'spec.nodeName': pod.nodeName };
  for (const variable of container.env ?? []) {
    if (variable.value !== undefined) {
      env[variable.name] = expandReferences(variable.value, env);
    } else if (variable.valueFrom?.fieldRef) {
      const value = fields[variable.valueFrom.fieldRef.fieldPath];
      if (value === undefined) throw new Error(`container ${container.name}: ${variable.name} reads unsupported field ${variable.valueFrom.fieldRef.fieldPath}`);
      env[variable.name] = value;
    } else {
      throw new Error(`container ${container.name}: ${variable.name} has a value source this check does not model`);
    }
  }
  return env;
}
