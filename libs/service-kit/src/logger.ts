// Structured logger: one JSON object per line on stderr (what Kubernetes log
// collectors expect), with a level threshold and bound fields for children.
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const levelOrder: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Fields attached to a log line. */
export type LogFields = Record<string, unknown>;

/** A structured logger. */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds these fields to every line. */
  child(fields: LogFields): Logger;
}

/** Where lines go; stderr by default. */
export type LogSink = (line: string) => void;

function serializeError(value: unknown): unknown {
  if (value instanceof Error) {
    return { name: value.name, message: value.message, stack: value.stack };
  }
  return value;
}

/** Creates a JSON-lines logger. `level` defaults to info. */
export function createLogger(options: { level?: LogLevel; fields?: LogFields; sink?: LogSink } = {}): Logger {
  const threshold = levelOrder[options.level ?? 'info'];
  const sink: LogSink = options.sink ?? ((line) => process.stderr.write(line + '\n'));
  const bound = options.fields ?? {};
  const emit = (level: LogLevel, msg: string, fields?: LogFields) => {
    if (levelOrder[level] < threshold) return;
    const record: LogFields = { time: new Date().toISOString(), level, msg, ...bound };
    for (const [key, value] of Object.entries(fields ?? {})) record[key] = serializeError(value);
    sink(JSON.stringify(record));
  };
  return {
    debug: (msg, fields) => emit('debug', msg, fields),
    info: (msg, fields) => emit('info', msg, fields),
    warn: (msg, fields) => emit('warn', msg, fields),
    error: (msg, fields) => emit('error', msg, fields),
    child: (fields) => createLogger({ level: options.level, fields: { ...bound, ...fields }, sink }),
  };
}

/** Parses a log level name, or undefined when it is not one. */
export function parseLogLevel(value: string): LogLevel | undefined {
  return value in levelOrder ? (value as LogLevel) : undefined;
}
