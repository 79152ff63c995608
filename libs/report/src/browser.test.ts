// Opens rendered reports in headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core) and checks that every plot renders: each SVG and
// each data mark has a non-zero box, no console error, a real screenshot.
// Fails when Chromium is missing; CREAM_SKIP_BROWSER_TESTS=1 skips it explicitly.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aggregateComparison, renderComparisonReport } from './comparison';
import { sampleRun } from './fixtures';
import { renderRunReport } from './run-report';

const CHROMIUM = process.env.CREAM_CHROMIUM ?? '/usr/bin/chromium';
const skip = process.env.CREAM_SKIP_BROWSER_TESTS === '1';

/** What the page shows: visible plots and marks, by selector. */
interface Rendered {
  plots: number;
  bars: number;
  points: number;
  errors: string[];
  screenshot: string;
}

describe.skipIf(skip)('reports in headless Chromium', () => {
  let browser: BrowserContext;
  let folder: string;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install chromium) or set CREAM_SKIP_BROWSER_TESTS=1 to skip this test`);
    }
    folder = mkdtempSync(join(tmpdir(), 'cream-report-browser-'));
    // A fresh profile (--user-data-dir) per run: playwright passes it for a persistent context.
    browser = await chromium.launchPersistentContext(join(folder, 'profile'), {
      executablePath: CHROMIUM,
      viewport: { width: 1000, height: 800 },
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    if (folder) rmSync(folder, { recursive: true, force: true });
  });

  async function open(name: string, html: string): Promise<Rendered> {
    const file = join(folder, `${name}.html`);
    writeFileSync(file, html);
    const page = await browser.newPage();
    const errors: string[] = [];
    const requests: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    page.on('pageerror', (error) => errors.push(error.message));
    page.on('request', (request) => {
      if (!request.url().startsWith('file:')) requests.push(request.url());
    });
    await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
    const visible = async (selector: string) => {
      const elements = await page.locator(selector).all();
      const boxes = await Promise.all(elements.map((element) => element.boundingBox()));
      return boxes.filter((box) => box !== null && box.width > 0 && box.height > 0).length;
    };
    const counts = { plots: await visible('svg.plot'), bars: await visible('svg.plot rect.bar'), points: await visible('svg.plot circle.point') };
    const screenshot = join(folder, `${name}.png`);
    await page.screenshot({ path: screenshot, fullPage: true });
    await page.close();
    expect(requests).toEqual([]);
    return { ...counts, errors, screenshot };
  }

  it('renders the run report: 3 plots, 16 accuracy bars + 12 stage bars, 2 consistency points', async () => {
    const shown = await open('run', renderRunReport(sampleRun()));
    expect(shown.errors).toEqual([]);
    expect(shown.plots).toBe(3);
    expect(shown.bars).toBe(28);
    expect(shown.points).toBe(2);
    const png = readFileSync(shown.screenshot);
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    expect(png.length).toBeGreaterThan(20_000);
  }, 60_000);

  it('renders the comparison report: accuracy per iteration per method and consistency', async () => {
    const runs = [sampleRun({ runId: 'a', seed: 1 }), sampleRun({ runId: 'b', seed: 2 }, 0.05), sampleRun({ runId: 'c', method: 'oracle' }, 0.1)];
    const shown = await open('comparison', renderComparisonReport(aggregateComparison(runs)));
    expect(shown.errors).toEqual([]);
    expect(shown.plots).toBe(2);
    // 2 methods x 4 models, then 2 methods x 2 iterations.
    expect(shown.points).toBe(12);
  }, 60_000);
});
