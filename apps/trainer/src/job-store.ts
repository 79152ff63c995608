// The trainer's job records on disk: one JSON file per job (the proto's JSON
// form of Job) in a jobs folder, written atomically at every state change, so
// GetJob and ListJobs still know a job after a restart. A job that was not
// finished when its process stopped is read back as FAILED.
import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Job, JobState } from '@cream/proto';

const FINAL = new Set([JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED, JobState.JOB_STATE_CANCELLED]);

/** Job records in `directory` (created when missing). */
export class JobStore {
  constructor(readonly directory: string) {
    mkdirSync(directory, { recursive: true });
  }

  /** Writes the job's record (write aside, then rename). */
  save(job: Job): void {
    const file = join(this.directory, `${job.jobId}.json`);
    const temp = `${file}.${process.pid}.tmp`;
    writeFileSync(temp, JSON.stringify(Job.toJSON(job)) + '\n');
    renameSync(temp, file);
  }

  /** Every stored job, oldest first; unfinished ones become FAILED (the process that ran them stopped). */
  loadAll(): Job[] {
    const jobs: Job[] = [];
    for (const name of readdirSync(this.directory)) {
      if (!name.endsWith('.json')) continue;
      try {
        const job = Job.fromJSON(JSON.parse(readFileSync(join(this.directory, name), 'utf8')));
        if (!FINAL.has(job.state)) {
          job.state = JobState.JOB_STATE_FAILED;
          job.error = 'the trainer process stopped while the job ran; nothing was published';
          job.finishedAt ??= new Date();
        }
        jobs.push(job);
      } catch {
        // An unreadable record is skipped, never fatal.
      }
    }
    return jobs.sort((a, b) => (a.createdAt?.getTime() ?? 0) - (b.createdAt?.getTime() ?? 0));
  }
}
