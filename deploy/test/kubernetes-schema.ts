// Offline validation of rendered objects against the Kubernetes API schemas, two ways:
// - kubernetes-models' validate(): the JSON schemas of the Kubernetes OpenAPI spec compiled with
//   ajv (types, formats such as quantities, required fields, enums), per kind;
// - the same package's TypeScript interfaces, which know every field: each object is compiled as
//   an object literal of its kind's interface, so TypeScript's excess-property check reports any
//   field the API does not have (a misspelt `readinessProbe` or a field at the wrong level),
//   which the JSON schemas, open to extra fields, let through.
import { createRequire } from 'node:module';
import { join } from 'node:path';
import ts from 'typescript';
import { deployRoot, type KubernetesObject } from './manifests';

const load = createRequire(__filename);

/** The kubernetes-models module of an apiVersion and kind, e.g. "kubernetes-models/apps/v1/Deployment". */
export function modelModule(apiVersion: string, kind: string): string {
  return `kubernetes-models/${apiVersion}/${kind}`;
}

interface ModelClass {
  new (data: unknown): { validate(): void };
}

/** Schema problems of one object ([] when it validates); an unknown apiVersion/kind is a problem too. */
export function schemaProblems(object: KubernetesObject): string[] {
  let model: ModelClass | undefined;
  try {
    model = (load(modelModule(object.apiVersion, object.kind)) as Record<string, ModelClass>)[object.kind];
  } catch {
    model = undefined;
  }
  if (!model) return [`${object.apiVersion} ${object.kind} is not a Kubernetes API kind known to kubernetes-models`];
  try {
    new model(object).validate();
    return [];
  } catch (error) {
    return [(error as Error).message];
  }
}

/** One object's unknown or mistyped fields, as TypeScript reports them, prefixed with the object's kind and name. */
export function strictFieldProblems(objects: readonly KubernetesObject[]): string[] {
  const fileName = join(deployRoot, 'test', '__rendered-objects__.ts');
  const imports = new Map<string, string>();
  const declarations: string[] = [];
  const owners: Array<{ line: number; label: string }> = [];
  let line = 0;
  objects.forEach((object, index) => {
    const module = modelModule(object.apiVersion, object.kind);
    let alias = imports.get(module);
    if (!alias) imports.set(module, (alias = `Model${imports.size}`));
    const body = `export const object${index}: ${alias} = ${JSON.stringify(object, null, 2)};`;
    owners.push({ line, label: `${object.kind}/${object.metadata.name}` });
    declarations.push(body);
    line += body.split('\n').length;
  });
  const header = [...imports].map(([module, alias]) => `import type { I${module.split('/').pop()} as ${alias} } from '${module}';`);
  const source = [...header, ...declarations].join('\n');
  const headerLines = header.length;

  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const sourceFile = ts.createSourceFile(fileName, source, ts.ScriptTarget.ES2022, true);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, languageVersion, onError, shouldCreate) =>
    name === fileName ? sourceFile : getSourceFile(name, languageVersion, onError, shouldCreate);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name === fileName || fileExists(name);
  const program = ts.createProgram([fileName], options, host);
  const diagnostics = [...program.getSyntacticDiagnostics(sourceFile), ...program.getSemanticDiagnostics(sourceFile)];
  return diagnostics.map((diagnostic) => {
    const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n');
    if (diagnostic.start === undefined) return message;
    const at = sourceFile.getLineAndCharacterOfPosition(diagnostic.start).line - headerLines;
    const owner = [...owners].reverse().find((o) => o.line <= at);
    return `${owner?.label ?? 'imports'}: ${message}`;
  });
}

/** The kubernetes-models version in use, for messages. */
export function kubernetesModelsVersion(): string {
  return (load('kubernetes-models/package.json') as { version: string }).version;
}
