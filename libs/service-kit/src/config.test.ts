// Config: precedence flag > env > default, and errors that name the flag or variable.
import { describe, expect, it } from 'vitest';
import { describeConfig, option, readConfig } from './config';
import { ConfigError } from './errors';

const spec = {
  port: option.int({ flag: 'port', env: 'CREAM_PORT', description: 'port to listen on', default: 50053, min: 0, max: 65535 }),
  host: option.string({ flag: 'host', env: 'CREAM_HOST', description: 'address to bind', default: '127.0.0.1', nonEmpty: true }),
  level: option.choice({ flag: 'log-level', env: 'CREAM_LOG_LEVEL', description: 'log level', default: 'info', values: ['debug', 'info'] as const }),
  verbose: option.bool({ flag: 'verbose', description: 'more output', default: false }),
};

describe('readConfig', () => {
  it('takes the default, then the variable, then the flag', () => {
    expect(readConfig(spec, { argv: [], env: {} }).port).toBe(50053);
    expect(readConfig(spec, { argv: [], env: { CREAM_PORT: '7000' } }).port).toBe(7000);
    expect(readConfig(spec, { argv: ['--port', '8000'], env: { CREAM_PORT: '7000' } }).port).toBe(8000);
    expect(readConfig(spec, { argv: ['--port=9000'], env: {} }).port).toBe(9000);
  });

  it('parses switches and keeps positionals in order', () => {
    const values = readConfig(spec, { argv: ['a', '--verbose', 'b'], env: {} });
    expect(values.verbose).toBe(true);
    expect(values.positionals).toEqual(['a', 'b']);
  });

  it('names the variable when its value is bad', () => {
    expect(() => readConfig(spec, { argv: [], env: { CREAM_PORT: '70000' } })).toThrow(/CREAM_PORT: 70000 is outside 0\.\.65535/);
    expect(() => readConfig(spec, { argv: [], env: { CREAM_PORT: 'abc' } })).toThrow(ConfigError);
    try {
      readConfig(spec, { argv: ['--log-level', 'loud'], env: {} });
      expect.unreachable();
    } catch (error) {
      expect((error as ConfigError).variable).toBe('--log-level');
      expect((error as Error).message).toContain('"loud" is not one of debug, info');
    }
  });

  it('rejects unknown flags and missing values', () => {
    expect(() => readConfig(spec, { argv: ['--prot', '1'], env: {} })).toThrow(/unknown flag --prot/);
    expect(() => readConfig(spec, { argv: ['--port'], env: {} })).toThrow(/--port needs a value/);
  });

  it('requires options without a default', () => {
    const required = { model: option.string({ flag: 'model', env: 'CREAM_MODEL', description: 'model directory' }) };
    expect(() => readConfig(required, { argv: [], env: {} })).toThrow(/--model \/ CREAM_MODEL is required/);
  });

  it('describes every option for --help', () => {
    const text = describeConfig(spec);
    expect(text).toContain('--port <int 0..65535>');
    expect(text).toContain('[env CREAM_PORT]');
    expect(text).toContain('(default 50053)');
  });

  it('states a default as defaultHelp says, and none for an empty text', () => {
    const text = describeConfig({
      repeats: option.int({ flag: 'repeats', description: 'timed runs', min: 1, max: 9, default: 0, defaultHelp: '5, 2 with --quick' }),
      name: option.string({ flag: 'name', description: 'display name', default: '' }),
      seed: option.string({ flag: 'seed', description: 'master seed', default: '', defaultHelp: '1' }),
      host: option.string({ flag: 'host', description: 'address', default: '0.0.0.0' }),
    }).split('\n');
    expect(text[0]).toMatch(/--repeats <int 1\.\.9>\s+timed runs \(default 5, 2 with --quick\)$/);
    expect(text[1]).toMatch(/--name <string>\s+display name$/);
    expect(text[2]).toMatch(/--seed <string>\s+master seed \(default 1\)$/);
    expect(text[3]).toMatch(/--host <string>\s+address \(default "0\.0\.0\.0"\)$/);
    // The placeholder is still what readConfig gives when the flag is absent.
    expect(readConfig({ repeats: option.int({ flag: 'repeats', description: 'x', min: 1, max: 9, default: 0, defaultHelp: '5' }) }, { argv: [], env: {} }).repeats).toBe(0);
  });
});
