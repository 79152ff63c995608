// The logging surface compute needs. Library code never prints: callers pass a
// logger (service-kit's structured logger fits this shape); without one, the
// messages are dropped.

/** Fields attached to a log line. */
export type ComputeLogFields = Record<string, unknown>;

/** The subset of a structured logger that compute uses. */
export interface ComputeLogger {
  info(msg: string, fields?: ComputeLogFields): void;
  warn(msg: string, fields?: ComputeLogFields): void;
}

/** A logger that drops everything. */
export const silentLogger: ComputeLogger = {
  info: () => undefined,
  warn: () => undefined,
};
