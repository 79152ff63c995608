// The deployment policies, checked on every rendered overlay: each cream service runs as the CLI
// serves it (name, port), is probed over grpc.health.v1, is locked down, has requests and limits
// and a termination grace above its drain; generator and judge have headless Services; the
// NetworkPolicy admits only the coordinator and client namespaces. Then what dev and prod add.
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import type { IProbe } from 'kubernetes-models/v1/Probe';
import type { IService } from 'kubernetes-models/v1/Service';
import type { IServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { containerEnvironment } from './container-environment';
import { configMapByBaseName, creamServices, named, ofKind, overlays, render, selects, serviceDeployments, type KubernetesObject } from './manifests';

const services = creamServices();
const modelServices = ['generator', 'judge', 'trainer'];
const dataUser = 10001;

/** A Kubernetes quantity as a number (cores or bytes). */
function quantity(value: string | number | undefined): number {
  if (value === undefined) return NaN;
  if (typeof value === 'number') return value;
  const match = /^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(value);
  if (!match) throw new Error(`unreadable quantity ${value}`);
  const scale: Record<string, number> = { m: 1e-3, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };
  return Number(match[1]) * (match[2] ? scale[match[2]] : 1);
}

function everyContainer(objects: readonly KubernetesObject[]): Array<{ deployment: IDeployment; container: IContainer }> {
  return ofKind<IDeployment>(objects, 'Deployment').flatMap((deployment) =>
    [...(deployment.spec!.template.spec!.initContainers ?? []), ...deployment.spec!.template.spec!.containers].map((container) => ({ deployment, container })),
  );
}

function environmentOf(objects: readonly KubernetesObject[], deployment: IDeployment, container: IContainer): Record<string, string> {
  return containerEnvironment(container, objects, { name: `${deployment.metadata!.name}-0`, namespace: 'test', nodeName: 'node-0' });
}

/** The value a service reads for a flag: the flag in args, else the environment variable. */
function effectiveOption(container: IContainer, environment: Record<string, string>, flag: string, variable: string): string | undefined {
  const args = container.args ?? [];
  for (let i = args.length - 1; i >= 0; i--) {
    if (args[i] === `--${flag}`) return args[i + 1];
    if (args[i].startsWith(`--${flag}=`)) return args[i].slice(flag.length + 3);
  }
  return environment[variable];
}

describe.each(overlays())('%s', (overlay) => {
  const objects = render(overlay);
  const cream = serviceDeployments(objects, services);

  it('runs every service the CLI knows as `cream serve <service> --host 0.0.0.0 --port <its port>`', () => {
    for (const { service, container } of cream) {
      expect(container.args, service.name).toEqual(['serve', service.name, '--host', '0.0.0.0', '--port', String(service.defaultPort)]);
      expect(container.command, service.name).toBeUndefined(); // the image's ENTRYPOINT runs
      expect(container.ports, service.name).toEqual([{ name: 'grpc', containerPort: service.defaultPort, protocol: 'TCP' }]);
    }
  });

  it('probes every service with grpc.health.v1 on its port: startup, readiness and liveness', () => {
    for (const { service, container } of cream) {
      for (const kind of ['startupProbe', 'readinessProbe', 'livenessProbe'] as const) {
        const probe = container[kind] as IProbe | undefined;
        expect(probe?.grpc, `${service.name} ${kind}`).toEqual({ port: service.defaultPort });
        expect(probe?.httpGet ?? probe?.tcpSocket ?? probe?.exec, `${service.name} ${kind}`).toBeUndefined();
      }
    }
  });

  it('gives model services at least 10 minutes to load weights before liveness applies, and notices NOT_SERVING within 10 s', () => {
    for (const { service, container } of cream) {
      const startup = container.startupProbe!;
      const budget = (startup.periodSeconds ?? 10) * (startup.failureThreshold ?? 3);
      if (modelServices.includes(service.name)) expect(budget, service.name).toBeGreaterThanOrEqual(600);
      else expect(budget, service.name).toBeGreaterThanOrEqual(60);
      const readiness = container.readinessProbe!;
      expect((readiness.periodSeconds ?? 10) * (readiness.failureThreshold ?? 3), service.name).toBeLessThanOrEqual(10);
    }
  });

  it('locks every pod down: non-root, read-only root, no privilege escalation, all capabilities dropped, RuntimeDefault seccomp', () => {
    for (const { deployment, container } of everyContainer(objects)) {
      const name = `${deployment.metadata!.name}/${container.name}`;
      const pod = deployment.spec!.template.spec!;
      expect(pod.securityContext?.runAsNonRoot, name).toBe(true);
      expect(pod.securityContext?.runAsUser, name).toBe(dataUser);
      expect(pod.securityContext?.seccompProfile?.type, name).toBe('RuntimeDefault');
      expect(pod.automountServiceAccountToken, name).toBe(false);
      expect(pod.hostNetwork ?? pod.hostPID ?? pod.hostIPC, name).toBeUndefined();
      const context = container.securityContext;
      expect(context?.runAsNonRoot, name).toBe(true);
      expect(context?.readOnlyRootFilesystem, name).toBe(true);
      expect(context?.allowPrivilegeEscalation, name).toBe(false);
      expect(context?.privileged ?? false, name).toBe(false);
      expect(context?.capabilities?.drop, name).toEqual(['ALL']);
      expect(context?.capabilities?.add, name).toBeUndefined();
    }
    for (const account of ofKind<IServiceAccount>(objects, 'ServiceAccount')) expect(account.automountServiceAccountToken).toBe(false);
  });

  it('gives every container cpu and memory requests and limits, limits not below requests', () => {
    for (const { deployment, container } of everyContainer(objects)) {
      const name = `${deployment.metadata!.name}/${container.name}`;
      const { requests = {}, limits = {} } = container.resources ?? {};
      for (const resource of ['cpu', 'memory']) {
        expect(quantity(requests[resource]), `${name} requests.${resource}`).toBeGreaterThan(0);
        expect(quantity(limits[resource]), `${name} limits.${resource}`).toBeGreaterThanOrEqual(quantity(requests[resource]));
      }
    }
  });

  it('mounts a writable /tmp (emptyDir) and the shared volume at /data, with CREAM_REGISTRY=/data/registry and CREAM_HOME=/data', () => {
    for (const { service, deployment, container } of cream) {
      const volumes = Object.fromEntries((deployment.spec!.template.spec!.volumes ?? []).map((v) => [v.name, v]));
      const mounts = Object.fromEntries((container.volumeMounts ?? []).map((m) => [m.mountPath, m]));
      expect(volumes[mounts['/tmp']?.name]?.emptyDir, service.name).toBeDefined();
      expect(volumes[mounts['/data']?.name]?.persistentVolumeClaim?.claimName, service.name).toBe('cream-data');
      expect(mounts['/data'].readOnly ?? false, service.name).toBe(false);
      const environment = environmentOf(objects, deployment, container);
      expect(environment.CREAM_REGISTRY, service.name).toBe('/data/registry');
      expect(environment.CREAM_HOME, service.name).toBe('/data');
      // Without a collector, each pod appends to its own trace file on the shared volume.
      expect(environment.CREAM_TRACE_FILE, service.name).toBe(`/data/traces/${deployment.metadata!.name}-0.jsonl`);
    }
    const claim = named<IPersistentVolumeClaim>(objects, 'PersistentVolumeClaim', 'cream-data');
    expect(quantity(claim.spec!.resources!.requests!.storage)).toBeGreaterThanOrEqual(quantity('10Gi'));
  });

  it('waits longer than preStop plus the drain (--shutdown-grace-seconds) before it kills a pod', () => {
    for (const { service, deployment, container } of cream) {
      const environment = environmentOf(objects, deployment, container);
      const grace = Number(effectiveOption(container, environment, 'shutdown-grace-seconds', 'CREAM_SHUTDOWN_GRACE_SECONDS') ?? 30);
      const preStop = container.lifecycle?.preStop?.exec?.command ?? [];
      const sleep = preStop[0] === 'sleep' ? Number(preStop[1]) : 0;
      expect(Number.isFinite(grace) && grace > 0, service.name).toBe(true);
      expect(deployment.spec!.template.spec!.terminationGracePeriodSeconds, service.name).toBeGreaterThanOrEqual(sleep + grace + 5);
    }
  });

  it('has a ClusterIP Service per service, and headless Services spreading over every generator and judge replica', () => {
    const all = ofKind<IService>(objects, 'Service');
    for (const { service, deployment } of cream) {
      const labels = deployment.spec!.template.metadata!.labels;
      const selecting = all.filter((s) => selects({ matchLabels: s.spec!.selector }, labels));
      const byName = Object.fromEntries(selecting.map((s) => [s.metadata!.name, s]));
      expect(byName[service.name]?.spec!.clusterIP, service.name).toBeUndefined();
      expect(byName[service.name]?.spec!.ports, service.name).toEqual([{ name: 'grpc', port: service.defaultPort, targetPort: 'grpc', protocol: 'TCP' }]);
      if (service.name === 'generator' || service.name === 'judge') {
        const headless = byName[`${service.name}-headless`];
        expect(headless?.spec!.clusterIP, service.name).toBe('None');
        // Only ready replicas are listed: a replica still loading weights gets no calls.
        expect(headless?.spec!.publishNotReadyAddresses ?? false).toBe(false);
        expect(headless?.spec!.ports).toEqual(byName[service.name].spec!.ports);
      } else {
        expect(Object.keys(byName), service.name).toEqual([service.name]);
      }
    }
  });

  it('points the coordinator’s default endpoints at the Services (headless for generator and judge)', () => {
    const coordinator = cream.find((c) => c.service.name === 'coordinator')!;
    const environment = environmentOf(objects, coordinator.deployment, coordinator.container);
    const endpoints = {
      CREAM_GENERATOR_ENDPOINTS: 'dns:///generator-headless:50051',
      CREAM_JUDGE_ENDPOINTS: 'dns:///judge-headless:50052',
      CREAM_CONSISTENCY_SCORER_ENDPOINT: 'consistency-scorer:50053',
      CREAM_TRAINER_ENDPOINT: 'trainer:50054',
    };
    for (const [variable, expected] of Object.entries(endpoints)) {
      expect(environment[variable]).toBe(expected);
      const [host, port] = expected.replace(/^dns:\/\/\//, '').split(':');
      expect(named<IService>(objects, 'Service', host).spec!.ports!.map((p) => p.port)).toEqual([Number(port)]);
    }
  });

  it('lets only the coordinator and client namespaces reach the services, and the services reach each other and DNS', () => {
    const policy = named<INetworkPolicy>(objects, 'NetworkPolicy', 'cream-services');
    const spec = policy.spec!;
    expect(spec.policyTypes).toEqual(['Ingress', 'Egress']);
    for (const { service, deployment } of cream) expect(selects(spec.podSelector, deployment.spec!.template.metadata!.labels), service.name).toBe(true);
    for (const other of ofKind<IDeployment>(objects, 'Deployment').filter((d) => !services.some((s) => s.name === d.metadata!.name))) {
      expect(selects(spec.podSelector, other.spec!.template.metadata!.labels), other.metadata!.name).toBe(false);
    }
    const servicePorts = services.map((s) => s.defaultPort).sort();
    expect(spec.ingress).toHaveLength(1);
    const [ingress] = spec.ingress!;
    expect(ingress.ports!.map((p) => p.port).sort()).toEqual(servicePorts);
    expect(ingress.from).toEqual([
      { podSelector: { matchLabels: { 'app.kubernetes.io/name': 'coordinator' } } },
      { namespaceSelector: { matchLabels: { 'cream-client': 'allowed' } } },
    ]);
    const coordinatorLabels = named<IDeployment>(objects, 'Deployment', 'coordinator').spec!.template.metadata!.labels;
    expect(selects(ingress.from![0].podSelector, coordinatorLabels)).toBe(true);
    for (const { service, deployment } of cream.filter((c) => c.service.name !== 'coordinator')) {
      expect(selects(ingress.from![0].podSelector, deployment.spec!.template.metadata!.labels), `${service.name} may not call the services`).toBe(false);
    }
    const dns = spec.egress!.find((rule) => rule.ports?.some((p) => p.port === 53));
    expect(dns?.ports).toEqual(expect.arrayContaining([{ protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 53 }]));
    expect(dns?.to?.[0].namespaceSelector?.matchLabels).toEqual({ 'kubernetes.io/metadata.name': 'kube-system' });
    const toServices = spec.egress!.find((rule) => rule.ports?.some((p) => p.port === 50051));
    expect(toServices?.ports?.map((p) => p.port).sort()).toEqual(servicePorts);
    for (const { deployment } of cream) expect(selects(toServices?.to?.[0].podSelector, deployment.spec!.template.metadata!.labels)).toBe(true);
  });

  it('pins every image to a tag', () => {
    for (const { container } of everyContainer(objects)) {
      expect(container.image).toMatch(/^[^:@]+(:[\w.-]+|@sha256:[0-9a-f]{64})$/);
      expect(container.image).not.toMatch(/:latest$/);
    }
  });
});

describe('overlays/dev', () => {
  const objects = render('overlays/dev');
  const cream = serviceDeployments(objects, services);

  it('runs one replica of each service, on the CPU image, without GPUs or a collector', () => {
    for (const { service, deployment, container } of cream) {
      expect(deployment.spec!.replicas, service.name).toBe(1);
      expect(container.image, service.name).toBe('cream:dev');
      expect(JSON.stringify(deployment)).not.toContain('nvidia.com/gpu');
      expect(environmentOf(objects, deployment, container).OTEL_EXPORTER_OTLP_ENDPOINT, service.name).toBeUndefined();
    }
    expect(objects.some((o) => o.metadata.name === 'otel-collector')).toBe(false);
  });

  it('asks for a ReadWriteOnce volume (single-node clusters) and prod for ReadWriteMany', () => {
    expect(named<IPersistentVolumeClaim>(objects, 'PersistentVolumeClaim', 'cream-data').spec!.accessModes).toEqual(['ReadWriteOnce']);
    expect(named<IPersistentVolumeClaim>(render('overlays/prod'), 'PersistentVolumeClaim', 'cream-data').spec!.accessModes).toEqual(['ReadWriteMany']);
  });
});

describe('overlays/prod', () => {
  const objects = render('overlays/prod');
  const cream = serviceDeployments(objects, services);
  const dev = Object.fromEntries(serviceDeployments(render('overlays/dev'), services).map((c) => [c.service.name, c]));

  it('runs 3 generator and 3 judge replicas', () => {
    const replicas = Object.fromEntries(cream.map(({ service, deployment }) => [service.name, deployment.spec!.replicas]));
    expect(replicas).toMatchObject({ generator: 3, judge: 3, trainer: 1, coordinator: 1 });
  });

  it('puts generator, judge and trainer on one NVIDIA GPU each, with the GPU image, on GPU nodes; the others stay on CPU', () => {
    for (const { service, deployment, container } of cream) {
      const pod = deployment.spec!.template.spec!;
      const environment = environmentOf(objects, deployment, container);
      if (modelServices.includes(service.name)) {
        expect(container.resources!.limits!['nvidia.com/gpu'], service.name).toBe('1');
        expect(container.image, service.name).toBe('registry.example.com/cream/cream-gpu:0.1.0');
        expect(environment.CREAM_BACKEND, service.name).toBe('tfjs-node-gpu');
        expect(pod.tolerations, service.name).toEqual([{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }]);
        expect(pod.nodeSelector, service.name).toEqual({ 'nvidia.com/gpu.present': 'true' });
      } else {
        expect(JSON.stringify(deployment), service.name).not.toContain('nvidia.com/gpu');
        expect(container.image, service.name).toBe('registry.example.com/cream/cream:0.1.0');
        expect(environment.CREAM_BACKEND, service.name).toBeUndefined();
      }
    }
  });

  it('rolls GPU Deployments one replica at a time without a surge pod (no spare GPU needed)', () => {
    for (const name of ['generator', 'judge']) {
      expect(named<IDeployment>(objects, 'Deployment', name).spec!.strategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } });
    }
    expect(named<IDeployment>(objects, 'Deployment', 'trainer').spec!.strategy).toEqual({ type: 'Recreate' });
    expect(named<IDeployment>(objects, 'Deployment', 'coordinator').spec!.strategy).toEqual({ type: 'Recreate' });
  });

  it('asks for more cpu and memory than dev for the model services', () => {
    for (const name of modelServices) {
      const prodResources = cream.find((c) => c.service.name === name)!.container.resources!;
      const devResources = dev[name].container.resources!;
      for (const resource of ['cpu', 'memory']) {
        expect(quantity(prodResources.requests![resource]), `${name} ${resource}`).toBeGreaterThan(quantity(devResources.requests![resource]));
      }
    }
  });

  it('sends every service’s spans to the collector, which receives OTLP/gRPC where they send it', () => {
    const collectorService = named<IService>(objects, 'Service', 'otel-collector');
    for (const { service, deployment, container } of cream) {
      const environment = environmentOf(objects, deployment, container);
      expect(environment.OTEL_EXPORTER_OTLP_ENDPOINT, service.name).toBe(`http://otel-collector:${collectorService.spec!.ports![0].port}`);
      expect(environment.OTEL_RESOURCE_ATTRIBUTES, service.name).toBe(`k8s.pod.name=${deployment.metadata!.name}-0,k8s.namespace.name=test,k8s.node.name=node-0`);
    }
    const collector = named<IDeployment>(objects, 'Deployment', 'otel-collector');
    const container = collector.spec!.template.spec!.containers[0];
    expect(container.image).toMatch(/^otel\/opentelemetry-collector:\d+\.\d+\.\d+$/);
    expect(selects({ matchLabels: collectorService.spec!.selector }, collector.spec!.template.metadata!.labels)).toBe(true);
    const configVolume = collector.spec!.template.spec!.volumes!.find((v) => v.configMap)!;
    const mount = container.volumeMounts!.find((m) => m.name === configVolume.name)!;
    const configMap = named<KubernetesObject & { data: Record<string, string> }>(objects, 'ConfigMap', configVolume.configMap!.name!);
    expect(container.args).toEqual([`--config=${mount.mountPath}/collector.yaml`]);
    const config = parse(configMap.data['collector.yaml']) as {
      receivers: Record<string, { protocols: { grpc: { endpoint: string } } }>;
      processors: Record<string, unknown>;
      exporters: Record<string, unknown>;
      extensions: Record<string, { endpoint: string }>;
      service: { extensions: string[]; pipelines: Record<string, { receivers: string[]; processors: string[]; exporters: string[] }> };
    };
    expect(config.receivers.otlp.protocols.grpc.endpoint).toBe(`0.0.0.0:${collectorService.spec!.ports![0].port}`);
    const traces = config.service.pipelines.traces;
    for (const name of traces.receivers) expect(config.receivers, name).toHaveProperty([name]);
    for (const name of traces.processors) expect(config.processors, name).toHaveProperty([name]);
    for (const name of traces.exporters) expect(config.exporters, name).toHaveProperty([name]);
    for (const name of config.service.extensions) expect(config.extensions, name).toHaveProperty([name]);
    // The probes ask the health_check extension, on the port the config gives it.
    const healthPort = container.ports!.find((p) => p.name === 'health')!.containerPort;
    expect(config.extensions.health_check.endpoint).toBe(`0.0.0.0:${healthPort}`);
    expect(container.env!.find((e) => e.name === 'TRACES_BACKEND_ENDPOINT')?.value).toMatch(/^[\w.-]+:\d+$/);
  });

  it('lets the services send spans to the collector and nothing else reach it', () => {
    const collectorLabels = named<IDeployment>(objects, 'Deployment', 'otel-collector').spec!.template.metadata!.labels;
    const egress = named<INetworkPolicy>(objects, 'NetworkPolicy', 'cream-services-to-otel-collector').spec!;
    const ingress = named<INetworkPolicy>(objects, 'NetworkPolicy', 'otel-collector').spec!;
    for (const { deployment } of cream) {
      const labels = deployment.spec!.template.metadata!.labels;
      expect(selects(egress.podSelector, labels)).toBe(true);
      expect(selects(ingress.ingress![0].from![0].podSelector, labels)).toBe(true);
    }
    expect(selects(egress.egress![0].to![0].podSelector, collectorLabels)).toBe(true);
    expect(egress.egress![0].ports).toEqual([{ protocol: 'TCP', port: 4317 }]);
    expect(selects(ingress.podSelector, collectorLabels)).toBe(true);
  });

  it('keeps the common settings in one ConfigMap, merged by the tracing component', () => {
    const config = configMapByBaseName(objects, 'cream-config').data!;
    expect(config).toMatchObject({ CREAM_REGISTRY: '/data/registry', CREAM_HOME: '/data', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel-collector:4317' });
  });
});
