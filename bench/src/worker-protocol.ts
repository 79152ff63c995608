// The one message a benchmark worker sends back to run.ts.
import type { ImplementationResult } from './results';

/** The worker's answer: its figures, or why it failed. */
export type WorkerReply = { ok: true; result: ImplementationResult } | { ok: false; error: string };
