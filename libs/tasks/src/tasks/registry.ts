// The built-in tasks by name: three multiple-choice tasks and one arithmetic
// task, mirroring the paper's ARC, OpenBookQA, SIQA and GSM8K in miniature.
import { arithmetic } from './arithmetic';
import { objects } from './objects';
import { science } from './science';
import { social } from './social';
import type { TaskGenerator } from './task';

/** Names of the built-in tasks, in report order. */
export const BUILTIN_TASK_NAMES = ['science', 'objects', 'social', 'arithmetic'] as const;

/** A built-in task's name. */
export type BuiltinTaskName = (typeof BUILTIN_TASK_NAMES)[number];

/** The built-in task generators by name. */
export const BUILTIN_TASKS: Readonly<Record<BuiltinTaskName, TaskGenerator>> = { science, objects, social, arithmetic };

/** True when `name` is a built-in task. */
export function isBuiltinTask(name: string): name is BuiltinTaskName {
  return Object.prototype.hasOwnProperty.call(BUILTIN_TASKS, name);
}
