// Generate: validate the request, lease the version the call runs on (the
// serving one, or the pinned one), check what needs the model (top_k against
// the vocabulary, every prompt against the context length), then hand the
// sequences (prompts x samples) to the batch scheduler and stream each
// completion as it finishes, tagged with the version and its sequence seed.
// The lease holds the version until no batch computes the call's sequences,
// so a hot swap never frees weights under a call in flight.
import { TokenizerError, type FinishReason as ModelFinishReason, type TextGenerationResult } from '@cream/model';
import { FinishReason, type Completion, type GenerateRequest, type GenerateResponse } from '@cream/proto';
import { GrpcStatus, InvalidArgumentError, ServiceError, type ModelSlot, type StreamContext } from '@cream/service-kit';
import { withSpan, type Span } from '@cream/telemetry';
import type { ServedModel } from './models';
import type { BatchScheduler, SequenceRequest } from './scheduler';
import { sequenceSeed, streamKey } from './seeds';
import { validateGenerateRequest, type GenerationPlan } from './validate';

/** What Generate needs from the service. */
export interface GenerateDeps {
  slot: ModelSlot<ServedModel>;
  scheduler: BatchScheduler;
  /** The server's limit on sampling.max_new_tokens. */
  maxNewTokensLimit: number;
}

/** Which prompt and sample a sequence is. */
interface SequenceTag {
  prompt: number;
  sample: number;
  seed: number;
  promptTokens: number;
}

const finishReasons: Record<ModelFinishReason, FinishReason> = {
  eos: FinishReason.FINISH_REASON_EOS,
  stop: FinishReason.FINISH_REASON_STOP,
  length: FinishReason.FINISH_REASON_LENGTH,
  context: FinishReason.FINISH_REASON_CONTEXT,
};

// Checks the parts of the plan that depend on the model, and builds the call's sequences.
function sequencesFor(plan: GenerationPlan, served: ServedModel): SequenceRequest<SequenceTag>[] {
  const { vocabSize, maxPositionEmbeddings: context } = served.model.config;
  const { topK, maxNewTokens, seed } = plan.sampling;
  if (topK > vocabSize) {
    throw new InvalidArgumentError(`sampling.top_k is ${topK}; at most the vocabulary size of ${served.version}, ${vocabSize}`, 'sampling.top_k', { limit: vocabSize });
  }
  const sequences: SequenceRequest<SequenceTag>[] = [];
  plan.prompts.forEach((prompt, p) => {
    let ids: number[];
    try {
      ids = served.model.promptIds(prompt.input);
    } catch (error) {
      if (error instanceof TokenizerError) throw new InvalidArgumentError(`${prompt.field} cannot be rendered for ${served.version}: ${error.message}`, prompt.field);
      throw error;
    }
    if (ids.length === 0) throw new InvalidArgumentError(`${prompt.field} has no tokens`, prompt.field);
    if (ids.length >= context) {
      throw new InvalidArgumentError(
        `${prompt.field} is ${ids.length} tokens; the context length of ${served.version} is ${context}, leaving no room to generate`,
        prompt.field,
        { limit: context - 1 },
      );
    }
    const cost = Math.min(ids.length + maxNewTokens, context);
    for (let sample = 0; sample < plan.numSamples; sample++) {
      const sequence = sequenceSeed(seed, prompt.id, sample);
      sequences.push({ key: streamKey(sequence), prompt: prompt.input, cost, tag: { prompt: p, sample, seed: sequence, promptTokens: ids.length } });
    }
  });
  return sequences;
}

function toCompletion(plan: GenerationPlan, version: string, tag: SequenceTag, result: TextGenerationResult): Completion {
  return {
    promptId: plan.prompts[tag.prompt].id,
    sampleIndex: tag.sample,
    text: result.text,
    tokenIds: result.tokenIds,
    finishReason: finishReasons[result.finishReason],
    logprobSum: result.logprobSum,
    numPromptTokens: result.numPromptTokens,
    modelVersion: version,
    sequenceSeed: tag.seed,
  };
}

// The status a call ends with when its caller went away or its deadline passed.
function abortStatus(signal: AbortSignal): ServiceError {
  const reason = signal.reason instanceof Error ? signal.reason.message : String(signal.reason);
  const code = /deadline/i.test(reason) ? GrpcStatus.DEADLINE_EXCEEDED : GrpcStatus.CANCELLED;
  return new ServiceError(`generation stopped: ${reason}`, code);
}

/** The Generate handler. */
export async function generate(request: GenerateRequest, ctx: StreamContext<GenerateResponse>, deps: GenerateDeps): Promise<void> {
  const plan = validateGenerateRequest(request, { maxNewTokensLimit: deps.maxNewTokensLimit });
  const lease = deps.slot.acquire(plan.modelVersion);
  let sequences: SequenceRequest<SequenceTag>[];
  try {
    sequences = withSpan('generator.prepare', { 'cream.model_version': lease.version, 'cream.prompts': plan.prompts.length }, () =>
      sequencesFor(plan, lease.model),
    );
  } catch (error) {
    lease.release();
    throw error;
  }
  await withSpan(
    'generator.sample',
    { 'cream.model_version': lease.version, 'cream.sequences': sequences.length, 'cream.max_new_tokens': plan.sampling.maxNewTokens },
    async (span: Span) => {
      const run = deps.scheduler.submit({
        model: lease.model.model,
        sampling: plan.sampling,
        sequences,
        signal: ctx.signal,
        onBatch: (info) => span.addEvent('batch', { ...info }),
      });
      try {
        for await (const { tag, result } of run) {
          await ctx.write({ completion: toCompletion(plan, lease.version, tag, result) });
        }
      } catch (error) {
        if (ctx.signal.aborted) throw abortStatus(ctx.signal);
        throw error;
      } finally {
        run.cancel(new Error('the call ended'));
        // The version stays leased until no batch computes this call's sequences.
        void run.settled.then(() => lease.release());
      }
    },
  );
}
