// A small Dockerfile reader for the image checks (no Docker engine here): instructions with
// their line continuations joined and comments dropped, grouped into build stages, with the
// global ARG defaults substituted into FROM, and the exec-form (JSON array) arguments parsed.
import { readFileSync } from 'node:fs';

/** One instruction, e.g. { keyword: 'COPY', args: '--from=build /app ./app', line: 12 }. */
export interface Instruction {
  keyword: string;
  args: string;
  /** 1-based line where it starts. */
  line: number;
}

/** One build stage. */
export interface Stage {
  /** `AS` name, when given. */
  name?: string;
  /** The FROM argument as written, e.g. "${NODE_IMAGE}". */
  from: string;
  /** FROM with global ARG defaults substituted, e.g. "node:20.20-bookworm-slim" or a stage name. */
  base: string;
  /** Instructions after FROM. */
  instructions: Instruction[];
}

/** A parsed Dockerfile. */
export interface Dockerfile {
  /** Global ARGs (before the first FROM) and their defaults. */
  args: Record<string, string>;
  stages: Stage[];
  /** Every comment line's text (without '#'), for the documentation checks. */
  comments: string[];
}

/** Parses Dockerfile text. */
export function parseDockerfile(text: string): Dockerfile {
  const instructions: Instruction[] = [];
  const comments: string[] = [];
  let pending: { parts: string[]; line: number } | undefined;
  text.split('\n').forEach((raw, index) => {
    const trimmed = raw.trim();
    if (trimmed.startsWith('#')) {
      comments.push(trimmed.replace(/^#\s?/, ''));
      return;
    }
    if (trimmed === '' && !pending) return;
    const continues = trimmed.endsWith('\\');
    const part = continues ? trimmed.slice(0, -1).trim() : trimmed;
    if (!pending) pending = { parts: [], line: index + 1 };
    if (part !== '') pending.parts.push(part);
    if (!continues) {
      const joined = pending.parts.join(' ');
      const space = joined.search(/\s/);
      instructions.push({
        keyword: (space === -1 ? joined : joined.slice(0, space)).toUpperCase(),
        args: space === -1 ? '' : joined.slice(space + 1).trim(),
        line: pending.line,
      });
      pending = undefined;
    }
  });
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const match = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(instruction.args);
      if (!match) throw new Error(`line ${instruction.line}: cannot read FROM ${instruction.args}`);
      const base = match[1].replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (_, name: string) => args[name] ?? '');
      stages.push({ name: match[2], from: match[1], base, instructions: [] });
    } else if (stages.length === 0) {
      if (instruction.keyword !== 'ARG') throw new Error(`line ${instruction.line}: ${instruction.keyword} before the first FROM`);
      const [name, value = ''] = instruction.args.split('=', 2);
      args[name.trim()] = value.trim();
    } else {
      stages[stages.length - 1].instructions.push(instruction);
    }
  }
  return { args, stages, comments };
}

/** Reads and parses a Dockerfile. */
export function readDockerfile(path: string): Dockerfile {
  return parseDockerfile(readFileSync(path, 'utf8'));
}

/** The exec-form arguments of ENTRYPOINT/CMD/RUN (a JSON array of strings), or undefined for the shell form. */
export function execForm(args: string): string[] | undefined {
  if (!args.startsWith('[')) return undefined;
  const parsed = JSON.parse(args) as unknown;
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === 'string')) throw new Error(`not a JSON array of strings: ${args}`);
  return parsed;
}

/** The KEY=value pairs of an ENV instruction (the `ENV a=b c=d` form). */
export function envPairs(args: string): Record<string, string> {
  const pairs: Record<string, string> = {};
  for (const match of args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)/g)) {
    pairs[match[1]] = match[2].startsWith('"') ? (JSON.parse(match[2]) as string) : match[2];
  }
  return pairs;
}

/** Every instruction of a stage with this keyword. */
export function instructionsOf(stage: Stage, keyword: string): Instruction[] {
  return stage.instructions.filter((i) => i.keyword === keyword);
}

/** The image a stage starts from, following FROM <stage> chains back to an image reference. */
export function rootImage(file: Dockerfile, stage: Stage): string {
  const seen = new Set<Stage>();
  let current: Stage | undefined = stage;
  while (current && !seen.has(current)) {
    seen.add(current);
    const parent: Stage | undefined = file.stages.find((s) => s.name === current!.base);
    if (!parent) return current.base;
    current = parent;
  }
  throw new Error(`stage ${stage.name ?? '?'}: FROM chain loops`);
}
