// Progress of a run as WatchRun reports it: on a terminal, one line per stage
// redrawn in place (a bar with done/total and elapsed time) and kept when the
// stage ends; otherwise plain lines (start, every tenth of the way, end).
import type { Stage, WatchRunResponse } from '@cream/proto';

/** Where progress is written: a stream that may be a terminal. */
export interface ProgressOutput {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

const BAR_WIDTH = 24;

function seconds(ms: number): string {
  return ms < 60_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.floor(ms / 60_000)} min ${String(Math.round((ms % 60_000) / 1000)).padStart(2, '0')} s`;
}

function metricText(stage: Stage): string {
  const shown = Object.entries(stage.metrics)
    .filter(([key]) => !key.startsWith('accuracy/'))
    .map(([key, value]) => `${key}=${Number.isInteger(value) ? value : value.toFixed(3)}`);
  return shown.length > 0 ? `  ${shown.join(' ')}` : '';
}

/** State names as people read them. */
const STAGE_STATES: Record<number, string> = { 1: 'PENDING', 2: 'RUNNING', 3: 'DONE', 4: 'FAILED', 5: 'RESTORED' };

/** Shows WatchRun events; `now` is injectable for tests. */
export class ProgressView {
  private current?: { name: string; startedAt: number; done: number; total: number; unit: string; lastTenth: number };
  private readonly tty: boolean;

  /**
   * `since` (ms): events stamped before it are history (WatchRun replays a
   * resumed run's earlier attempts first) and are not shown again.
   */
  constructor(
    private readonly out: ProgressOutput,
    private readonly now: () => number = Date.now,
    private readonly prefix = '',
    private readonly since = 0,
  ) {
    this.tty = out.isTTY === true;
  }

  /** Handles one WatchRun event. */
  onEvent(event: WatchRunResponse): void {
    const e = event.event;
    if (!e || (event.time !== undefined && event.time.getTime() < this.since)) return;
    switch (e.$case) {
      case 'stageStarted':
        this.start(e.value.name, e.value.startedAt?.getTime() ?? this.now());
        break;
      case 'progress':
        if (this.current?.name !== e.value.stage) this.start(e.value.stage, this.now());
        Object.assign(this.current!, { done: Number(e.value.done), total: Number(e.value.total), unit: e.value.unit });
        this.update();
        break;
      case 'stageFinished':
        this.finish(e.value);
        break;
      default:
        break;
    }
  }

  /** Redraws the live line (e.g. once a second, so the elapsed time moves). */
  tick(): void {
    if (this.tty && this.current) this.draw();
  }

  private start(name: string, startedAt: number): void {
    if (this.current && this.tty) this.out.write('\n');
    this.current = { name, startedAt, done: 0, total: 0, unit: '', lastTenth: -1 };
    if (this.tty) this.draw();
    else this.out.write(`${this.prefix}${name}: started\n`);
  }

  private update(): void {
    const c = this.current!;
    if (this.tty) return this.draw();
    const tenth = c.total > 0 ? Math.floor((c.done / c.total) * 10) : -1;
    if (tenth > c.lastTenth) {
      c.lastTenth = tenth;
      this.out.write(`${this.prefix}${c.name}: ${c.done}/${c.total} ${c.unit} (${seconds(this.now() - c.startedAt)})\n`);
    }
  }

  private line(): string {
    const c = this.current!;
    const elapsed = seconds(this.now() - c.startedAt);
    if (c.total <= 0) return `${this.prefix}${c.name.padEnd(20)} ${' '.repeat(BAR_WIDTH + 2)} ${elapsed}`;
    const filled = Math.round((Math.min(c.done, c.total) / c.total) * BAR_WIDTH);
    return `${this.prefix}${c.name.padEnd(20)} [${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}] ${c.done}/${c.total} ${c.unit}  ${elapsed}`;
  }

  private draw(): void {
    const width = this.out.columns ?? 120;
    this.out.write(`\r\x1b[2K${this.line().slice(0, width - 1)}`);
  }

  private finish(stage: Stage): void {
    const state = STAGE_STATES[stage.state] ?? String(stage.state);
    const started = stage.startedAt?.getTime() ?? this.current?.startedAt;
    const ended = stage.finishedAt?.getTime() ?? this.now();
    const time = started === undefined ? '' : ` in ${seconds(ended - started)}`;
    const detail = stage.error ? `  error: ${stage.error}` : metricText(stage);
    const text = `${this.prefix}${stage.name.padEnd(20)} ${state}${time}${detail}`;
    if (this.tty) this.out.write(`\r\x1b[2K${text}\n`);
    else this.out.write(`${text}\n`);
    if (this.current?.name === stage.name) this.current = undefined;
  }
}
