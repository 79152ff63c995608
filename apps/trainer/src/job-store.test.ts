// Unit tests of the job records on disk: a record read back equals the one
// written, and a job unfinished at a restart reads back as FAILED.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JobState, TrainKind, type Job } from '@cream/proto';
import { describe, expect, it } from 'vitest';
import { JobStore } from './job-store';

function job(jobId: string, state: JobState, createdAt: Date): Job {
  return {
    jobId,
    kind: TrainKind.TRAIN_KIND_SFT,
    state,
    baseVersion: 'm0',
    referenceVersion: '',
    publishedVersion: state === JobState.JOB_STATE_SUCCEEDED ? 'm1' : '',
    error: '',
    numExamples: 4,
    numTruncated: 0,
    lastProgress: undefined,
    createdAt,
    finishedAt: undefined,
    hyperparameters: undefined,
  };
}

describe('JobStore', () => {
  it('reads back what it wrote, oldest first, and unfinished jobs as FAILED', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cream-trainer-jobstore-'));
    const store = new JobStore(dir);
    store.save(job('b', JobState.JOB_STATE_RUNNING, new Date('2026-01-02T00:00:00Z')));
    store.save(job('a', JobState.JOB_STATE_SUCCEEDED, new Date('2026-01-01T00:00:00Z')));
    writeFileSync(join(dir, 'broken.json'), '{not json');
    const jobs = new JobStore(dir).loadAll();
    expect(jobs.map((j) => j.jobId)).toEqual(['a', 'b']);
    expect(jobs[0]).toMatchObject({ state: JobState.JOB_STATE_SUCCEEDED, publishedVersion: 'm1', numExamples: 4 });
    expect(jobs[1].state).toBe(JobState.JOB_STATE_FAILED);
    expect(jobs[1].error).toContain('stopped');
    expect(jobs[1].finishedAt).toBeInstanceOf(Date);
  });
});
